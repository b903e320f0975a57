//! The mail outbox. A request never talks to a mail server: the command that needs a mail
//! records it as a [`QueuedMail`] on the stream it writes anyway (a user's stream for
//! verification, reset and sign-up notices; a tenant's access stream for invites), in the
//! same atomic append as the fact the mail is about. The `mail_outbox` reactor sends it and
//! records the outcome on the mail's own stream ([`MailDelivery`], `mail-<mail id>`), which
//! is also how a redelivered event is recognised and not sent twice.
//!
//! Everything personal in a queued mail (the address, the one-time token it carries) is
//! sealed under the data subject's key: forgetting the subject makes unsent mail unsendable.

use crate::access::Role;
use crate::aggregate::Aggregate;
use crate::ids::{SubjectId, TenantId};
use crate::personal_data::Sealed;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A mail to send, as recorded by the command that needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedMail {
    /// Names the delivery stream and the message (`Message-ID`), so a resent message is
    /// recognisable as the same one.
    pub mail_id: Uuid,
    /// Whose key seals `to` and `token`.
    pub subject: SubjectId,
    pub to: Sealed,
    pub kind: MailKind,
    /// The one-time token the mail carries, sealed (its hash is on the stream that checks it).
    pub token: Option<Sealed>,
    /// When the mail stops being useful (its token expires): not sent after that.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What the mail says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailKind {
    /// A token that verifies the address.
    Verification,
    /// A token that sets a new password.
    PasswordReset,
    /// Someone tried to sign up with an address that already has a verified account: its
    /// owner is told, and the one who tried learns nothing.
    SignUpAttempt,
    /// A token that joins `tenant_id` with `role`.
    Invite { tenant_id: TenantId, role: Role },
    /// A tenant used `percent` of an allowance this period (sent to its owners once per
    /// allowance and period).
    AllowanceWarning {
        tenant_id: TenantId,
        key: crate::plan::LimitKey,
        percent: u8,
        period_end: DateTime<Utc>,
    },
}

/// The delivery of one queued mail: nothing yet, or its one outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MailDelivery {
    pub outcome: Option<DeliveryEvent>,
}

/// The outcome the outbox records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeliveryEvent {
    /// The mail server accepted the message after `attempts` tries.
    MailSent { attempts: u32, at: DateTime<Utc> },
    /// The mail was given up on: it will never be sent.
    MailNotSent {
        reason: NotSentReason,
        attempts: u32,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotSentReason {
    /// Its token expired before the mail could go out.
    Expired,
    /// The data subject was forgotten: the address can no longer be read.
    SubjectForgotten,
    /// The mail server refused it for good (the reason names the kind of refusal, never the
    /// address).
    Refused(String),
}

/// Records a delivery's outcome; recording a second one is a no-op (the first stands).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordDelivery(pub DeliveryEvent);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {}

impl Aggregate for MailDelivery {
    const CATEGORY: &'static str = "mail";
    type Command = RecordDelivery;
    type Event = DeliveryEvent;
    type Error = DeliveryError;

    fn decide(&self, command: &RecordDelivery) -> Result<Vec<DeliveryEvent>, DeliveryError> {
        Ok(match self.outcome {
            Some(_) => vec![],
            None => vec![command.0.clone()],
        })
    }

    fn evolve(&mut self, event: &DeliveryEvent) {
        if self.outcome.is_none() {
            self.outcome = Some(event.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::aggregate::{at, given};

    #[test]
    fn the_first_outcome_stands() {
        let sent = DeliveryEvent::MailSent {
            attempts: 1,
            at: at(1),
        };
        given::<MailDelivery>([])
            .when(&RecordDelivery(sent.clone()))
            .then([sent])
            .when(&RecordDelivery(DeliveryEvent::MailNotSent {
                reason: NotSentReason::Expired,
                attempts: 0,
                at: at(2),
            }))
            .then_nothing();
    }
}
