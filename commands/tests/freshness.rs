//! `Executor::load_current` against real stores (SQLite and PostgreSQL): answered from the
//! cache without reading the stream while the log watch vouches for it; this executor's own
//! appends count at once; another writer's (another process) within the watch's lag; and
//! without a watch every load reads.
#![expect(clippy::unwrap_used, reason = "tests")]

use async_trait::async_trait;
use commands::freshness::MAX_LAG;
use commands::{CommandContext, Executor};
use domain::event::{Actor, Position, RecordedEvent, StreamId};
use domain::event_store::{
    AppendRequest, AppendResult, EventStore, EventStoreError, EventStream, StreamRead,
};
use domain::ids::{CommandId, TenantId};
use domain::tenant::{Slug, Tenant, TenantCommand, TenantName, TenantSettings};
use infra::database::Database;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

infra::on_both_backends!(
    cached_states_are_trusted_only_while_the_log_watch_vouches_for_them,
    without_a_watch_every_load_reads_the_stream,
);

/// A store that counts the stream reads made through it.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn EventStore>,
    stream_reads: AtomicUsize,
}

#[async_trait]
impl EventStore for Counting {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, EventStoreError> {
        self.inner.append(request).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        self.stream_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_stream(stream, read).await
    }
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn head(&self) -> Result<Position, EventStoreError> {
        self.inner.head().await
    }
    async fn find_command(
        &self,
        command: CommandId,
    ) -> Result<Option<AppendResult>, EventStoreError> {
        self.inner.find_command(command).await
    }
    fn subscribe(&self, after: Position) -> EventStream {
        self.inner.subscribe(after)
    }
}

fn ctx() -> CommandContext {
    CommandContext::new(Actor::system("test"))
}

fn rename(to: &str) -> TenantCommand {
    TenantCommand::Rename {
        name: TenantName::parse(to).unwrap(),
        at: chrono::Utc::now(),
    }
}

/// Provisions a new tenant named `name` through `exec`.
async fn provisioned(exec: &Executor, name: &str) -> TenantId {
    let tenant = TenantId::new_v7();
    let provision = TenantCommand::Provision {
        tenant_id: tenant,
        name: TenantName::parse(name).unwrap(),
        slug: Slug::parse(&name.to_lowercase()).unwrap(),
        settings: TenantSettings::default(),
        at: chrono::Utc::now(),
    };
    exec.execute::<Tenant>(tenant.as_uuid(), &provision, &ctx())
        .await
        .unwrap();
    tenant
}

async fn name_of(exec: &Executor, tenant: TenantId) -> String {
    let loaded = exec.load_current::<Tenant>(tenant.as_uuid()).await.unwrap();
    loaded.state.name.unwrap().as_str().to_owned()
}

async fn cached_states_are_trusted_only_while_the_log_watch_vouches_for_them(db: Database) {
    let store = db.event_store().await.unwrap();
    let counting = Arc::new(Counting {
        inner: store.clone(),
        stream_reads: AtomicUsize::new(0),
    });
    let here = Executor::new(counting.clone());
    let watch = here.watch_log();
    // Another process: its own executor and cache on the same database.
    let elsewhere = Executor::new(store);
    let tenant = provisioned(&here, "First").await;
    // Once the watch has caught up, the state the append produced is served without a read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reads = counting.stream_reads.load(Ordering::SeqCst);
    assert_eq!(name_of(&here, tenant).await, "First");
    assert_eq!(counting.stream_reads.load(Ordering::SeqCst), reads);

    // This executor's own append counts at once, still without a read.
    here.execute::<Tenant>(tenant.as_uuid(), &rename("Second"), &ctx())
        .await
        .unwrap();
    let reads = counting.stream_reads.load(Ordering::SeqCst);
    assert_eq!(name_of(&here, tenant).await, "Second");
    assert_eq!(counting.stream_reads.load(Ordering::SeqCst), reads);

    // Another writer's append counts within the watch's lag.
    elsewhere
        .execute::<Tenant>(tenant.as_uuid(), &rename("Third"), &ctx())
        .await
        .unwrap();
    let written = Instant::now();
    while name_of(&here, tenant).await != "Third" {
        assert!(
            written.elapsed() < MAX_LAG + Duration::from_millis(500),
            "another writer's change unseen after {:?}",
            written.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ... and once read, the new state is trusted again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(name_of(&here, tenant).await, "Third");
    let reads = counting.stream_reads.load(Ordering::SeqCst);
    assert_eq!(name_of(&here, tenant).await, "Third");
    assert_eq!(counting.stream_reads.load(Ordering::SeqCst), reads);

    // A command decided over a stale cached state only costs a conflict and a retry.
    elsewhere
        .execute::<Tenant>(tenant.as_uuid(), &rename("Fourth"), &ctx())
        .await
        .unwrap();
    here.execute::<Tenant>(tenant.as_uuid(), &rename("Fifth"), &ctx())
        .await
        .unwrap();
    assert_eq!(name_of(&here, tenant).await, "Fifth");
    let stored = elsewhere.load::<Tenant>(tenant.as_uuid()).await.unwrap();
    assert_eq!(stored.state.name.unwrap().as_str(), "Fifth");
    assert_eq!(stored.version.0, 5);
    watch.abort();
}

async fn without_a_watch_every_load_reads_the_stream(db: Database) {
    let counting = Arc::new(Counting {
        inner: db.event_store().await.unwrap(),
        stream_reads: AtomicUsize::new(0),
    });
    let exec = Executor::new(counting.clone());
    let tenant = provisioned(&exec, "Only").await;
    for _ in 0..3 {
        let reads = counting.stream_reads.load(Ordering::SeqCst);
        assert_eq!(name_of(&exec, tenant).await, "Only");
        assert_eq!(counting.stream_reads.load(Ordering::SeqCst), reads + 1);
    }
}
