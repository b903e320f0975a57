//! Personal data in events (e-mail addresses, names, IP addresses) is sealed with a key of
//! its own per data subject. Forgetting the subject destroys the key (crypto-shredding): the
//! events stay as they are, but nothing can read the sealed values any more.
//!
//! Values are sealed at the edge, before a command is built, so aggregates and events only
//! ever hold [`Sealed`] text. Equality lookups (log in by e-mail) use a keyed blind index.

use crate::ids::SubjectId;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A value sealed under a subject's key. Opaque: only the [`PersonalData`] port opens it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl Sealed {
    /// Wraps text produced by a [`PersonalData`] adapter.
    pub fn from_sealed_text(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PersonalDataError {
    #[error("key store: {0}")]
    Store(String),
    #[error("sealed value is damaged or was sealed for another subject")]
    Damaged,
    #[error("this data subject was forgotten; nothing new can be sealed for it")]
    Forgotten,
}

/// The per-subject key vault.
#[async_trait]
pub trait PersonalData: Send + Sync + std::fmt::Debug + 'static {
    /// Seals `plaintext` under `subject`'s key (created on first use).
    async fn seal(&self, subject: SubjectId, plaintext: &str) -> Result<Sealed, PersonalDataError>;
    /// Opens a value; `None` when the subject was forgotten.
    async fn open(
        &self,
        subject: SubjectId,
        sealed: &Sealed,
    ) -> Result<Option<String>, PersonalDataError>;
    /// Destroys the subject's key: every value sealed under it becomes unreadable.
    async fn forget(&self, subject: SubjectId) -> Result<(), PersonalDataError>;
    /// A keyed, deterministic index of `value` for equality lookups (`purpose` separates
    /// uses): reveals nothing about `value` without the master key.
    fn blind_index(&self, purpose: &str, value: &str) -> Uuid;
}
