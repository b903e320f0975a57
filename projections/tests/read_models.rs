//! Each read model over a given history, through the projector harness: on SQLite and
//! PostgreSQL, live and rebuilt, all four readings equal, and equal to what the history says.
#![expect(clippy::unwrap_used, reason = "tests")]

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::access::{AccessEvent, Accessor, ApiKeyScope, Permission, Role, TenantAccess};
use domain::aggregate::replay;
use domain::ids::{ApiKeyId, TenantId, UserId};
use domain::personal_data::Sealed;
use domain::tenant::{ResourceKind, Slug, Tenant, TenantEvent, TenantName, TenantSettings};
use domain::user::SecretHash;
use infra::projector_harness::History;
use projections::tenant_access::{TenantAccessDirectory, TenantScope};
use projections::tenant_directory::TenantDirectory;
use projections::tenant_retention::TenantRetention;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

fn at(hour: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap() + Duration::hours(hour)
}

fn provisioned(tenant: TenantId, slug: &str) -> TenantEvent {
    TenantEvent::TenantProvisioned {
        tenant_id: tenant,
        name: TenantName::parse("Acme").unwrap(),
        slug: Slug::parse(slug).unwrap(),
        settings: TenantSettings::parse(BTreeMap::from([("region".into(), "eu".into())])).unwrap(),
        at: at(0),
    }
}

