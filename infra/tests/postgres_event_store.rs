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

    let mut worst = Duration::ZERO;
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
        worst = worst.max(started.elapsed());
        assert_eq!(got.position, Position(n));
    }
    // The fallback poll is 500 ms; NOTIFY must beat it by far.
    assert!(
        worst < Duration::from_millis(250),
        "slowest cross-process wake-up: {worst:?}"
    );
}
