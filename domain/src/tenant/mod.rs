//! The Tenant aggregate: the unit of isolation and billing. Provisioned, renamed, given
//! settings, suspended and reactivated (by the platform), closed; it also keeps count of the
//! resources it holds of each kind, so per-tenant limits hold under concurrency (a resource is
//! created in the same atomic append as the tenant event that reserves its slot).
//!
//! This file holds the [`Tenant`] state and its decide/evolve; its value objects (name, slug,
//! settings), status and resources have files of their own.

mod command;
mod error;
mod event;
mod name;
mod resource;
mod settings;
mod slug_claim;
mod status;

#[cfg(test)]
mod tests;

pub use command::TenantCommand;
pub use error::TenantError;
pub use event::TenantEvent;
pub use name::{Slug, TenantName};
pub use resource::ResourceKind;
pub use settings::TenantSettings;
pub use slug_claim::{SlugClaim, SlugClaimEvent};
pub use status::{TenantStatus, UnknownTenantStatus};

use crate::aggregate::Aggregate;
use crate::event::StreamId;
use crate::ids::TenantId;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The tenant whose stream `stream` is (`tenant-<uuid>`), if it is a tenant stream.
pub fn tenant_of_stream(stream: &StreamId) -> Option<TenantId> {
    stream
        .aggregate_id(<Tenant as Aggregate>::CATEGORY)
        .map(TenantId::from_uuid)
}

/// The tenant's state, as far as decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: Option<TenantId>,
    pub name: Option<TenantName>,
    pub slug: Option<Slug>,
    pub settings: TenantSettings,
    pub status: Option<TenantStatus>,
    pub delete_data_after: Option<DateTime<Utc>>,
    /// Why it is suspended, while it is.
    #[serde(default)]
    pub suspension_reason: Option<String>,
    pub data_deleted: bool,
    pub resources: BTreeMap<ResourceKind, BTreeSet<Uuid>>,
}

impl Aggregate for Tenant {
    const CATEGORY: &'static str = "tenant";
    /// 2: the suspension's reason is kept.
    const SNAPSHOT_VERSION: u32 = 2;
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = TenantError;

    fn decide(&self, command: &TenantCommand) -> Result<Vec<TenantEvent>, TenantError> {
        use TenantCommand as C;
        use TenantEvent as E;
        Ok(match command {
            C::Provision {
                tenant_id,
                name,
                slug,
                settings,
                at,
            } => {
                if self.status.is_some() {
                    return Err(TenantError::AlreadyProvisioned);
                }
                vec![E::TenantProvisioned {
                    tenant_id: *tenant_id,
                    name: name.clone(),
                    slug: slug.clone(),
                    settings: settings.clone(),
                    at: *at,
                }]
            }
            C::Rename { name, at } => {
                self.require_open()?;
                if self.name.as_ref() == Some(name) {
                    return Ok(vec![]);
                }
                vec![E::TenantRenamed {
                    name: name.clone(),
                    at: *at,
                }]
            }
            C::ChangeSettings { settings, at } => {
                self.require_open()?;
                if &self.settings == settings {
                    return Ok(vec![]);
                }
                vec![E::TenantSettingsChanged {
                    settings: settings.clone(),
                    at: *at,
                }]
            }
            C::Suspend { reason, at } => {
                if self.require_open()? == TenantStatus::Suspended {
                    return Ok(vec![]);
                }
                let reason = reason.trim();
                if reason.is_empty() || reason.chars().count() > 500 {
                    return Err(TenantError::InvalidReason);
                }
                vec![E::TenantSuspended {
                    reason: reason.to_owned(),
                    at: *at,
                }]
            }
            C::Reactivate { at } => {
                if self.require_open()? != TenantStatus::Suspended {
                    return Err(TenantError::NotSuspended);
                }
                vec![E::TenantReactivated { at: *at }]
            }
            C::Close { at, retention } => {
                if self.require()? == TenantStatus::Closed {
                    return Ok(vec![]);
                }
                if *retention < Duration::zero() {
                    return Err(TenantError::NegativeRetention);
                }
                vec![E::TenantClosed {
                    at: *at,
                    delete_data_after: *at + *retention,
                }]
            }
            C::AddResource {
                kind,
                resource_id,
                limit,
            } => self.add_resource(*kind, *resource_id, *limit)?,
            C::RemoveResource { kind, resource_id } => self.remove_resource(*kind, *resource_id)?,
            C::RecordDataDeleted { at } => {
                if self.require()? != TenantStatus::Closed {
                    return Err(TenantError::NotFound);
                }
                if self.data_deleted {
                    return Ok(vec![]);
                }
                match self.delete_data_after {
                    Some(after) if *at < after => return Err(TenantError::RetentionNotOver(after)),
                    _ => vec![E::TenantDataDeleted { at: *at }],
                }
            }
        })
    }

    fn evolve(&mut self, event: &TenantEvent) {
        use TenantEvent as E;
        match event {
            E::TenantProvisioned {
                tenant_id,
                name,
                slug,
                settings,
                ..
            } => {
                self.id = Some(*tenant_id);
                self.name = Some(name.clone());
                self.slug = Some(slug.clone());
                self.settings = settings.clone();
                self.status = Some(TenantStatus::Active);
            }
            E::TenantRenamed { name, .. } => self.name = Some(name.clone()),
            E::TenantSettingsChanged { settings, .. } => self.settings = settings.clone(),
            E::TenantSuspended { reason, .. } => {
                self.status = Some(TenantStatus::Suspended);
                self.suspension_reason = Some(reason.clone());
            }
            E::TenantReactivated { .. } => {
                self.status = Some(TenantStatus::Active);
                self.suspension_reason = None;
            }
            E::TenantClosed {
                delete_data_after, ..
            } => {
                self.status = Some(TenantStatus::Closed);
                self.delete_data_after = Some(*delete_data_after);
            }
            E::TenantResourceAdded { kind, resource_id } => {
                self.resources
                    .entry(*kind)
                    .or_default()
                    .insert(*resource_id);
            }
            E::TenantResourceRemoved { kind, resource_id } => {
                if let Some(ids) = self.resources.get_mut(kind) {
                    ids.remove(resource_id);
                }
            }
            E::TenantDataDeleted { .. } => self.data_deleted = true,
        }
    }
}