/// Two tenants: `gone` lives its whole life (renamed, given a resource, suspended, back,
/// closed, its data deleted), `kept` is provisioned and closed with a retention period.
fn lifecycle(gone: TenantId, kept: TenantId) -> History {
    let tenant =
        |h: History, id: TenantId, e: TenantEvent| h.event::<Tenant>(id.as_uuid(), Some(id), e);
    let h = History::default();
    let h = tenant(h, gone, provisioned(gone, "gone"));
    let h = tenant(h, kept, provisioned(kept, "kept"));
    let h = tenant(
        h,
        gone,
        TenantEvent::TenantRenamed {
            name: TenantName::parse("Gone Inc").unwrap(),
            at: at(1),
        },
    );
    let h = tenant(
        h,
        gone,
        TenantEvent::TenantResourceAdded {
            kind: ResourceKind::Project,
            resource_id: Uuid::from_u128(1),
        },
    );
    let h = tenant(
        h,
        gone,
        TenantEvent::TenantSuspended {
            reason: "unpaid".into(),
            at: at(2),
        },
    );
    let h = tenant(h, gone, TenantEvent::TenantReactivated { at: at(3) });
    let h = tenant(
        h,
        gone,
        TenantEvent::TenantClosed {
            at: at(4),
            delete_data_after: at(5),
        },
    );
    let h = tenant(
        h,
        kept,
        TenantEvent::TenantClosed {
            at: at(4),
            delete_data_after: at(24 * 30),
        },
    );
    tenant(h, gone, TenantEvent::TenantDataDeleted { at: at(6) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_shows_each_tenants_life_and_counts_its_own_events_only() {
    let (gone, kept) = (
        TenantId::from_uuid(Uuid::from_u128(10)),
        TenantId::from_uuid(Uuid::from_u128(20)),
    );
    let rows = lifecycle(gone, kept)
        .project(Arc::new(TenantDirectory), |db| async move {
            TenantDirectory::list(&db, None, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|v| (v.id, v.name, v.slug, v.status, v.settings.len(), v.changes))
                .collect::<Vec<_>>()
        })
        .await;
    assert_eq!(
        rows,
        vec![
            // Six of its events changed it; the resource event is the resource area's.
            (
                gone,
                "Gone Inc".to_owned(),
                "gone".to_owned(),
                "deleted".to_owned(),
                0,
                6
            ),
            (
                kept,
                "Acme".to_owned(),
                "kept".to_owned(),
                "closed".to_owned(),
                1,
                2
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_holds_closed_tenants_until_their_data_is_deleted() {
    let (gone, kept) = (
        TenantId::from_uuid(Uuid::from_u128(30)),
        TenantId::from_uuid(Uuid::from_u128(40)),
    );
    let due = lifecycle(gone, kept)
        .project(Arc::new(TenantRetention), |db| async move {
            let soon = TenantRetention::due(&db, at(24), 10).await.unwrap();
            let all = TenantRetention::due(&db, at(24 * 365), 10).await.unwrap();
            (
                soon,
                all.into_iter()
                    .map(|p| (p.tenant, p.due))
                    .collect::<Vec<_>>(),
            )
        })
        .await;
    assert_eq!(
        due.0,
        vec![],
        "nothing is due after a day: gone is deleted, kept waits"
    );
    assert_eq!(due.1, vec![(kept, at(24 * 30))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_list_shows_members_and_keys_as_the_log_left_them() {
    let tenant = TenantId::from_uuid(Uuid::from_u128(50));
    let (owner, member) = (
        UserId::from_uuid(Uuid::from_u128(51)),
        UserId::from_uuid(Uuid::from_u128(52)),
    );
    let (kept_key, revoked_key) = (
        ApiKeyId::from_uuid(Uuid::from_u128(53)),
        ApiKeyId::from_uuid(Uuid::from_u128(54)),
    );
    let events = vec![
        AccessEvent::MemberAdded {
            user_id: owner,
            email: Sealed::from_sealed_text("sealed-owner".into()),
            role: Role::Owner,
            invite_id: None,
            at: at(0),
        },
        AccessEvent::MemberAdded {
            user_id: member,
            email: Sealed::from_sealed_text("sealed-member".into()),
            role: Role::Member,
            invite_id: None,
            at: at(1),
        },
        AccessEvent::MemberRoleChanged {
            user_id: member,
            role: Role::Viewer,
            by: Accessor::User(owner),
            at: at(2),
        },
        AccessEvent::ApiKeyCreated {
            key_id: kept_key,
            name: "ci".into(),
            scope: ApiKeyScope::ReadOnly,
            secret: SecretHash::new("h1".into()),
            by: Accessor::User(owner),
            at: at(3),
        },
        AccessEvent::ApiKeyCreated {
            key_id: revoked_key,
            name: "old".into(),
            scope: ApiKeyScope::Admin,
            secret: SecretHash::new("h2".into()),
            by: Accessor::User(owner),
            at: at(4),
        },
        AccessEvent::ApiKeyRevoked {
            key_id: revoked_key,
            by: Accessor::User(owner),
            at: at(5),
        },
    ];
    let state: TenantAccess = replay(&events);
    let scope = TenantScope::from(
        &state
            .grant(tenant, Accessor::User(owner), Permission::Read)
            .unwrap(),
    );
    let history = events.into_iter().fold(History::default(), |h, e| {
        h.event::<TenantAccess>(tenant.as_uuid(), Some(tenant), e)
    });
    let (members, keys) = history
        .project(Arc::new(TenantAccessDirectory), move |db| async move {
            let members = TenantAccessDirectory::members(&db, &[scope])
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.user_id, m.role, m.email))
                .collect::<Vec<_>>();
            let keys = TenantAccessDirectory::api_keys(&db, &[scope])
                .await
                .unwrap()
                .into_iter()
                .map(|k| (k.key_id, k.name, k.scope, k.revoked_at))
                .collect::<Vec<_>>();
            (members, keys)
        })
        .await;
    assert_eq!(
        members,
        vec![
            (
                owner.as_uuid(),
                "owner".to_owned(),
                "sealed-owner".to_owned()
            ),
            (
                member.as_uuid(),
                "viewer".to_owned(),
                "sealed-member".to_owned()
            ),
        ]
    );
    assert_eq!(
        keys,
        vec![
            (
                kept_key.as_uuid(),
                "ci".to_owned(),
                "read_only".to_owned(),
                None
            ),
            (
                revoked_key.as_uuid(),
                "old".to_owned(),
                "admin".to_owned(),
                Some(at(5))
            ),
        ]
    );
}
