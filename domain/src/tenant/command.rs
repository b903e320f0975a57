//! What may be asked of a tenant.

use super::{ResourceKind, Slug, TenantName, TenantSettings};
use crate::ids::TenantId;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum TenantCommand {
    Provision {
        tenant_id: TenantId,
        name: TenantName,
        slug: Slug,
        settings: TenantSettings,
        at: DateTime<Utc>,
    },
    Rename {
        name: TenantName,
        at: DateTime<Utc>,
    },
    ChangeSettings {
        settings: TenantSettings,
        at: DateTime<Utc>,
    },
    /// Platform operators only (checked at the edge).
    Suspend {
        reason: String,
        at: DateTime<Utc>,
    },
    Reactivate {
        at: DateTime<Utc>,
    },
    /// Closes the tenant; its data is deleted once `retention` has passed.
    Close {
        at: DateTime<Utc>,
        retention: Duration,
    },
    /// Reserves a slot for a new resource, refused at `limit` active ones of its kind.
    AddResource {
        kind: ResourceKind,
        resource_id: Uuid,
        limit: u32,
    },
    RemoveResource {
        kind: ResourceKind,
        resource_id: Uuid,
    },
    /// Recorded by the data-retention reactor once the tenant's data is gone.
    RecordDataDeleted {
        at: DateTime<Utc>,
    },
}
