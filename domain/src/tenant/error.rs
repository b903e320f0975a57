//! Why a tenant command was refused.

use super::ResourceKind;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("tenant name must be 1 to 100 characters without control characters")]
    InvalidName,
    #[error("slug must be 3 to 63 of a-z, 0-9 and -, not starting or ending with -")]
    InvalidSlug,
    #[error("settings: at most 50 keys of a-z, 0-9, _ and . (1-64 bytes), values up to 1 KiB")]
    InvalidSettings,
    #[error("a suspension needs a reason of 1 to 500 characters")]
    InvalidReason,
    #[error("the tenant already exists")]
    AlreadyProvisioned,
    #[error("this slug is taken; choose another")]
    SlugTaken,
    #[error("no such tenant")]
    NotFound,
    #[error("the tenant is closed")]
    Closed,
    #[error("the tenant is suspended")]
    Suspended,
    #[error("the tenant is not suspended")]
    NotSuspended,
    #[error("the tenant already has {limit} active {kind:?} resources, its limit")]
    LimitReached { kind: ResourceKind, limit: u32 },
    #[error("the retention period must not be negative")]
    NegativeRetention,
    #[error("the tenant's data may only be deleted after {0}")]
    RetentionNotOver(DateTime<Utc>),
}
