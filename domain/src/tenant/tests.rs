//! Given/when/then tests of the Tenant aggregate.

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
    let closed = given::<Tenant>([provisioned()])
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
