//! The Mailer port: how the platform sends e-mail (verification, password reset, invites).
//! Only the mail outbox (`commands::mail`) calls it, never a request.

use async_trait::async_trait;
use uuid::Uuid;

/// One plain-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The queued mail's id: adapters derive the `Message-ID` from it, so a message sent
    /// again after a crash is recognisably the same message.
    pub id: Uuid,
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Why a message was not sent. `reason` names the kind of failure, never the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("e-mail could not be sent: {reason}")]
pub struct MailError {
    pub reason: String,
    /// The server refused the message for good (an invalid recipient, say): trying again
    /// will not help. Otherwise the failure may pass (server down, busy, timing out).
    pub permanent: bool,
}

impl MailError {
    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: false,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: true,
        }
    }
}

#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug + 'static {
    async fn send(&self, mail: Mail) -> Result<(), MailError>;
}
