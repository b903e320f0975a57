//! Proving the e-mail address: the token sent at sign-up (or re-issued), and its use.

use super::{PasswordChangeReason, SecretHash, User, UserError, UserEvent};
use crate::mail::QueuedMail;
use chrono::{DateTime, Utc};

impl User {
    /// A new verification token (the last one was lost or expired).
    pub(super) fn issue_verification(
        &self,
        verification: &SecretHash,
        expires_at: DateTime<Utc>,
        mail: &QueuedMail,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if self.email_verified {
            return Err(UserError::AlreadyVerified);
        }
        Ok(vec![
            UserEvent::EmailVerificationIssued {
                verification: verification.clone(),
                expires_at,
                at,
            },
            UserEvent::MailQueued {
                mail: mail.clone(),
                at,
            },
        ])
    }

    /// Someone signed up again with this account's address (see `UserCommand::SignUpAgain`).
    pub(super) fn sign_up_again(
        &self,
        password: &SecretHash,
        (verification, expires_at): (&SecretHash, DateTime<Utc>),
        verification_mail: &QueuedMail,
        notice: &QueuedMail,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        if self.email_verified {
            return vec![UserEvent::MailQueued {
                mail: notice.clone(),
                at,
            }];
        }
        vec![
            UserEvent::PasswordChanged {
                password: password.clone(),
                reason: PasswordChangeReason::ReplacedBySignUp,
                kept_session: None,
                at,
            },
            UserEvent::EmailVerificationIssued {
                verification: verification.clone(),
                expires_at,
                at,
            },
            UserEvent::MailQueued {
                mail: verification_mail.clone(),
                at,
            },
        ]
    }

    pub(super) fn verify_email(
        &self,
        token: &SecretHash,
        password: Option<&SecretHash>,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        // A verified address has no pending token: any token is refused, so the answer never
        // depends on the account's state.
        if !self
            .verification
            .as_ref()
            .is_some_and(|t| t.matches(token, at))
        {
            return Err(UserError::InvalidToken);
        }
        let mut events = vec![UserEvent::EmailVerified { at }];
        if let Some(password) = password {
            events.push(UserEvent::PasswordChanged {
                password: password.clone(),
                reason: PasswordChangeReason::SetAtVerification,
                kept_session: None,
                at,
            });
        }
        Ok(events)
    }
}
