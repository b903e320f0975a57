//! Proving the e-mail address: the token sent at sign-up (or re-issued), and its use.

use super::{SecretHash, User, UserError, UserEvent};
use chrono::{DateTime, Utc};

impl User {
    /// A new verification token (the last one was lost or expired).
    pub(super) fn issue_verification(
        &self,
        verification: &SecretHash,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if self.email_verified {
            return Err(UserError::AlreadyVerified);
        }
        Ok(vec![UserEvent::EmailVerificationIssued {
            verification: verification.clone(),
            expires_at,
            at,
        }])
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
                reason: super::PasswordChangeReason::SetAtVerification,
                kept_session: None,
                at,
            });
        }
        Ok(events)
    }
}
