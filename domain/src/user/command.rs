//! What may be asked of a user's account. Secrets arrive hashed and personal data sealed: the
//! edge checked passwords and codes before sending the command that records the outcome.

use super::{LoginFailure, SecretHash};
use crate::ids::{SessionId, UserId};
use crate::mail::QueuedMail;
use crate::personal_data::Sealed;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    SignUp {
        user_id: UserId,
        email: Sealed,
        /// The blind index of the e-mail address (see the e-mail claim).
        email_index: Uuid,
        password: SecretHash,
        verification: SecretHash,
        verification_expires_at: DateTime<Utc>,
        /// The verification mail (carrying the token).
        mail: QueuedMail,
        at: DateTime<Utc>,
    },
    /// A sign-up for the address of this existing account. Not verified yet: the pending
    /// password is replaced and a fresh token mailed (whoever signed up first loses nothing
    /// they could use: only the mailbox holder can verify, see `VerifyEmail`). Verified: the
    /// owner is told by `notice` and nothing changes. The one who signed up cannot tell which.
    SignUpAgain {
        password: SecretHash,
        verification: SecretHash,
        verification_expires_at: DateTime<Utc>,
        verification_mail: QueuedMail,
        notice: QueuedMail,
        at: DateTime<Utc>,
    },
    /// A new verification token (the last one was lost or expired), and its mail.
    IssueVerification {
        verification: SecretHash,
        expires_at: DateTime<Utc>,
        mail: QueuedMail,
        at: DateTime<Utc>,
    },
    /// `password`: the hash of a new password when the verifier did not give the one set at
    /// sign-up (the edge checked): verifying proves the mailbox, and the mailbox holder's
    /// password is the one that counts from then on.
    VerifyEmail {
        token: SecretHash,
        password: Option<SecretHash>,
        at: DateTime<Utc>,
    },
    /// The edge checked the password (and the second factor, when enabled).
    StartSession {
        session_id: SessionId,
        expires_at: DateTime<Utc>,
        /// A recovery code spent instead of a TOTP code.
        recovery_code: Option<SecretHash>,
        /// The time step of the TOTP code the edge accepted: each step's code works once.
        totp_step: Option<i64>,
        at: DateTime<Utc>,
    },
    RecordFailedLogin {
        reason: LoginFailure,
        at: DateTime<Utc>,
    },
    EndSession {
        session_id: SessionId,
        at: DateTime<Utc>,
    },
    RequestPasswordReset {
        token: SecretHash,
        expires_at: DateTime<Utc>,
        mail: QueuedMail,
        at: DateTime<Utc>,
    },
    ResetPassword {
        token: SecretHash,
        password: SecretHash,
        at: DateTime<Utc>,
    },
    /// The edge checked the current password. Every other session ends.
    ChangePassword {
        password: SecretHash,
        keep_session: SessionId,
        at: DateTime<Utc>,
    },
    StartTotpEnrollment {
        secret: Sealed,
        at: DateTime<Utc>,
    },
    /// The edge checked a code against the pending secret.
    EnableTotp {
        recovery_codes: Vec<SecretHash>,
        at: DateTime<Utc>,
    },
    /// The edge checked the password, and the TOTP code (of time step `totp_step`) against
    /// the secret; or gives the hash of a recovery code, checked here. The code is spent.
    DisableTotp {
        totp_step: Option<i64>,
        recovery_code: Option<SecretHash>,
        at: DateTime<Utc>,
    },
    /// Forget the subject (an operator's erasure, or part of a deletion).
    Forget {
        at: DateTime<Utc>,
    },
    /// Delete the account (its owner; the memberships were handed over or left first).
    DeleteAccount {
        at: DateTime<Utc>,
    },
}
