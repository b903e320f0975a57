//! The event-store conformance suite against PostgreSQL, plus what only PostgreSQL has:
//! several processes sharing one database.
#![expect(clippy::unwrap_used, reason = "tests")]

mod conformance {
    domain::event_store_conformance!(infra::testing::fresh_pg_store);
}

use domain::event::{Actor, EventMetadata, NewEvent, Position, StreamId};
use domain::event_store::{AppendRequest, ExpectedVersion};
use futures_util::StreamExt;
use infra::database::{Database, DatabaseOptions};
use serde_json::json;
use std::time::{Duration, Instant};

fn event() -> NewEvent {
    NewEvent::new(
        "Test.Happened",
        json!({ "x": 1 }),
        EventMetadata::by(Actor::system("test")),
    )
}

/// Two stores on one database stand for two processes: a subscriber on one sees appends
/// made through the other, woken by NOTIFY rather than the fallback poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_woken_by_appends_from_another_process() {
    let url = infra::testing::fresh_pg_url().await;
    let options = DatabaseOptions::default();
    let a = Database::open(&url, &options)
        .await
        .unwrap()
        .event_store()
        .await
        .unwrap();
    let b = Database::open(&url, &options)
        .await
        .unwrap()
        .event_store()
        .await
        .unwrap();
    let mut sub = b.subscribe(Position::START);
    // Let the subscriber catch up (to nothing) and go to sleep.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut slow = 0;
    for n in 1..=10u64 {
        let stream = StreamId::for_aggregate("test", uuid::Uuid::now_v7());
        let started = Instant::now();
        a.append(AppendRequest::to_stream(
            stream,
            ExpectedVersion::NoStream,
            vec![event()],
        ))
        .await
        .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if started.elapsed() > Duration::from_millis(100) {
            slow += 1;
        }
        assert_eq!(got.position, Position(n));
    }
    // Woken only by the 500 ms fallback poll, most wake-ups would take over 100 ms; woken by
    // NOTIFY, a loaded machine may still have the odd slow one.
    assert!(
        slow <= 3,
        "{slow} of 10 cross-process wake-ups took over 100 ms"
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
