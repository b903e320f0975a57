//! The tenant data-retention reactor against real stores (SQLite and PostgreSQL).
#![expect(clippy::unwrap_used, reason = "tests")]

use commands::reactors::tenant_data_retention;
use commands::{CommandContext, Executor};
use domain::event::{Actor, StreamId};
use domain::event_store::StreamRead;
use domain::ids::TenantId;
use domain::tenant::{Slug, Tenant, TenantCommand, TenantName, TenantSettings};
use infra::database::Database;
use std::time::Duration;

infra::on_both_backends!(closed_tenants_have_their_data_deleted_once_after_retention);

async fn close(exec: &Executor, retention: chrono::Duration) -> TenantId {
    let tenant = TenantId::new_v7();
    let ctx = || CommandContext::new(Actor::system("test")).for_tenant(tenant);
    let provision = TenantCommand::Provision {
        tenant_id: tenant,
        name: TenantName::parse("Leaving").unwrap(),
        slug: Slug::parse("leaving").unwrap(),
        settings: TenantSettings::default(),
        at: chrono::Utc::now(),
    };
    exec.execute::<Tenant>(tenant.as_uuid(), &provision, &ctx())
        .await
        .unwrap();
    let close = TenantCommand::Close {
        at: chrono::Utc::now(),
        retention,
    };
    exec.execute::<Tenant>(tenant.as_uuid(), &close, &ctx())
        .await
        .unwrap();
    tenant
}

async fn closed_tenants_have_their_data_deleted_once_after_retention(db: Database) {
    let exec = Executor::new(db.event_store().await.unwrap());
    let soon = close(&exec, chrono::Duration::milliseconds(300)).await;
    let later = close(&exec, chrono::Duration::days(30)).await;

    // Two reactors at once stand for a redelivery (or two processes): one effect only.
    let tick = Duration::from_millis(20);
    let first = tokio::spawn(tenant_data_retention::run(exec.clone(), tick));
    let second = tokio::spawn(tenant_data_retention::run(exec.clone(), tick));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !exec
        .load::<Tenant>(soon.as_uuid())
        .await
        .unwrap()
        .state
        .data_deleted
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the data was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A restarted reactor replays the log from the start and must not act again.
    first.abort();
    let third = tokio::spawn(tenant_data_retention::run(exec.clone(), tick));
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.abort();
    third.abort();

    let events = exec
        .store()
        .read_stream(
            &StreamId::for_aggregate("tenant", soon.as_uuid()),
            StreamRead::forwards(),
        )
        .await
        .unwrap();
    let deletions: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "TenantDataDeleted")
        .collect();
    assert_eq!(deletions.len(), 1);
    let closed = events
        .iter()
        .find(|e| e.event_type == "TenantClosed")
        .unwrap();
    assert_eq!(deletions[0].metadata.causation_id, Some(closed.event_id));
    assert_eq!(
        deletions[0].metadata.command_id,
        Some(CommandContext::caused_by(closed, tenant_data_retention::NAME).command_id),
        "the command id derives from the causing event"
    );
    assert_eq!(
        deletions[0].metadata.actor,
        Actor::system(tenant_data_retention::NAME)
    );
    assert_eq!(
        deletions[0].metadata.correlation_id,
        closed.metadata.correlation_id
    );
    assert!(
        !exec
            .load::<Tenant>(later.as_uuid())
            .await
            .unwrap()
            .state
            .data_deleted
    );
}
