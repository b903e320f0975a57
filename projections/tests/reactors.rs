//! Reactors under the projection runner, on both backends: they see the events of the
//! categories they read, in order; their checkpoint survives a restart (nothing is handed over
//! twice); a failing reaction is retried while the checkpoint waits; they are never rebuilt.
#![expect(clippy::unwrap_used, reason = "tests")]

use async_trait::async_trait;
use domain::aggregate::{Aggregate, encode_event};
use domain::event::{Actor, EventMetadata, NewEvent, Position, Reads, RecordedEvent, StreamId};
use domain::event_store::{AppendRequest, EventStore, ExpectedVersion};
use domain::ids::TenantId;
use domain::reactor::{ReactionError, Reactor};
use domain::tenant::{Tenant, TenantEvent};
use infra::database::Database;
use infra::testing::eventually;
use projections::runner::{self, RunnerConfig, checkpoints};
use projections::{ReadDb, reacting};
use std::sync::{Arc, Mutex};
use std::time::Duration;

infra::on_both_backends!(
    a_reactor_sees_its_events_once_across_a_restart,
    a_failing_reaction_is_retried_before_the_checkpoint_moves,
    a_reactor_is_never_rebuilt,
);

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Counting {
    seen: Mutex<Vec<Position>>,
    /// Positions whose first reaction fails.
    fail_once: Mutex<Vec<Position>>,
}

#[async_trait]
impl Reactor for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn reads(&self) -> Reads {
        Reads::categories(&[Tenant::CATEGORY])
    }
    async fn react(&self, events: &[RecordedEvent]) -> Result<(), ReactionError> {
        for event in events {
            let mut fail = self.fail_once.lock().unwrap();
            if let Some(i) = fail.iter().position(|p| *p == event.position) {
                fail.remove(i);
                return Err(ReactionError {
                    position: event.position.0,
                    reason: "injected".into(),
                });
            }
            self.seen.lock().unwrap().push(event.position);
        }
        Ok(())
    }
}

fn config() -> RunnerConfig {
    RunnerConfig {
        batch_size: 3,
        retry_delay: Duration::from_millis(10),
        max_retry_delay: Duration::from_millis(50),
        ..RunnerConfig::default()
    }
}

/// Appends a tenant event (which the reactor reads) and an event of another category (which
/// it must not see); returns the tenant event's position.
async fn append_pair(store: &Arc<dyn EventStore>) -> Position {
    let tenant = TenantId::new_v7();
    let (t, p) = encode_event(&TenantEvent::TenantReactivated {
        at: chrono::Utc::now(),
    })
    .unwrap();
    let event = NewEvent::new(t, p, EventMetadata::by(Actor::system("test"))).for_tenant(tenant);
    let position = store
        .append(AppendRequest::to_stream(
            StreamId::for_aggregate(Tenant::CATEGORY, tenant.as_uuid()),
            ExpectedVersion::Any,
            vec![event],
        ))
        .await
        .unwrap()
        .last_position;
    let other = NewEvent::new(
        "SomethingElse".to_owned(),
        serde_json::json!({}),
        EventMetadata::by(Actor::system("test")),
    );
    store
        .append(AppendRequest::to_stream(
            StreamId::for_aggregate("other", tenant.as_uuid()),
            ExpectedVersion::Any,
            vec![other],
        ))
        .await
        .unwrap();
    position
}

async fn checkpoint_of(db: &ReadDb, name: &str) -> Option<Position> {
    checkpoints(db)
        .await
        .unwrap()
        .into_iter()
        .find(|cp| cp.name == name)
        .map(|cp| cp.position())
}

async fn run_until_seen(
    store: &Arc<dyn EventStore>,
    db: &ReadDb,
    reactor: &Arc<Counting>,
    count: usize,
) {
    let _runner = runner::spawn(
        store.clone(),
        db.clone(),
        vec![reacting(reactor.clone())],
        config(),
    );
    let head = store.head().await.unwrap();
    eventually(WAIT, "the reactor catches up", || async {
        let seen = reactor.seen.lock().unwrap().len();
        let at = checkpoint_of(db, "counting").await;
        if seen >= count && at >= Some(head) {
            Ok(())
        } else {
            Err(format!("seen {seen}, checkpoint {at:?}, head {head:?}"))
        }
    })
    .await;
}

async fn a_reactor_sees_its_events_once_across_a_restart(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    let mut first_batch = vec![];
    for _ in 0..5 {
        first_batch.push(append_pair(&store).await);
    }
    let first = Arc::new(Counting::default());
    run_until_seen(&store, &read, &first, 5).await;
    assert_eq!(
        *first.seen.lock().unwrap(),
        first_batch,
        "its category only, in order"
    );

    // A restart (a new runner and a new reactor, as after a crash or in another process)
    // starts from the checkpoint: only what came after is handed over.
    let mut second_batch = vec![];
    for _ in 0..3 {
        second_batch.push(append_pair(&store).await);
    }
    let restarted = Arc::new(Counting::default());
    run_until_seen(&store, &read, &restarted, 3).await;
    assert_eq!(*restarted.seen.lock().unwrap(), second_batch);
}

async fn a_failing_reaction_is_retried_before_the_checkpoint_moves(db: Database) {
    let store = db.event_store().await.unwrap();
    let read = db.read_db();
    let mut positions = vec![];
    for _ in 0..4 {
        positions.push(append_pair(&store).await);
    }
    let reactor = Arc::new(Counting::default());
    reactor.fail_once.lock().unwrap().push(positions[2]);
    run_until_seen(&store, &read, &reactor, 4).await;
    let seen = reactor.seen.lock().unwrap().clone();
    // Every event reacted to; the batch that failed is handed over again event by event, so
    // the events before the failing one in that batch may come twice (at least once), and the
    // failing one comes after its retry.
    for p in &positions {
        assert!(seen.contains(p), "{p:?} never reacted to: {seen:?}");
    }
    assert_eq!(seen.last(), positions.last());
    let cp = checkpoints(&read)
        .await
        .unwrap()
        .into_iter()
        .find(|cp| cp.name == "counting")
        .unwrap();
    assert_eq!(cp.status, "live");
    assert_eq!(
        cp.last_error, None,
        "the failure was cleared once it passed"
    );
}

async fn a_reactor_is_never_rebuilt(db: Database) {
    let store = db.event_store().await.unwrap();
    append_pair(&store).await;
    let reactor = reacting(Arc::new(Counting::default()));
    let refused =
        runner::rebuild(&store, &db.read_db(), reactor.as_ref(), config(), |_, _| {}).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not rebuilt")),
        "{refused:?}"
    );
}
