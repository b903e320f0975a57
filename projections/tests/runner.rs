//! The projection runner against real databases: every test runs on SQLite and PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests")]

use async_trait::async_trait;
use domain::aggregate::encode_event;
use domain::event::{Actor, EventMetadata, NewEvent, Position, Reads, RecordedEvent, StreamId};
use domain::event_store::{AppendRequest, EventStore, ExpectedVersion};
use domain::ids::TenantId;
use domain::tenant::{Slug, TenantEvent, TenantName, TenantSettings};
use infra::database::Database;
use infra::testing::eventually;
use projections::read_your_writes::{WaitError, wait_for};
use projections::runner::{self, RunnerConfig, checkpoints};
use projections::tenant_directory::{TenantDirectory, TenantView};
use projections::{ProjectionError, Projector, ReadDb, ReadTx};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

infra::on_both_backends!(
    the_directory_follows_the_log_and_reads_can_wait_for_a_write,
    waiting_past_the_bound_is_a_clear_error,
    a_failing_projector_stops_alone_records_where_and_recovers,
    injected_failures_leave_the_same_read_model_as_a_fresh_rebuild,
    a_new_version_is_built_beside_the_old_one_and_swapped_in,
    a_rebuild_while_the_runner_is_live_loses_nothing_and_the_runner_carries_on,
    a_failing_rebuild_on_a_version_change_shows_in_status_and_reads_go_on,
    committed_batches_are_announced_with_their_tenants_after_the_commit,
);

