//! Adversarial test of the PostgreSQL global log: concurrent writers through the store,
//! saboteurs that hold their append transactions open (`pg_sleep`) or roll them back, and a
//! live subscriber that must see every committed event exactly once, in position order.
#![expect(clippy::unwrap_used, reason = "tests")]

use domain::event::{Actor, EventMetadata, NewEvent, Position, RecordedEvent, StreamId};
use domain::event_store::{AppendRequest, EventStore, ExpectedVersion};
use domain::ids::EventId;
use futures_util::StreamExt;
use infra::database::{Database, DatabaseOptions};
use infra::event_store::PgEventStore;
use infra::testing::eventually;
use serde_json::json;
use sqlx::Connection;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITERS: u64 = 8;
const EVENTS_PER_WRITER: usize = 6_250;
const SABOTEURS: u64 = 3;
const SABOTAGE_ROUNDS: u64 = 40;

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn events(n: u64, writer: u64) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::new(
                "Test.Happened",
                json!({ "writer": writer, "i": i, "pad": "x".repeat(64) }),
                EventMetadata::by(Actor::system("ordering-test")),
            )
        })
        .collect()
}

fn ids(request: &AppendRequest) -> Vec<EventId> {
    request
        .streams
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.event_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscriber_sees_every_committed_event_once_in_order() {
    let url = infra::testing::fresh_pg_url().await;
    let db = Database::open(
        &url,
        &DatabaseOptions {
            max_connections: 24,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let store: Arc<dyn EventStore> = db.event_store().await.unwrap();

    let seen: Arc<Mutex<Vec<RecordedEvent>>> = Arc::default();
    let subscriber = {
        let seen = seen.clone();
        let mut sub = store.subscribe(Position::START);
        tokio::spawn(async move {
            while let Some(event) = sub.next().await {
                seen.lock().unwrap().push(event.unwrap());
            }
        })
    };

    // Writers through the store (group commit), batches of 1-20 events, to new streams and
    // to streams they keep appending to with exact expectations.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rng = Lcg(w + 1);
                let mut committed = Vec::new();
                let own = StreamId::for_aggregate("own", uuid::Uuid::now_v7());
                let mut own_version = domain::event::StreamVersion::NONE;
                while committed.len() < EVENTS_PER_WRITER {
                    let n = 1 + rng
                        .next(20)
                        .min((EVENTS_PER_WRITER - committed.len()) as u64 - 1);
                    let request = if rng.next(3) == 0 {
                        AppendRequest::to_stream(
                            own.clone(),
                            ExpectedVersion::Exact(own_version),
                            events(n, w),
                        )
                    } else {
                        let s = StreamId::for_aggregate("test", uuid::Uuid::now_v7());
                        AppendRequest::to_stream(s, ExpectedVersion::NoStream, events(n, w))
                    };
                    let written = ids(&request);
                    let result = store.append(request).await.unwrap();
                    if let Some(v) = result.version_of(&own) {
                        own_version = v;
                    }
                    committed.extend(written);
                }
                committed
            })
        })
        .collect();

    // Saboteurs call the same append function inside their own transactions, sleep while
    // holding them open, and commit or roll back.
    let saboteurs: Vec<_> = (0..SABOTEURS)
        .map(|s| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut rng = Lcg(100 + s);
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                let (mut committed, mut rolled_back) = (Vec::new(), Vec::new());
                for _ in 0..SABOTAGE_ROUNDS {
                    let stream = StreamId::for_aggregate("sabotage", uuid::Uuid::now_v7());
                    let request = AppendRequest::to_stream(
                        stream,
                        ExpectedVersion::Any,
                        events(1 + rng.next(10), 100 + s),
                    );
                    let written = ids(&request);
                    let mut tx = conn.begin().await.unwrap();
                    if rng.next(2) == 0 {
                        sqlx::query("SELECT pg_sleep($1)")
                            .bind(rng.next(20) as f64 / 1000.0)
                            .execute(&mut *tx)
                            .await
                            .unwrap();
                    }
                    let outcome = PgEventStore::append_on(&mut tx, std::slice::from_ref(&request))
                        .await
                        .unwrap();
                    assert!(outcome[0].is_ok());
                    sqlx::query("SELECT pg_sleep($1)")
                        .bind((5 + rng.next(30)) as f64 / 1000.0)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    if rng.next(3) == 0 {
                        tx.rollback().await.unwrap();
                        rolled_back.extend(written);
                    } else {
                        tx.commit().await.unwrap();
                        committed.extend(written);
                    }
                }
                (committed, rolled_back)
            })
        })
        .collect();

    let mut committed: HashSet<EventId> = HashSet::new();
    let mut rolled_back: HashSet<EventId> = HashSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    for s in saboteurs {
        let (c, r) = s.await.unwrap();
        committed.extend(c);
        rolled_back.extend(r);
    }
    assert!(
        committed.len() >= 50_000,
        "only {} events committed",
        committed.len()
    );
    assert!(
        !rolled_back.is_empty(),
        "the test must roll some appends back"
    );

    // One last event after everything: once the subscriber has delivered it, anything it
    // would deliver extra (a duplicate, a rolled-back event) has been delivered before it.
    let last = store
        .append(AppendRequest::to_stream(
            StreamId::for_aggregate("last", uuid::Uuid::now_v7()),
            ExpectedVersion::NoStream,
            events(1, WRITERS + SABOTEURS),
        ))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the subscriber reaching the last event",
        || async {
            let seen = seen.lock().unwrap();
            match seen.last() {
                Some(e) if e.position >= last.last_position => Ok(()),
                _ => Err(format!(
                    "{} of {} delivered",
                    seen.len(),
                    committed.len() + 1
                )),
            }
        },
    )
    .await;
    subscriber.abort();

    let head = store.head().await.unwrap();
    assert_eq!(head, last.last_position);
    let mut seen = seen.lock().unwrap();
    assert_eq!(seen.pop().map(|e| e.position), Some(last.last_position));
    let positions: Vec<u64> = seen.iter().map(|e| e.position.0).collect();
    let expected: Vec<u64> = (1..=committed.len() as u64).collect();
    assert!(
        positions == expected,
        "positions are not exactly 1..={} in order",
        committed.len()
    );
    let seen_ids: HashSet<EventId> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(seen_ids.len(), seen.len(), "an event was delivered twice");
    assert_eq!(
        seen_ids, committed,
        "delivered events differ from committed ones"
    );
    assert!(
        seen_ids.is_disjoint(&rolled_back),
        "a rolled-back event was delivered"
    );
    assert_eq!(head, Position(committed.len() as u64 + 1));
}
