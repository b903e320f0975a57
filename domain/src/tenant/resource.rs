//! The resources a tenant holds, counted per kind so plan limits hold under concurrency: a
//! resource is created in the same atomic append as the tenant event that reserves its slot.

use super::{Tenant, TenantError, TenantEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Kinds of resources a tenant holds and that plans limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Project,
    BackupSource,
    BackupDestination,
    Pipeline,
    ApiKey,
}

impl Tenant {
    /// Reserves a slot for a new resource, refused at `limit` active ones of its kind.
    pub(super) fn add_resource(
        &self,
        kind: ResourceKind,
        resource_id: Uuid,
        limit: u32,
    ) -> Result<Vec<TenantEvent>, TenantError> {
        self.require_active()?;
        let held = self.resources.get(&kind);
        if held.is_some_and(|ids| ids.contains(&resource_id)) {
            return Ok(vec![]);
        }
        if held.map_or(0, BTreeSet::len) >= limit as usize {
            return Err(TenantError::LimitReached { kind, limit });
        }
        Ok(vec![TenantEvent::TenantResourceAdded { kind, resource_id }])
    }

    pub(super) fn remove_resource(
        &self,
        kind: ResourceKind,
        resource_id: Uuid,
    ) -> Result<Vec<TenantEvent>, TenantError> {
        self.require()?;
        if !self
            .resources
            .get(&kind)
            .is_some_and(|ids| ids.contains(&resource_id))
        {
            return Ok(vec![]);
        }
        Ok(vec![TenantEvent::TenantResourceRemoved {
            kind,
            resource_id,
        }])
    }
}