async fn committed_batches_are_announced_with_their_tenants_after_the_commit(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    let updates = tokio::sync::broadcast::channel(16).0;
    let mut listener = updates.subscribe();
    let config = RunnerConfig {
        updates: Some(updates),
        ..fast()
    };
    let _runner = runner::spawn(
        store.clone(),
        read.clone(),
        vec![Arc::new(TenantDirectory)],
        config,
    );
    let tenant = TenantId::new_v7();
    let position = emit(&store, tenant, provisioned(tenant, 1)).await;
    let update = tokio::time::timeout(WAIT, listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(update.projection, "tenant_directory");
    assert_eq!(update.tenants, vec![tenant]);
    assert!(update.position >= position);
    // Announced after the commit: a reader reacting to it sees the change.
    let view = TenantDirectory::get(&read, tenant).await.unwrap().unwrap();
    assert_eq!(view.name, "Tenant 1");
}

fn fast() -> RunnerConfig {
    RunnerConfig {
        batch_size: 50,
        retry_delay: Duration::from_millis(10),
        max_retry_delay: Duration::from_millis(50),
        ..RunnerConfig::default()
    }
}

async fn emit(store: &Arc<dyn EventStore>, tenant: TenantId, event: TenantEvent) -> Position {
    let (event_type, payload) = encode_event(&event).unwrap();
    let new = NewEvent::new(
        event_type,
        payload,
        EventMetadata::by(Actor::system("test")),
    )
    .for_tenant(tenant);
    store
        .append(AppendRequest::to_stream(
            StreamId::for_aggregate("tenant", tenant.as_uuid()),
            ExpectedVersion::Any,
            vec![new],
        ))
        .await
        .unwrap()
        .last_position
}

fn provisioned(tenant: TenantId, n: usize) -> TenantEvent {
    TenantEvent::TenantProvisioned {
        tenant_id: tenant,
        name: TenantName::parse(&format!("Tenant {n}")).unwrap(),
        slug: Slug::parse(&format!("tenant-{n}")).unwrap(),
        settings: TenantSettings::default(),
        at: chrono::Utc::now(),
    }
}

fn renamed(name: &str) -> TenantEvent {
    TenantEvent::TenantRenamed {
        name: TenantName::parse(name).unwrap(),
        at: chrono::Utc::now(),
    }
}

async fn everything(db: &ReadDb) -> Vec<TenantView> {
    TenantDirectory::list(db, None, 10_000).await.unwrap()
}

const WAIT: Duration = Duration::from_secs(20);

async fn the_directory_follows_the_log_and_reads_can_wait_for_a_write(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    let tenants: Vec<TenantId> = (0..30).map(|_| TenantId::new_v7()).collect();
    for (n, t) in tenants.iter().enumerate() {
        emit(&store, *t, provisioned(*t, n)).await;
    }
    // Unrelated events only move the checkpoint.
    let other = NewEvent::new(
        "Something.Else",
        serde_json::json!({}),
        EventMetadata::by(Actor::system("t")),
    );
    store
        .append(AppendRequest::to_stream(
            StreamId::for_aggregate("other", uuid::Uuid::now_v7()),
            ExpectedVersion::Any,
            vec![other],
        ))
        .await
        .unwrap();

    let _runner = runner::spawn(
        store.clone(),
        read.clone(),
        vec![Arc::new(TenantDirectory)],
        fast(),
    );
    let head = store.head().await.unwrap();
    wait_for(&read, &["tenant_directory"], head, WAIT)
        .await
        .unwrap();
    assert_eq!(everything(&read).await.len(), 30);

    // Live: a write, then a read that waits for it.
    let position = emit(&store, tenants[3], renamed("Renamed Ltd")).await;
    wait_for(&read, &["tenant_directory"], position, WAIT)
        .await
        .unwrap();
    let view = TenantDirectory::get(&read, tenants[3])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.name, "Renamed Ltd");
    assert_eq!(view.status, "active");
    assert_eq!(view.plan, "free");
    let position = emit(
        &store,
        tenants[3],
        TenantEvent::TenantSuspended {
            reason: "r".into(),
            at: chrono::Utc::now(),
        },
    )
    .await;
    wait_for(&read, &["tenant_directory"], position, WAIT)
        .await
        .unwrap();
    assert_eq!(
        TenantDirectory::get(&read, tenants[3])
            .await
            .unwrap()
            .unwrap()
            .status,
        "suspended"
    );
    let now = chrono::Utc::now();
    let closed = TenantEvent::TenantClosed {
        at: now,
        delete_data_after: now,
    };
    emit(&store, tenants[4], closed).await;
    let position = emit(
        &store,
        tenants[4],
        TenantEvent::TenantDataDeleted { at: now },
    )
    .await;
    wait_for(&read, &["tenant_directory"], position, WAIT)
        .await
        .unwrap();
    // Provisioned, renamed, suspended: three changes applied, each once.
    let counted = TenantDirectory::get(&read, tenants[3])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counted.changes, 3);
    let deleted = TenantDirectory::get(&read, tenants[4])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.status, "deleted");
    assert!(deleted.settings.is_empty());

    // Paging by id is stable.
    let first = TenantDirectory::list(&read, None, 10).await.unwrap();
    let second = TenantDirectory::list(&read, Some(first[9].id), 10)
        .await
        .unwrap();
    assert!(first[9].id < second[0].id);
    let cps = checkpoints(&read).await.unwrap();
    assert_eq!(cps[0].position(), position);
    assert_eq!(cps[0].status, "live");
}

