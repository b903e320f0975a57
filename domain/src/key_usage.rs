//! The KeyUsage port: when each API key was last used. Not an event (a busy key would write
//! one per request) and not a read model (a rebuild could not reproduce it): a small record
//! the API keeps beside the log and shows next to the key.

use crate::ids::{ApiKeyId, TenantId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
#[error("API key usage could not be read: {0}")]
pub struct KeyUsageError(pub String);

#[async_trait]
pub trait KeyUsage: Send + Sync + std::fmt::Debug + 'static {
    /// Notes that `key` was just used. Best effort: a failure only makes "last used" older, so
    /// adapters log it rather than fail the request.
    async fn record(&self, tenant: TenantId, key: ApiKeyId);
    /// When each of `keys` was last used (keys never used are absent).
    async fn last_used(
        &self,
        keys: &[ApiKeyId],
    ) -> Result<HashMap<ApiKeyId, DateTime<Utc>>, KeyUsageError>;
}
