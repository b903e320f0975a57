//! Users: sign-up, e-mail verification, sessions, password changes and resets, and the TOTP
//! second factor. Also the e-mail claim that keeps e-mail addresses unique.
//!
//! Secrets never reach this module in clear: passwords arrive as argon2id hashes, one-time
//! tokens as hashes, personal data and the TOTP secret sealed (see [`crate::personal_data`]).
//! Checking a password or a TOTP code needs a hasher and a clock, so the edge checks them
//! against this state and then issues the command that records the outcome.
//!
//! This file holds the [`User`] state, folds events into it and routes each command to the
//! file of its concept: verification of the address, sessions, passwords, TOTP.

mod command;
mod email;
mod email_claim;
mod error;
mod event;
mod password;
mod secret;
mod session;
mod token;
mod totp;
mod verification;

#[cfg(test)]
mod tests;

pub use command::UserCommand;
pub use email::Email;
pub use email_claim::{EmailClaim, EmailClaimEvent};
pub use error::UserError;
pub use event::UserEvent;
pub use password::{NewPassword, PasswordChangeReason};
pub use secret::{PendingToken, SecretHash};
pub use session::LoginFailure;
pub use token::UserToken;

use crate::aggregate::Aggregate;
use crate::ids::{SessionId, UserId};
use crate::personal_data::Sealed;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Option<UserId>,
    pub email: Option<Sealed>,
    pub email_index: Option<Uuid>,
    pub email_verified: bool,
    pub password: Option<SecretHash>,
    pub verification: Option<PendingToken>,
    pub password_reset: Option<PendingToken>,
    /// Live sessions and when each expires (expired ones are dropped as new ones start).
    pub sessions: BTreeMap<SessionId, DateTime<Utc>>,
    pub totp_pending: Option<Sealed>,
    pub totp: Option<Sealed>,
    pub recovery_codes: BTreeSet<String>,
    /// The time step of the last TOTP code spent (a code works once).
    #[serde(default)]
    pub totp_last_step: Option<i64>,
    /// When the subject was forgotten (its personal data is unreadable from then on).
    #[serde(default)]
    pub forgotten_at: Option<DateTime<Utc>>,
    /// When the account was deleted.
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl User {
    fn require(&self) -> Result<(), UserError> {
        // A deleted or forgotten account answers as none: nothing sealed for it can be read
        // or written any more, so it cannot be used.
        if self.deleted_at.is_some() || self.forgotten_at.is_some() {
            return Err(UserError::NotFound);
        }
        self.id.map(drop).ok_or(UserError::NotFound)
    }
}

