//! The SessionTokens port: how a session is carried by its holder. A token proves who it was
//! issued to and until when; whether the session is still live (not logged out, password
//! unchanged) is the User aggregate's to say, checked on every request. The adapter (HMAC
//! with a key derived from the master key) lives in `infra`.

use crate::ids::{SessionId, UserId};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaims {
    pub user: UserId,
    pub session: SessionId,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

pub trait SessionTokens: Send + Sync + std::fmt::Debug + 'static {
    fn sign(&self, claims: &SessionClaims) -> String;
    /// The claims of a token this platform issued, if it has not expired at `now`.
    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<SessionClaims, TokenError>;
}
