//! The Credentials port: password hashing and one-time tokens; and the OneTimeCodes port
//! (TOTP) (verification, reset, invite and
//! API key secrets). Use cases name it; the adapter (argon2id, SHA-256, the OS's random
//! numbers) lives in `infra`. Events only ever hold the hashes.

use crate::user::SecretHash;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct CredentialsError(pub String);

#[async_trait]
pub trait Credentials: Send + Sync + std::fmt::Debug + 'static {
    /// Hashes a password (slow by design: adapters run it off the async threads).
    async fn hash_password(&self, password: &str) -> Result<SecretHash, CredentialsError>;
    /// Whether `password` matches `hash` (as slow as hashing, whatever the answer).
    async fn password_matches(&self, password: &str, hash: &SecretHash) -> bool;
    /// Takes as long as [`Self::password_matches`] and matches nothing: what a log-in for an
    /// account that does not exist costs, so timing tells nothing.
    async fn decoy_check(&self, password: &str);
    /// A new random one-time secret, in a form that can travel in a URL.
    fn new_token(&self) -> String;
    /// The stored form of a token.
    fn hash_token(&self, token: &str) -> SecretHash;
    /// Whether `token` matches `hash`, in constant time.
    fn token_matches(&self, token: &str, hash: &SecretHash) -> bool;
}

/// Time-based one-time codes (RFC 6238), the second factor. Use cases name it; the adapter
/// (HMAC-SHA1, 30-second steps) lives in `infra`.
pub trait OneTimeCodes: Send + Sync + std::fmt::Debug + 'static {
    /// A new random secret, in the text form that is sealed into events.
    fn new_secret(&self) -> String;
    /// The time step at which `code` is valid for `secret` around `at`, if it is (so a code
    /// seen before can be refused).
    fn matching_step(&self, secret: &str, code: &str, at: DateTime<Utc>) -> Option<i64>;
}