impl Aggregate for User {
    const CATEGORY: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        use UserCommand as C;
        // Every command but the sign-up needs the account to exist (forgetting, an
        // operator's erasure, applies to deleted accounts too).
        if let C::Forget { at } = command {
            self.id.ok_or(UserError::NotFound)?;
            return Ok(if self.forgotten_at.is_some() {
                vec![]
            } else {
                vec![UserEvent::SubjectForgotten { at: *at }]
            });
        }
        if !matches!(command, C::SignUp { .. }) {
            self.require()?;
        }
        match command {
            C::SignUp {
                user_id,
                email,
                email_index,
                password,
                verification,
                verification_expires_at,
                mail,
                at,
            } => {
                if self.id.is_some() {
                    return Err(UserError::AlreadySignedUp);
                }
                Ok(vec![
                    UserEvent::UserSignedUp {
                        user_id: *user_id,
                        email: email.clone(),
                        email_index: *email_index,
                        password: password.clone(),
                        verification: verification.clone(),
                        verification_expires_at: *verification_expires_at,
                        at: *at,
                    },
                    UserEvent::MailQueued {
                        mail: mail.clone(),
                        at: *at,
                    },
                ])
            }
            C::SignUpAgain {
                password,
                verification,
                verification_expires_at,
                verification_mail,
                notice,
                at,
            } => Ok(self.sign_up_again(
                password,
                (verification, *verification_expires_at),
                verification_mail,
                notice,
                *at,
            )),
            C::IssueVerification {
                verification,
                expires_at,
                mail,
                at,
            } => self.issue_verification(verification, *expires_at, mail, *at),
            C::VerifyEmail {
                token,
                password,
                at,
            } => self.verify_email(token, password.as_ref(), *at),
            C::StartSession {
                session_id,
                expires_at,
                recovery_code,
                totp_step,
                at,
            } => self.start_session(
                *session_id,
                *expires_at,
                recovery_code.as_ref(),
                *totp_step,
                *at,
            ),
            C::RecordFailedLogin { reason, at } => Ok(self.record_failed_login(*reason, *at)),
            C::EndSession { session_id, at } => Ok(self.end_session(*session_id, *at)),
            C::RequestPasswordReset {
                token,
                expires_at,
                mail,
                at,
            } => Ok(self.request_password_reset(token, *expires_at, mail, *at)),
            C::ResetPassword {
                token,
                password,
                at,
            } => self.reset_password(token, password, *at),
            C::ChangePassword {
                password,
                keep_session,
                at,
            } => Ok(self.change_password(password, *keep_session, *at)),
            C::StartTotpEnrollment { secret, at } => self.start_totp_enrollment(secret, *at),
            C::EnableTotp { recovery_codes, at } => self.enable_totp(recovery_codes, *at),
            C::DisableTotp {
                totp_step,
                recovery_code,
                at,
            } => self.disable_totp(*totp_step, recovery_code.as_ref(), *at),
            C::DeleteAccount { at } => {
                let mut events = vec![UserEvent::AccountDeleted { at: *at }];
                if self.forgotten_at.is_none() {
                    events.push(UserEvent::SubjectForgotten { at: *at });
                }
                Ok(events)
            }
            C::Forget { .. } => Ok(vec![]),
        }
    }

    fn evolve(&mut self, event: &UserEvent) {
        use UserEvent as E;
        match event {
            E::UserSignedUp {
                user_id,
                email,
                email_index,
                password,
                verification,
                verification_expires_at,
                ..
            } => {
                self.id = Some(*user_id);
                self.email = Some(email.clone());
                self.email_index = Some(*email_index);
                self.password = Some(password.clone());
                self.verification = Some(PendingToken {
                    hash: verification.clone(),
                    expires_at: *verification_expires_at,
                });
            }
            E::EmailVerificationIssued {
                verification,
                expires_at,
                ..
            } => {
                self.verification = Some(PendingToken {
                    hash: verification.clone(),
                    expires_at: *expires_at,
                });
            }
            E::EmailVerified { .. } => {
                self.email_verified = true;
                self.verification = None;
            }
            E::SessionStarted {
                session_id,
                expires_at,
                at,
            } => {
                self.sessions.retain(|_, exp| *exp > *at);
                self.sessions.insert(*session_id, *expires_at);
            }
            E::RecoveryCodeUsed { code, .. } => {
                self.recovery_codes.remove(code.as_str());
            }
            E::TotpCodeUsed { step, .. } => self.totp_last_step = Some(*step),
            E::LoginFailed { .. } => {}
            E::SessionEnded { session_id, .. } => {
                self.sessions.remove(session_id);
            }
            E::SubjectForgotten { at } => {
                self.forgotten_at = Some(*at);
                self.sessions.clear();
            }
            E::AccountDeleted { at } => {
                self.deleted_at = Some(*at);
                self.sessions.clear();
                self.password = None;
                self.verification = None;
                self.password_reset = None;
                self.totp_pending = None;
                self.totp = None;
                self.recovery_codes.clear();
            }
            E::PasswordResetRequested {
                token, expires_at, ..
            } => {
                self.password_reset = Some(PendingToken {
                    hash: token.clone(),
                    expires_at: *expires_at,
                });
            }
            E::PasswordChanged {
                password,
                kept_session,
                ..
            } => {
                self.password = Some(password.clone());
                self.password_reset = None;
                self.sessions
                    .retain(|id, _| Some(*id) == kept_session.as_ref().copied());
            }
            E::TotpEnrollmentStarted { secret, .. } => self.totp_pending = Some(secret.clone()),
            E::TotpEnabled { recovery_codes, .. } => {
                self.totp = self.totp_pending.take();
                self.recovery_codes = recovery_codes
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect();
            }
            E::TotpDisabled { .. } => {
                self.totp = None;
                self.totp_pending = None;
                self.recovery_codes.clear();
            }
            E::MailQueued { .. } => {}
        }
    }
}
