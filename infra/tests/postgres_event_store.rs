//! The event-store conformance suite against PostgreSQL, plus what only PostgreSQL has:
//! several processes sharing one database.
#![expect(clippy::unwrap_used, reason = "tests")]

mod conformance {
    domain::event_store_conformance!(infra::testing::fresh_pg_store);
}

use domain::event::{Actor, EventMetadata, NewEvent, Position, StreamId};
use domain::event_store::{AppendRequest, EventStore, ExpectedVersion};
use futures_util::StreamExt;
use infra::database::{Database, DatabaseOptions};
use infra::testing::eventually;
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn event() -> NewEvent {
    NewEvent::new(
        "Test.Happened",
        json!({ "x": 1 }),
        EventMetadata::by(Actor::system("test")),
    )
}

/// A database shared by two stores, which stand for two processes.
async fn two_processes() -> (String, Arc<dyn EventStore>, Arc<dyn EventStore>) {
    let url = infra::testing::fresh_pg_url().await;
    let open = || async {
        Database::open(&url, &DatabaseOptions::default())
            .await
            .unwrap()
            .event_store()
            .await
            .unwrap()
    };
    let (a, b) = (open().await, open().await);
    (url, a, b)
}

/// A subscriber that waits in its own task, as a live one does, and hands over each event
/// with the moment it arrived.
fn live_subscriber(store: &Arc<dyn EventStore>) -> mpsc::UnboundedReceiver<(Position, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut sub = store.subscribe(Position::START);
    tokio::spawn(async move {
        while let Some(event) = sub.next().await {
            if tx.send((event.unwrap().position, Instant::now())).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_delivery(
    rx: &mut mpsc::UnboundedReceiver<(Position, Instant)>,
) -> (Position, Instant) {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event appended by the other process was never delivered")
        .unwrap()
}

/// Appends `n` single events through `writer`, each once `rx`'s subscriber has delivered the
/// one before, and returns how many took over 100 ms to be delivered.
///
/// Each append waits 20 ms after the previous delivery, so it lands while the subscriber waits
/// for a wake-up (rather than during its read, which would find the event without one). Its
/// fallback poll is then about 480 ms away: an append that only the poll delivers takes over
/// 100 ms, one that NOTIFY delivers takes a few.
async fn slow_wake_ups(
    writer: &Arc<dyn EventStore>,
    rx: &mut mpsc::UnboundedReceiver<(Position, Instant)>,
    n: usize,
) -> usize {
    let mut slow = 0;
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let written = writer
            .append(AppendRequest::to_stream(
                StreamId::for_aggregate("test", uuid::Uuid::now_v7()),
                ExpectedVersion::NoStream,
                vec![event()],
            ))
            .await
            .unwrap();
        let (position, at) = next_delivery(rx).await;
        assert_eq!(position, written.first_position);
        if at.duration_since(started) > Duration::from_millis(100) {
            slow += 1;
        }
    }
    slow
}

/// The backends of this database's sessions that LISTEN (the stores' notification listeners).
async fn listeners(admin: &PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND query ILIKE 'LISTEN%' ORDER BY pid",
    )
    .fetch_all(admin)
    .await
    .unwrap()
}

/// A subscriber on one store sees appends made through the other promptly: woken by NOTIFY,
/// not by the 500 ms fallback poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_woken_by_appends_from_another_process() {
    let (_, a, b) = two_processes().await;
    let mut rx = live_subscriber(&b);
    // Woken only by the poll, every wake-up would be slow; woken by NOTIFY, a loaded machine
    // may still have the odd slow one.
    let slow = slow_wake_ups(&a, &mut rx, 10).await;
    assert!(
        slow <= 3,
        "{slow} of 10 cross-process wake-ups took over 100 ms"
    );
}

/// When the listener's connection dies (here: its backend is terminated), subscribers still
/// get every event, the listener comes back (a new LISTEN session) and wake-ups are prompt
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_listener_reconnects_after_losing_its_connection() {
    let url = infra::testing::fresh_pg_url().await;
    let admin = PgPool::connect(&url).await.unwrap();
    let options = DatabaseOptions::default();
    let b = Database::open(&url, &options)
        .await
        .unwrap()
        .event_store()
        .await
        .unwrap();
    let b_listener = eventually(WAIT, "b's listener session", || async {
        match listeners(&admin).await[..] {
            [pid] => Ok(pid),
            ref other => Err(other.to_vec()),
        }
    })
    .await;
    let a = Database::open(&url, &options)
        .await
        .unwrap()
        .event_store()
        .await
        .unwrap();
    let a_listener = eventually(WAIT, "a's listener session", || async {
        match listeners(&admin).await[..] {
            [x, y] if x == b_listener => Ok(y),
            [x, y] if y == b_listener => Ok(x),
            ref other => Err(other.to_vec()),
        }
    })
    .await;
    let mut rx = live_subscriber(&b);

    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(b_listener)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(terminated);
    // An event appended while the listener is down still arrives.
    let written = a
        .append(AppendRequest::to_stream(
            StreamId::for_aggregate("test", uuid::Uuid::now_v7()),
            ExpectedVersion::NoStream,
            vec![event()],
        ))
        .await
        .unwrap();
    assert_eq!(next_delivery(&mut rx).await.0, written.first_position);

    let reconnected = eventually(WAIT, "a new LISTEN session for b", || async {
        let now = listeners(&admin).await;
        match now.iter().find(|p| **p != a_listener && **p != b_listener) {
            Some(pid) => Ok(*pid),
            None => Err(now),
        }
    })
    .await;
    assert!(listeners(&admin).await.contains(&a_listener));
    assert!(!listeners(&admin).await.contains(&b_listener));
    assert_ne!(reconnected, b_listener);

    let slow = slow_wake_ups(&a, &mut rx, 10).await;
    assert!(
        slow <= 3,
        "after the reconnect, {slow} of 10 cross-process wake-ups took over 100 ms"
    );
}

/// Appending inside a caller's transaction works under READ COMMITTED and is refused, with a
/// clear error and nothing written, under REPEATABLE READ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_inside_a_caller_transaction_need_read_committed() {
    use sqlx::Connection;
    let url = infra::testing::fresh_pg_url().await;
    let store = Database::open(&url, &DatabaseOptions::default())
        .await
        .unwrap()
        .event_store()
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let request = || {
        AppendRequest::to_stream(
            StreamId::for_aggregate("test", uuid::Uuid::now_v7()),
            ExpectedVersion::NoStream,
            vec![event()],
        )
    };

    let mut tx = conn.begin().await.unwrap();
    let outcome = infra::event_store::PgEventStore::append_on(&mut tx, &[request()])
        .await
        .unwrap();
    assert!(outcome[0].is_ok());
    tx.commit().await.unwrap();
    assert_eq!(store.head().await.unwrap(), Position(1));

    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = infra::event_store::PgEventStore::append_on(&mut tx, &[request()])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("READ COMMITTED"), "{err}");
    tx.rollback().await.unwrap();
    assert_eq!(store.head().await.unwrap(), Position(1));
}
