//! Why a user command (or an e-mail claim) was refused.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("not a valid e-mail address")]
    InvalidEmail,
    #[error("weak password: {0}")]
    WeakPassword(&'static str),
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error("no such user")]
    NotFound,
    #[error("the account already exists")]
    AlreadySignedUp,
    #[error("the token is invalid or has expired")]
    InvalidToken,
    #[error("the e-mail address is already verified")]
    AlreadyVerified,
    #[error("the e-mail address is not verified yet")]
    EmailNotVerified,
    #[error("no TOTP enrollment is pending")]
    NoTotpEnrollment,
    #[error("the second factor is already enabled")]
    TotpAlreadyEnabled,
    #[error("the second factor is not enabled")]
    TotpNotEnabled,
    #[error("the recovery code is invalid or was used")]
    InvalidRecoveryCode,
    #[error("this TOTP code was already used; wait for the next one")]
    TotpCodeReused,
}
