//! The Tenant aggregate: the unit of isolation and billing. Provisioned, renamed, given
//! settings, suspended and reactivated (by the platform), closed; it also keeps count of the
//! resources it holds of each kind, so per-tenant limits hold under concurrency (a resource is
//! created in the same atomic append as the tenant event that reserves its slot).

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

// The value objects below deserialize without running `parse` again (`transparent`): they are
// read back from stored events and snapshots, which were valid under the rule of the day they
// were written. Re-checking them would make a stream unreadable as soon as a rule tightens.
// Input from outside goes through `parse`, the only way to build one by hand.

/// A tenant's display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(name: &str) -> Result<Self, TenantError> {
        let name = name.trim();
        let len = name.chars().count();
        if len == 0 || len > 100 || name.chars().any(char::is_control) {
            return Err(TenantError::InvalidName);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantName {
    type Error = TenantError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantName> for String {
    fn from(value: TenantName) -> Self {
        value.0
    }
}

/// A URL-safe handle: 3 to 63 of `a-z 0-9 -`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(slug: &str) -> Result<Self, TenantError> {
        let ok = (3..=63).contains(&slug.len())
            && slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !slug.starts_with('-')
            && !slug.ends_with('-');
        if ok {
            Ok(Self(slug.to_owned()))
        } else {
            Err(TenantError::InvalidSlug)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = TenantError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Slug> for String {
    fn from(value: Slug) -> Self {
        value.0
    }
}

/// Free-form tenant settings: at most 50 keys of `a-z 0-9 _ .` (1-64 bytes), values of at most
/// 1,024 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantSettings(BTreeMap<String, String>);

impl TenantSettings {
    pub fn parse(entries: BTreeMap<String, String>) -> Result<Self, TenantError> {
        let key_ok = |k: &str| {
            (1..=64).contains(&k.len())
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        };
        if entries.len() > 50
            || entries
                .iter()
                .any(|(k, v)| !key_ok(k) || v.len() > 1024 || v.contains('\0'))
        {
            return Err(TenantError::InvalidSettings);
        }
        Ok(Self(entries))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl TryFrom<BTreeMap<String, String>> for TenantSettings {
    type Error = TenantError;
    fn try_from(value: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<TenantSettings> for BTreeMap<String, String> {
    fn from(value: TenantSettings) -> Self {
        value.0
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
    Closed,
}

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

/// The tenant's state, as far as decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: Option<TenantId>,
    pub name: Option<TenantName>,
    pub slug: Option<Slug>,
    pub settings: TenantSettings,
    pub status: Option<TenantStatus>,
    pub delete_data_after: Option<DateTime<Utc>>,
    pub data_deleted: bool,
    pub resources: BTreeMap<ResourceKind, BTreeSet<Uuid>>,
}

impl Tenant {
    fn require(&self) -> Result<TenantStatus, TenantError> {
        self.status.ok_or(TenantError::NotFound)
    }

    fn require_open(&self) -> Result<TenantStatus, TenantError> {
        match self.require()? {
            TenantStatus::Closed => Err(TenantError::Closed),
            status => Ok(status),
        }
    }

    fn require_active(&self) -> Result<(), TenantError> {
        match self.require_open()? {
            TenantStatus::Suspended => Err(TenantError::Suspended),
            _ => Ok(()),
        }
    }
}

impl Aggregate for Tenant {
    const CATEGORY: &'static str = "tenant";
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
            } => {
                self.require_active()?;
                let held = self.resources.get(kind);
                if held.is_some_and(|ids| ids.contains(resource_id)) {
                    return Ok(vec![]);
                }
                if held.map_or(0, BTreeSet::len) >= *limit as usize {
                    return Err(TenantError::LimitReached {
                        kind: *kind,
                        limit: *limit,
                    });
                }
                vec![E::TenantResourceAdded {
                    kind: *kind,
                    resource_id: *resource_id,
                }]
            }
            C::RemoveResource { kind, resource_id } => {
                self.require()?;
                if !self
                    .resources
                    .get(kind)
                    .is_some_and(|ids| ids.contains(resource_id))
                {
                    return Ok(vec![]);
                }
                vec![E::TenantResourceRemoved {
                    kind: *kind,
                    resource_id: *resource_id,
                }]
            }
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
            E::TenantSuspended { .. } => self.status = Some(TenantStatus::Suspended),
            E::TenantReactivated { .. } => self.status = Some(TenantStatus::Active),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::aggregate::{at, given};

    fn provisioned() -> TenantEvent {
        TenantEvent::TenantProvisioned {
            tenant_id: TenantId::from_uuid(Uuid::nil()),
            name: TenantName::parse("Acme").expect("name"),
            slug: Slug::parse("acme").expect("slug"),
            settings: TenantSettings::default(),
            at: at(0),
        }
    }

    #[test]
    fn provisioning_twice_is_refused() {
        let cmd = TenantCommand::Provision {
            tenant_id: TenantId::from_uuid(Uuid::nil()),
            name: TenantName::parse("Acme").expect("name"),
            slug: Slug::parse("acme").expect("slug"),
            settings: TenantSettings::default(),
            at: at(0),
        };
        given::<Tenant>([]).when(&cmd).then([provisioned()]);
        given::<Tenant>([provisioned()])
            .when(&cmd)
            .then_refused(TenantError::AlreadyProvisioned);
    }

    #[test]
    fn renaming_to_the_same_name_changes_nothing() {
        let same = TenantCommand::Rename {
            name: TenantName::parse(" Acme ").expect("name"),
            at: at(1),
        };
        given::<Tenant>([provisioned()]).when(&same).then_nothing();
        let other = TenantCommand::Rename {
            name: TenantName::parse("Acme Ltd").expect("name"),
            at: at(1),
        };
        given::<Tenant>([])
            .when(&other)
            .then_refused(TenantError::NotFound);
        given::<Tenant>([provisioned()])
            .when(&other)
            .then([TenantEvent::TenantRenamed {
                name: TenantName::parse("Acme Ltd").expect("name"),
                at: at(1),
            }]);
    }

    #[test]
    fn suspension_blocks_new_resources_until_reactivated() {
        let suspended = TenantEvent::TenantSuspended {
            reason: "unpaid".into(),
            at: at(1),
        };
        let add = TenantCommand::AddResource {
            kind: ResourceKind::Project,
            resource_id: Uuid::nil(),
            limit: 5,
        };
        given::<Tenant>([provisioned(), suspended.clone()])
            .when(&add)
            .then_refused(TenantError::Suspended);
        let reactivated = TenantEvent::TenantReactivated { at: at(2) };
        given::<Tenant>([provisioned(), suspended, reactivated])
            .when(&add)
            .then([TenantEvent::TenantResourceAdded {
                kind: ResourceKind::Project,
                resource_id: Uuid::nil(),
            }]);
        given::<Tenant>([provisioned()])
            .when(&TenantCommand::Reactivate { at: at(2) })
            .then_refused(TenantError::NotSuspended);
        let no_reason = TenantCommand::Suspend {
            reason: "  ".into(),
            at: at(1),
        };
        given::<Tenant>([provisioned()])
            .when(&no_reason)
            .then_refused(TenantError::InvalidReason);
    }

    #[test]
    fn resources_are_limited_per_kind_and_adding_one_twice_is_a_no_op() {
        let added = |n: u128| TenantEvent::TenantResourceAdded {
            kind: ResourceKind::Project,
            resource_id: Uuid::from_u128(n),
        };
        let two_held = given::<Tenant>([provisioned(), added(1), added(2)]);
        let add = |n: u128, limit| TenantCommand::AddResource {
            kind: ResourceKind::Project,
            resource_id: Uuid::from_u128(n),
            limit,
        };
        two_held
            .when(&add(3, 2))
            .then_refused(TenantError::LimitReached {
                kind: ResourceKind::Project,
                limit: 2,
            });
        two_held.when(&add(2, 2)).then_nothing();
        let other_kind = TenantCommand::AddResource {
            kind: ResourceKind::Pipeline,
            resource_id: Uuid::from_u128(3),
            limit: 2,
        };
        two_held
            .when(&other_kind)
            .then([TenantEvent::TenantResourceAdded {
                kind: ResourceKind::Pipeline,
                resource_id: Uuid::from_u128(3),
            }]);
        let removed = TenantEvent::TenantResourceRemoved {
            kind: ResourceKind::Project,
            resource_id: Uuid::from_u128(1),
        };
        two_held.and([removed]).when(&add(3, 2)).then([added(3)]);
    }

    #[test]
    fn closing_schedules_data_deletion_after_the_retention_period() {
        let close = TenantCommand::Close {
            at: at(1),
            retention: Duration::hours(3),
        };
        let closed =
            given::<Tenant>([provisioned()])
                .when(&close)
                .then([TenantEvent::TenantClosed {
                    at: at(1),
                    delete_data_after: at(4),
                }]);
        closed.when(&close).then_nothing();
        closed
            .when(&TenantCommand::RecordDataDeleted { at: at(3) })
            .then_refused(TenantError::RetentionNotOver(at(4)));
        closed
            .when(&TenantCommand::RecordDataDeleted { at: at(4) })
            .then([TenantEvent::TenantDataDeleted { at: at(4) }]);
        let rename = TenantCommand::Rename {
            name: TenantName::parse("X").expect("name"),
            at: at(5),
        };
        closed.when(&rename).then_refused(TenantError::Closed);
    }

    #[test]
    fn value_objects_parse_once() {
        assert!(TenantName::parse("").is_err());
        assert!(TenantName::parse(&"x".repeat(101)).is_err());
        assert!(Slug::parse("ab").is_err());
        assert!(Slug::parse("-acme").is_err());
        assert!(Slug::parse("Acme").is_err());
        let bad = BTreeMap::from([("Bad Key".to_owned(), "v".to_owned())]);
        assert!(TenantSettings::parse(bad).is_err());
    }

    /// A rule that tightens later must not make old streams unreadable: what was stored under
    /// yesterday's rule decodes, evolves, and the tenant can still be acted on.
    #[test]
    fn stored_events_decode_and_evolve_even_when_todays_rules_refuse_their_values() {
        use crate::aggregate::decode_event;
        use serde_json::json;

        let long_name = "N".repeat(150);
        let legacy_settings = BTreeMap::from([("Legacy Key".to_owned(), "v".to_owned())]);
        assert!(TenantName::parse(&long_name).is_err());
        assert!(Slug::parse("Old_Slug").is_err());
        assert!(TenantSettings::parse(legacy_settings.clone()).is_err());

        let provisioned = decode_event::<Tenant>(
            "TenantProvisioned",
            1,
            json!({
                "tenant_id": Uuid::nil(),
                "name": long_name,
                "slug": "Old_Slug",
                "settings": { "Legacy Key": "v" },
                "at": "2026-01-01T00:00:00Z"
            }),
        )
        .expect("a stored event decodes whatever today's rules say");
        let renamed = decode_event::<Tenant>(
            "TenantRenamed",
            1,
            json!({ "name": "tab\tname", "at": "2026-01-01T01:00:00Z" }),
        )
        .expect("a stored rename decodes");
        let many: serde_json::Map<String, serde_json::Value> =
            (0..60).map(|i| (format!("k{i}"), json!("v"))).collect();
        let settings_changed = decode_event::<Tenant>(
            "TenantSettingsChanged",
            1,
            json!({ "settings": many, "at": "2026-01-01T02:00:00Z" }),
        )
        .expect("stored settings decode");

        let history = given::<Tenant>([provisioned]);
        let state = history.state();
        assert_eq!(
            state.name.as_ref().map(TenantName::as_str),
            Some(long_name.as_str())
        );
        assert_eq!(state.slug.as_ref().map(Slug::as_str), Some("Old_Slug"));
        assert_eq!(state.settings.entries(), &legacy_settings);

        let history = history.and([renamed, settings_changed]);
        let state = history.state();
        assert_eq!(
            state.name.as_ref().map(TenantName::as_str),
            Some("tab\tname")
        );
        assert_eq!(state.settings.entries().len(), 60);
        let rename = TenantCommand::Rename {
            name: TenantName::parse("Acme").expect("name"),
            at: at(3),
        };
        history.when(&rename).then_accepted();

        // Snapshots hold the same values and decode the same way.
        let snapshot = serde_json::to_value(state).expect("snapshot");
        let back: Tenant = serde_json::from_value(snapshot).expect("snapshot decodes");
        assert_eq!(&back, state);
    }
}