async fn waiting_past_the_bound_is_a_clear_error(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    // On an empty log a new projector is live at once.
    let idle = runner::spawn(
        store.clone(),
        read.clone(),
        vec![Arc::new(Fragile::default())],
        fast(),
    );
    eventually(WAIT, "an idle projector showing live", || async {
        match checkpoints(&read).await.unwrap().first() {
            Some(cp) if cp.status == "live" => Ok(()),
            other => Err(other.cloned()),
        }
    })
    .await;
    drop(idle);
    let _runner = runner::spawn(
        store.clone(),
        read.clone(),
        vec![Arc::new(TenantDirectory)],
        fast(),
    );
    let t = TenantId::new_v7();
    let at = emit(&store, t, provisioned(t, 1)).await;
    wait_for(&read, &["tenant_directory"], at, WAIT)
        .await
        .unwrap();
    let err = wait_for(
        &read,
        &["tenant_directory"],
        Position(at.0 + 1_000),
        Duration::from_millis(50),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, WaitError::NotCaughtUp { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("tenant_directory") && message.contains(&(at.0 + 1_000).to_string()),
        "{message}"
    );
    let unknown = wait_for(&read, &["nope"], at, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(matches!(unknown, WaitError::Unknown(_)));
}

/// Counts tenant events into its own table; fails on events whose tenant is "poisoned" until
/// cured.
#[derive(Debug, Default)]
struct Fragile {
    poisoned: std::sync::Mutex<Option<TenantId>>,
    cured: AtomicBool,
    /// 0 means 1.
    version: u32,
}

#[async_trait]
impl Projector for Fragile {
    fn name(&self) -> &'static str {
        "fragile"
    }
    fn version(&self) -> u32 {
        self.version.max(1)
    }
    fn reads(&self) -> Reads {
        TenantDirectory.reads()
    }
    fn tables(&self) -> &'static [&'static str] {
        &["fragile_counts"]
    }
    async fn create_tables(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
    ) -> Result<(), ProjectionError> {
        tx.execute_ddl(&format!(
            "CREATE TABLE fragile_counts{suffix} (position BIGINT PRIMARY KEY)"
        ))
        .await?;
        Ok(())
    }
    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for e in events {
            projections::exec!(
                &mut *tx,
                &format!("INSERT INTO fragile_counts{suffix} (position) VALUES ($1)"),
                e.position.0 as i64
            )?;
            if !self.cured.load(Ordering::SeqCst)
                && e.tenant_id.is_some()
                && e.tenant_id == *self.poisoned.lock().unwrap()
            {
                return Err(ProjectionError::Event {
                    position: e.position.0,
                    reason: "poisoned".into(),
                });
            }
        }
        Ok(())
    }
}

async fn a_failing_projector_stops_alone_records_where_and_recovers(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    let fragile = Arc::new(Fragile::default());
    let poisoned = TenantId::new_v7();
    *fragile.poisoned.lock().unwrap() = Some(poisoned);
    let _runner = runner::spawn(
        store.clone(),
        read.clone(),
        vec![Arc::new(TenantDirectory), fragile.clone()],
        fast(),
    );
    let mut poison_at = Position::START;
    for n in 0..20 {
        let t = if n == 7 { poisoned } else { TenantId::new_v7() };
        let at = emit(&store, t, provisioned(t, n)).await;
        if n == 7 {
            poison_at = at;
        }
    }
    let head = store.head().await.unwrap();
    // The healthy projector reaches the head regardless.
    wait_for(&read, &["tenant_directory"], head, WAIT)
        .await
        .unwrap();
    // The fragile one stops just before the poisoned event and says so.
    let cp = eventually(WAIT, "fragile reporting failing", || async {
        let cps = checkpoints(&read).await.unwrap();
        let cp = cps.into_iter().find(|c| c.name == "fragile").unwrap();
        if cp.status == "failing" {
            Ok(cp)
        } else {
            Err(cp)
        }
    })
    .await;
    assert_eq!(cp.error_position, Some(poison_at.0 as i64));
    assert!(
        cp.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("poisoned")
    );
    assert_eq!(cp.position, poison_at.0 as i64 - 1);
    fragile.cured.store(true, Ordering::SeqCst);
    wait_for(&read, &["fragile"], head, WAIT).await.unwrap();
    let cps = checkpoints(&read).await.unwrap();
    let cp = cps.iter().find(|c| c.name == "fragile").unwrap();
    assert_eq!(cp.last_error, None);
    // Each event counted exactly once despite the failed attempts.
    let counted = fragile_count(&read).await;
    assert_eq!(counted, 20);
}

/// The tenant directory under another version number and, when `failing`, failing every
/// second batch after writing it (the transaction rolls back).
#[derive(Debug)]
struct Unreliable {
    calls: AtomicU32,
    version: u32,
    failing: bool,
}

