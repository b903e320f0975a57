//! The facts stored on a tenant's stream. Their stored shape is pinned by the golden files in
//! `domain/tests/golden/tenant`: change one only with a new schema version and an upcaster.

use super::{ResourceKind, Slug, TenantName, TenantSettings};
use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantEvent {
    TenantProvisioned {
        tenant_id: TenantId,
        name: TenantName,
        slug: Slug,
        settings: TenantSettings,
        at: DateTime<Utc>,
    },
    TenantRenamed {
        name: TenantName,
        at: DateTime<Utc>,
    },
    TenantSettingsChanged {
        settings: TenantSettings,
        at: DateTime<Utc>,
    },
    TenantSuspended {
        reason: String,
        at: DateTime<Utc>,
    },
    TenantReactivated {
        at: DateTime<Utc>,
    },
    TenantClosed {
        at: DateTime<Utc>,
        delete_data_after: DateTime<Utc>,
    },
    TenantResourceAdded {
        kind: ResourceKind,
        resource_id: Uuid,
    },
    TenantResourceRemoved {
        kind: ResourceKind,
        resource_id: Uuid,
    },
    TenantDataDeleted {
        at: DateTime<Utc>,
    },
}
