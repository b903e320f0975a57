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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_shows_the_catalog_subscriptions_and_entitlements_the_log_left() {
    use domain::aggregate::Aggregate;
    use domain::plan::{
        Interval, Limit, LimitKey, Plan, PlanCommand, PlanDraft, PlanKey, PlanName, PlanRef,
    };
    use domain::subscription::{LimitOverride, Subscription, SubscriptionCommand};
    use projections::billing::BillingReadModel;
    let tenant = TenantId::from_uuid(Uuid::from_u128(70));
    let owner = UserId::from_uuid(Uuid::from_u128(71));
    let pro = PlanKey::parse("pro").unwrap();
    // The catalog: the free plan, and two versions of Pro, then Pro retired.
    let mut draft = PlanDraft::free();
    draft.name = PlanName::parse("Pro").unwrap();
    draft.prices[0].amount = 2_900;
    let mut plans = Vec::new();
    let free: Plan = replay(&[]);
    let free_events = free
        .decide(&PlanCommand::Publish {
            key: PlanKey::free(),
            draft: PlanDraft::free(),
            at: at(0),
        })
        .unwrap();
    plans.push((PlanKey::free(), free_events));
    let mut pro_events = Vec::new();
    for amount in [2_900, 3_900] {
        draft.prices[0].amount = amount;
        let state: Plan = replay(&pro_events);
        pro_events.extend(
            state
                .decide(&PlanCommand::Publish {
                    key: pro.clone(),
                    draft: draft.clone(),
                    at: at(1),
                })
                .unwrap(),
        );
    }
    let state: Plan = replay(&pro_events);
    pro_events.extend(state.decide(&PlanCommand::Retire { at: at(2) }).unwrap());
    plans.push((pro.clone(), pro_events));
    // Ada's tenant on Pro version 1, members overridden to 10 until hour 48.
    let commands = [
        SubscriptionCommand::Start {
            tenant,
            plan: PlanRef {
                key: pro.clone(),
                version: 1,
            },
            // Version 1's price.
            price: domain::plan::Price {
                amount: 2_900,
                ..draft.prices[0].clone()
            },
            trial_days: 0,
            at: at(3),
        },
        SubscriptionCommand::OverrideLimit {
            key: LimitKey::Members,
            limit: Some(LimitOverride {
                limit: Limit::At(10),
                expires_at: Some(at(48)),
            }),
            at: at(4),
        },
    ];
    let mut subscription_events = Vec::new();
    for command in &commands {
        let state: Subscription = replay(&subscription_events);
        subscription_events.extend(state.decide(command).unwrap());
    }
    let founded = AccessEvent::MemberAdded {
        user_id: owner,
        email: Sealed::from_sealed_text("sealed-owner".into()),
        role: Role::Owner,
        invite_id: None,
        at: at(0),
    };
    let access: TenantAccess = replay(std::slice::from_ref(&founded));
    let scope = TenantScope::from(
        &access
            .grant(tenant, Accessor::User(owner), Permission::Read)
            .unwrap(),
    );
    let mut history = History::default();
    for (key, events) in plans {
        for event in events {
            history = history.event::<Plan>(Plan::id_of(&key), None, event);
        }
    }
    for event in subscription_events {
        history = history.event::<Subscription>(tenant.as_uuid(), Some(tenant), event);
    }
    let (catalog, subscription, limits) = history
        .project(Arc::new(BillingReadModel), move |db| async move {
            let catalog = BillingReadModel::plans(&db)
                .await
                .unwrap()
                .into_iter()
                .map(|p| (p.key, p.version.version, p.retired))
                .collect::<Vec<_>>();
            let subscription = BillingReadModel::subscription(&db, &scope)
                .await
                .unwrap()
                .map(|s| (s.plan_key, s.plan_version, s.status, s.amount, s.interval));
            let members = |e: Vec<projections::billing::Entitlement>| {
                e.into_iter()
                    .find(|e| e.key == LimitKey::Members)
                    .map(|e| (e.limit, e.overridden))
            };
            let limits = (
                members(
                    BillingReadModel::entitlements(&db, &scope, at(24))
                        .await
                        .unwrap(),
                ),
                members(
                    BillingReadModel::entitlements(&db, &scope, at(48))
                        .await
                        .unwrap(),
                ),
            );
            (catalog, subscription, limits)
        })
        .await;
    assert_eq!(
        catalog,
        vec![("free".to_owned(), 1, false), ("pro".to_owned(), 2, true)]
    );
    assert_eq!(
        subscription,
        Some((
            "pro".to_owned(),
            1,
            "active".to_owned(),
            2_900,
            Interval::Month.as_str().to_owned()
        ))
    );
    assert_eq!(
        limits,
        (Some((Limit::At(10), true)), Some((Limit::At(5), false))),
        "the override until hour 48, then the plan version's own limit"
    );
}
