//! The audit trail over a given history: every event one entry of its tenant's chain, the
//! chain intact on both backends live and rebuilt (the harness), a rebuild reproducing every
//! hash, and each kind of tampering found at the first bad entry.
#![expect(clippy::unwrap_used, reason = "tests")]

use chrono::{TimeZone, Utc};
use domain::ids::TenantId;
use domain::tenant::{Slug, Tenant, TenantEvent, TenantName, TenantSettings};
use infra::projector_harness::History;
use projections::audit::{AuditEntry, AuditTrail, first_break};
use projections::runner::{self, RunnerConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

fn history(a: TenantId, b: TenantId) -> History {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
    let provisioned = |t: TenantId, slug: &str| TenantEvent::TenantProvisioned {
        tenant_id: t,
        name: TenantName::parse("Acme").unwrap(),
        slug: Slug::parse(slug).unwrap(),
        settings: TenantSettings::parse(BTreeMap::new()).unwrap(),
        at,
    };
    let renamed = |n: &str| TenantEvent::TenantRenamed {
        name: TenantName::parse(n).unwrap(),
        at,
    };
    History::default()
        .event::<Tenant>(a.as_uuid(), Some(a), provisioned(a, "alpha"))
        .event::<Tenant>(b.as_uuid(), Some(b), provisioned(b, "bravo"))
        .event::<Tenant>(a.as_uuid(), Some(a), renamed("A one"))
        .event::<Tenant>(a.as_uuid(), Some(a), renamed("A two"))
        .event::<Tenant>(b.as_uuid(), Some(b), renamed("B one"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_one_entry_of_its_tenants_intact_chain() {
    let (a, b) = (
        TenantId::from_uuid(Uuid::from_u128(1)),
        TenantId::from_uuid(Uuid::from_u128(2)),
    );
    let seen = history(a, b)
        .project(Arc::new(AuditTrail), move |db| async move {
            let mut seen = Vec::new();
            for tenant in [a, b] {
                let chain = AuditTrail::chain(&db, Some(tenant.as_uuid()))
                    .await
                    .unwrap();
                seen.push((
                    chain
                        .iter()
                        .map(|e| {
                            (
                                e.seq,
                                e.action.clone(),
                                e.target_kind.clone(),
                                e.actor_kind.clone(),
                            )
                        })
                        .collect::<Vec<_>>(),
                    first_break(&chain),
                ));
            }
            seen
        })
        .await;
    let entry = |seq, action: &str| {
        (
            seq,
            action.to_owned(),
            "tenant".to_owned(),
            "system".to_owned(),
        )
    };
    assert_eq!(
        seen,
        vec![
            (
                vec![
                    entry(1, "TenantProvisioned"),
                    entry(2, "TenantRenamed"),
                    entry(3, "TenantRenamed")
                ],
                None
            ),
            (
                vec![entry(1, "TenantProvisioned"), entry(2, "TenantRenamed")],
                None
            ),
        ]
    );
}

async fn chain_after(
    store: &Arc<dyn domain::event_store::EventStore>,
    db: &projections::ReadDb,
    tenant: TenantId,
) -> Vec<AuditEntry> {
    let head = store.head().await.unwrap();
    infra::testing::eventually(
        std::time::Duration::from_secs(20),
        "audit caught up",
        || {
            let db = db.clone();
            async move {
                let at = runner::checkpoints(&db)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|cp| cp.name == AuditTrail::NAME)
                    .map(|cp| cp.position());
                if at >= Some(head) {
                    Ok(())
                } else {
                    Err(format!("{at:?}"))
                }
            }
        },
    )
    .await;
    AuditTrail::chain(db, Some(tenant.as_uuid())).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_reproduces_every_hash_and_tampering_is_named() {
    let database = infra::testing::fresh_sqlite_database().await;
    let store = database.event_store().await.unwrap();
    let (a, b) = (TenantId::new_v7(), TenantId::new_v7());
    history(a, b).append_to(&store).await;
    let db = database.read_db();
    let _runner = runner::spawn(
        store.clone(),
        db.clone(),
        vec![Arc::new(AuditTrail)],
        RunnerConfig::default(),
    );
    let live = chain_after(&store, &db, a).await;
    assert_eq!(live.len(), 3);
    assert_eq!(first_break(&live), None);
    runner::rebuild(&store, &db, &AuditTrail, RunnerConfig::default(), |_, _| {})
        .await
        .unwrap();
    let rebuilt = chain_after(&store, &db, a).await;
    assert_eq!(rebuilt, live, "a rebuild reproduces every entry and hash");

    // Each tampering is found at the first bad entry.
    let mut changed = live.clone();
    changed[1].action = "TenantClosed".into();
    assert_eq!(first_break(&changed).map(|b| b.0), Some(2));
    let mut removed = live.clone();
    removed.remove(1);
    assert_eq!(first_break(&removed).map(|b| b.0), Some(3));
    let mut swapped = live.clone();
    swapped.swap(1, 2);
    assert_eq!(first_break(&swapped).map(|b| b.0), Some(3));
    let mut rehashed = live.clone();
    rehashed[1].actor_id = Some("someone-else".into());
    rehashed[1].hash = rehashed[1].computed_hash();
    assert_eq!(
        first_break(&rehashed).map(|b| b.0),
        Some(3),
        "recomputing one hash breaks the next link"
    );
}
