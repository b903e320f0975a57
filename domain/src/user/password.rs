//! Passwords: the policy a new one must meet, and the decisions that change one (a change by
//! a logged-in user, or a reset through an e-mailed link).

use super::{SecretHash, User, UserError, UserEvent};
use crate::ids::SessionId;
use crate::mail::QueuedMail;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A password a user chose, checked against the policy: 10 to 128 characters, at least 5
/// different ones, and not one of the passwords every attacker tries first.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

const COMMON_PASSWORDS: &[&str] = &[
    "password123",
    "password1234",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "iloveyou123",
    "letmein1234",
    "administrator",
    "welcome1234",
    "passw0rd123",
];

impl NewPassword {
    pub fn parse(password: &str) -> Result<Self, UserError> {
        let chars = password.chars().count();
        if !(10..=128).contains(&chars) {
            return Err(UserError::WeakPassword(
                "a password needs 10 to 128 characters",
            ));
        }
        if password.chars().collect::<BTreeSet<_>>().len() < 5 {
            return Err(UserError::WeakPassword(
                "a password needs at least 5 different characters",
            ));
        }
        if COMMON_PASSWORDS.contains(&password.to_lowercase().as_str()) {
            return Err(UserError::WeakPassword("this password is too common"));
        }
        Ok(Self(password.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Why a password changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordChangeReason {
    Changed,
    Reset,
    /// Set by whoever verified the address, who did not know the password given at sign-up:
    /// someone else may have signed up with their address.
    SetAtVerification,
    /// Replaced by a later sign-up for the same address before it was verified.
    ReplacedBySignUp,
}

impl User {
    pub(super) fn request_password_reset(
        &self,
        token: &SecretHash,
        expires_at: DateTime<Utc>,
        mail: &QueuedMail,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        vec![
            UserEvent::PasswordResetRequested {
                token: token.clone(),
                expires_at,
                at,
            },
            UserEvent::MailQueued {
                mail: mail.clone(),
                at,
            },
        ]
    }

    pub(super) fn reset_password(
        &self,
        token: &SecretHash,
        password: &SecretHash,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self
            .password_reset
            .as_ref()
            .is_some_and(|t| t.matches(token, at))
        {
            return Err(UserError::InvalidToken);
        }
        let mut events = vec![];
        // Following the link proves the address as well as a verification would.
        if !self.email_verified {
            events.push(UserEvent::EmailVerified { at });
        }
        events.push(UserEvent::PasswordChanged {
            password: password.clone(),
            reason: PasswordChangeReason::Reset,
            kept_session: None,
            at,
        });
        Ok(events)
    }

    /// The edge checked the current password. Every other session ends.
    pub(super) fn change_password(
        &self,
        password: &SecretHash,
        keep_session: SessionId,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        vec![UserEvent::PasswordChanged {
            password: password.clone(),
            reason: PasswordChangeReason::Changed,
            kept_session: Some(keep_session),
            at,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_the_reason() {
        assert!(matches!(
            NewPassword::parse("short"),
            Err(UserError::WeakPassword(_))
        ));
        assert!(matches!(
            NewPassword::parse("aaaaaaaaaaaa"),
            Err(UserError::WeakPassword(_))
        ));
        assert!(matches!(
            NewPassword::parse("Password123"),
            Err(UserError::WeakPassword(_))
        ));
        assert!(NewPassword::parse("correct horse battery").is_ok());
        assert_eq!(
            format!("{:?}", NewPassword::parse("correct horse battery")),
            "Ok(NewPassword(<redacted>))"
        );
    }
}
