//! The facts stored on a user's stream. Their stored shape is pinned by the golden files in
//! `domain/tests/golden/user`: change one only with a new schema version and an upcaster.

use super::{LoginFailure, PasswordChangeReason, SecretHash};
use crate::ids::{SessionId, UserId};
use crate::mail::QueuedMail;
use crate::personal_data::Sealed;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    UserSignedUp {
        user_id: UserId,
        email: Sealed,
        email_index: Uuid,
        password: SecretHash,
        verification: SecretHash,
        verification_expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    EmailVerificationIssued {
        verification: SecretHash,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    EmailVerified {
        at: DateTime<Utc>,
    },
    SessionStarted {
        session_id: SessionId,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    RecoveryCodeUsed {
        code: SecretHash,
        at: DateTime<Utc>,
    },
    /// A TOTP code (of time step `step`) was spent on a log-in.
    TotpCodeUsed {
        step: i64,
        at: DateTime<Utc>,
    },
    LoginFailed {
        reason: LoginFailure,
        at: DateTime<Utc>,
    },
    SessionEnded {
        session_id: SessionId,
        at: DateTime<Utc>,
    },
    PasswordResetRequested {
        token: SecretHash,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// Every session but `kept_session` ended with it.
    PasswordChanged {
        password: SecretHash,
        reason: PasswordChangeReason,
        kept_session: Option<SessionId>,
        at: DateTime<Utc>,
    },
    TotpEnrollmentStarted {
        secret: Sealed,
        at: DateTime<Utc>,
    },
    TotpEnabled {
        recovery_codes: Vec<SecretHash>,
        at: DateTime<Utc>,
    },
    /// TOTP turned off: the secret, any pending enrollment and the recovery codes are gone.
    /// The edge checked the password and a code (recorded just before, as the code used).
    TotpDisabled {
        at: DateTime<Utc>,
    },
    /// A mail for this account, queued for the outbox (`crate::mail`), in the same append as
    /// the fact it is about.
    MailQueued {
        mail: QueuedMail,
        at: DateTime<Utc>,
    },
    /// The subject's personal-data key is to be destroyed (crypto-shredding): from now on
    /// nothing sealed for this user can be read, and nothing new is sealed.
    SubjectForgotten {
        at: DateTime<Utc>,
    },
    /// The user deleted the account: every session ended, the password gone; the account
    /// answers as if it did not exist.
    AccountDeleted {
        at: DateTime<Utc>,
    },
}