#[async_trait]
impl Projector for Unreliable {
    fn name(&self) -> &'static str {
        "tenant_directory"
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn reads(&self) -> Reads {
        TenantDirectory.reads()
    }
    fn tables(&self) -> &'static [&'static str] {
        TenantDirectory.tables()
    }
    async fn create_tables(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
    ) -> Result<(), ProjectionError> {
        TenantDirectory.create_tables(tx, suffix).await
    }
    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        TenantDirectory.apply(tx, suffix, events).await?;
        if self.failing && self.calls.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
            return Err(ProjectionError::Event {
                position: events[0].position.0,
                reason: "injected".into(),
            });
        }
        Ok(())
    }
}

async fn injected_failures_leave_the_same_read_model_as_a_fresh_rebuild(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    let tenants: Vec<TenantId> = (0..40).map(|_| TenantId::new_v7()).collect();
    for (n, t) in tenants.iter().enumerate() {
        emit(&store, *t, provisioned(*t, n)).await;
    }
    let unreliable = Arc::new(Unreliable {
        calls: AtomicU32::new(0),
        version: 1,
        failing: true,
    });
    let runner = runner::spawn(
        store.clone(),
        read.clone(),
        vec![unreliable.clone()],
        fast(),
    );
    for (n, t) in tenants.iter().enumerate().step_by(3) {
        emit(&store, *t, renamed(&format!("Renamed {n}"))).await;
    }
    let head = store.head().await.unwrap();
    wait_for(&read, &["tenant_directory"], head, WAIT)
        .await
        .unwrap();
    drop(runner);
    assert!(
        unreliable.calls.load(Ordering::SeqCst) >= 3,
        "no failure was injected"
    );
    let survived = everything(&read).await;

    runner::rebuild(&store, &read, &TenantDirectory, fast(), |_, _| {})
        .await
        .unwrap();
    let rebuilt = everything(&read).await;
    assert_eq!(survived.len(), 40);
    assert_eq!(survived, rebuilt);
}

