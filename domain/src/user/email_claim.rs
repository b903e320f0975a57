//! The e-mail claim: the aggregate that keeps e-mail addresses unique across users.

use super::UserError;
use crate::aggregate::Aggregate;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// Keeps e-mail addresses unique: one stream per address (named by its blind index), claimed
/// in the same atomic append as the sign-up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailClaim {
    pub user: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EmailClaimEvent {
    EmailClaimed { user_id: UserId },
}

impl EmailClaim {
    /// The claim's events when `user` signs up with this address.
    pub fn claim(&self, user: UserId) -> Result<Vec<EmailClaimEvent>, UserError> {
        match self.user {
            Some(owner) if owner == user => Ok(vec![]),
            Some(_) => Err(UserError::EmailTaken),
            None => Ok(vec![EmailClaimEvent::EmailClaimed { user_id: user }]),
        }
    }
}

impl Aggregate for EmailClaim {
    const CATEGORY: &'static str = "email";
    type Command = UserId;
    type Event = EmailClaimEvent;
    type Error = UserError;

    fn decide(&self, user: &UserId) -> Result<Vec<EmailClaimEvent>, UserError> {
        self.claim(*user)
    }

    fn evolve(&mut self, event: &EmailClaimEvent) {
        let EmailClaimEvent::EmailClaimed { user_id } = event;
        self.user = Some(*user_id);
    }
}
