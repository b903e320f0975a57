//! Secrets as the model keeps them: one-way hashes, never the secret itself, and the one-time
//! tokens (e-mail verification, password reset) that are pending until used or expired.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A one-way hash of a secret (a password hash in PHC format, or a token's SHA-256).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(String);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

impl SecretHash {
    pub fn new(hash: String) -> Self {
        Self(hash)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A pending one-time token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingToken {
    pub hash: SecretHash,
    pub expires_at: DateTime<Utc>,
}

impl PendingToken {
    /// Whether `token` is this one and still valid at `at`.
    pub(super) fn matches(&self, token: &SecretHash, at: DateTime<Utc>) -> bool {
        &self.hash == token && at < self.expires_at
    }
}