async fn a_new_version_is_built_beside_the_old_one_and_swapped_in(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    let tenants: Vec<TenantId> = (0..120).map(|_| TenantId::new_v7()).collect();
    for (n, t) in tenants.iter().enumerate() {
        emit(&store, *t, provisioned(*t, n)).await;
    }
    let v1 = runner::spawn(
        store.clone(),
        read.clone(),
        vec![Arc::new(TenantDirectory)],
        fast(),
    );
    wait_for(
        &read,
        &["tenant_directory"],
        store.head().await.unwrap(),
        WAIT,
    )
    .await
    .unwrap();
    drop(v1);
    let before = everything(&read).await;

    // Version 2 on start: rebuilt beside generation 1, which serves reads until the swap.
    let v2 = Arc::new(Unreliable {
        calls: AtomicU32::new(0),
        version: TenantDirectory.version() + 1,
        failing: false,
    });
    let reads = {
        let read = read.clone();
        let probe = tenants[5];
        tokio::spawn(async move {
            let mut served = 0;
            for _ in 0..200 {
                assert!(
                    TenantDirectory::get(&read, probe).await.unwrap().is_some(),
                    "a read found no row during the rebuild"
                );
                served += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            served
        })
    };
    let _runner = runner::spawn(store.clone(), read.clone(), vec![v2], fast());
    let cp = eventually(WAIT, "the swap to version 2", || async {
        let cp = checkpoints(&read).await.unwrap().remove(0);
        if cp.version == TenantDirectory.version() as i32 + 1 {
            Ok(cp)
        } else {
            Err(cp)
        }
    })
    .await;
    assert_eq!(cp.generation, 2);
    assert_eq!(reads.await.unwrap(), 200);
    wait_for(
        &read,
        &["tenant_directory"],
        store.head().await.unwrap(),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(everything(&read).await, before);
    let t = tenants[0];
    let at = emit(&store, t, renamed("After The Swap")).await;
    wait_for(&read, &["tenant_directory"], at, WAIT)
        .await
        .unwrap();
    assert_eq!(
        TenantDirectory::get(&read, t).await.unwrap().unwrap().name,
        "After The Swap"
    );
}

async fn a_rebuild_while_the_runner_is_live_loses_nothing_and_the_runner_carries_on(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    let fragile = Arc::new(Fragile::default()); // never poisoned: counts every tenant event once
    let _runner = runner::spawn(
        store.clone(),
        read.clone(),
        vec![Arc::new(TenantDirectory), fragile],
        fast(),
    );
    for n in 0..100 {
        let t = TenantId::new_v7();
        emit(&store, t, provisioned(t, n)).await;
    }
    // Writes keep coming during both rebuilds.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut written = Vec::new();
            for n in 100..300 {
                let t = TenantId::new_v7();
                emit(&store, t, provisioned(t, n)).await;
                written.push(t);
                tokio::task::yield_now().await;
            }
            written
        })
    };
    runner::rebuild(&store, &read, &TenantDirectory, fast(), |_, _| {})
        .await
        .unwrap();
    runner::rebuild(&store, &read, &Fragile::default(), fast(), |_, _| {})
        .await
        .unwrap();
    writer.await.unwrap();
    // After the swaps the live runners go on with the new generations.
    let t = TenantId::new_v7();
    let last = emit(&store, t, provisioned(t, 300)).await;
    wait_for(&read, &["tenant_directory", "fragile"], last, WAIT)
        .await
        .unwrap();
    assert_eq!(everything(&read).await.len(), 301);
    let cps = checkpoints(&read).await.unwrap();
    for cp in &cps {
        assert_eq!(cp.generation, 2, "{cp:?}");
        assert_eq!(cp.last_error, None, "{cp:?}");
        assert_eq!(cp.status, "live", "{cp:?}");
    }
    let counted = fragile_count(&read).await;
    assert_eq!(
        counted, 301,
        "every event counted exactly once across the swap"
    );
}

async fn a_failing_rebuild_on_a_version_change_shows_in_status_and_reads_go_on(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    let poisoned = TenantId::new_v7();
    let mut poison_at = Position::START;
    for n in 0..10 {
        let t = if n == 4 { poisoned } else { TenantId::new_v7() };
        let at = emit(&store, t, provisioned(t, n)).await;
        if n == 4 {
            poison_at = at;
        }
    }
    let v1 = runner::spawn(
        store.clone(),
        read.clone(),
        vec![Arc::new(Fragile::default())],
        fast(),
    );
    wait_for(&read, &["fragile"], store.head().await.unwrap(), WAIT)
        .await
        .unwrap();
    drop(v1);

    let v2 = Fragile {
        version: 2,
        ..Fragile::default()
    };
    *v2.poisoned.lock().unwrap() = Some(poisoned);
    let _runner = runner::spawn(store.clone(), read.clone(), vec![Arc::new(v2)], fast());
    let cp = eventually(WAIT, "the failed rebuild showing", || async {
        let cp = checkpoints(&read).await.unwrap().remove(0);
        if cp.status == "failing" {
            Ok(cp)
        } else {
            Err(cp)
        }
    })
    .await;
    assert!(
        cp.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("rebuilding to version 2"),
        "{cp:?}"
    );
    assert_eq!(cp.error_position, Some(poison_at.0 as i64));
    assert_eq!(
        (cp.version, cp.generation),
        (1, 1),
        "the old generation stays live"
    );
    let counted = fragile_count(&read).await;
    assert_eq!(counted, 10, "reads are served from the old generation");
}

/// How many events the fragile projector's live generation has counted.
async fn fragile_count(read: &ReadDb) -> i64 {
    let sql = "SELECT count(*) FROM fragile_counts";
    match read {
        ReadDb::Sqlite { reader, .. } => sqlx::query_scalar(sql).fetch_one(reader).await.unwrap(),
        ReadDb::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}
