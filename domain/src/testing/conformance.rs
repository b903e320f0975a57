//! The event-store conformance suite. Each check takes a fresh, empty store; a backend runs
//! them all with `domain::event_store_conformance!(path::to::async_factory);`.
#![expect(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use crate::event::{
    Actor, EventMetadata, InvalidEvent, MAX_EVENT_TYPE_LEN, MAX_METADATA_BYTES, MAX_SCHEMA_VERSION,
    NewEvent, Position, RecordedEvent, StreamId, StreamVersion,
};
use crate::event_store::{
    AppendRequest, EventStore, EventStoreError, ExpectedVersion, MAX_BYTES_PER_APPEND,
    MAX_EVENTS_PER_APPEND, StreamRead,
};
use crate::ids::{CommandId, CorrelationId, EventId, TenantId, UserId};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Generates one `#[tokio::test]` per conformance check for a backend.
/// `$factory` is an async fn returning `Arc<dyn EventStore>` over a fresh, empty store.
#[macro_export]
macro_rules! event_store_conformance {
    ($factory:path) => {
        $crate::event_store_conformance!(@each $factory;
            read_back_preserves_the_whole_envelope,
            unknown_stream_reads_as_empty,
            expected_no_stream,
            expected_exact_version,
            expected_stream_exists,
            expected_any,
            multi_stream_append_is_atomic,
            expectation_only_stream_guards_an_append,
            command_id_makes_appends_idempotent,
            invalid_events_write_nothing,
            more_than_10_000_events_in_one_append_are_refused,
            more_than_32_mib_in_one_append_are_refused,
            metadata_over_16_kib_is_refused,
            event_types_over_128_bytes_or_with_other_characters_are_refused,
            schema_version_0_is_refused_and_the_largest_is_kept,
            reads_stream_forwards_and_backwards_from_a_version,
            global_log_is_dense_and_ordered_in_batches,
            concurrent_writers_to_one_stream_exactly_one_wins,
            concurrent_appends_to_many_streams_all_land_in_order,
            concurrent_appends_to_one_stream_get_consecutive_versions,
            a_refused_append_does_not_fail_the_appends_beside_it,
            subscription_catches_up_then_goes_live,
            subscription_from_a_position_skips_earlier_events,
            a_follower_of_some_categories_gets_every_position_and_only_their_payloads
        );
    };
    (@each $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testing::conformance::$name($factory().await).await;
            }
        )*
    };
}

type Store = Arc<dyn EventStore>;

fn meta() -> EventMetadata {
    EventMetadata::by(Actor::system("conformance"))
}

fn stream() -> StreamId {
    StreamId::for_aggregate("test", uuid::Uuid::now_v7())
}

fn event(n: u64) -> NewEvent {
    NewEvent::new("Something.Happened", json!({ "n": n }), meta())
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

async fn all(store: &Store, s: &StreamId) -> Vec<RecordedEvent> {
    store.read_stream(s, StreamRead::forwards()).await.unwrap()
}

async fn append(
    store: &Store,
    s: &StreamId,
    expected: ExpectedVersion,
    evs: Vec<NewEvent>,
) -> Result<crate::event_store::AppendResult, EventStoreError> {
    store
        .append(AppendRequest::to_stream(s.clone(), expected, evs))
        .await
}

fn assert_conflict(
    result: Result<impl std::fmt::Debug, EventStoreError>,
    stream: &StreamId,
    expected: ExpectedVersion,
    actual: u64,
) {
    match result {
        Err(EventStoreError::VersionConflict {
            stream: s,
            expected: e,
            actual: a,
        }) => {
            assert_eq!(&s, stream);
            assert_eq!(e, expected);
            assert_eq!(a, StreamVersion(actual));
            let message = EventStoreError::VersionConflict {
                stream: s,
                expected: e,
                actual: a,
            }
            .to_string();
            assert!(message.contains(stream.as_str()), "{message}");
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
}

pub async fn read_back_preserves_the_whole_envelope(store: Store) {
    let s = stream();
    let tenant = TenantId::new_v7();
    let mut metadata = EventMetadata::by(Actor::User {
        id: UserId::new_v7(),
    });
    metadata.command_id = Some(CommandId::new_v7());
    metadata.correlation_id = Some(CorrelationId::new_v7());
    metadata.causation_id = Some(EventId::new_v7());
    metadata.source_ip = Some("2001:db8::1".into());
    let payload = json!({
        "name": "Ünïcødé ✓ \"quoted\" \\ back",
        "nested": { "list": [1, 2.5, -3, null, true], "empty": {} },
        "big": 9_007_199_254_740_991_u64,
    });
    let new = NewEvent::new("Tenant.Provisioned", payload.clone(), metadata.clone())
        .for_tenant(tenant)
        .with_schema_version(3);
    let before = chrono::Utc::now();
    let result = append(&store, &s, ExpectedVersion::NoStream, vec![new.clone()])
        .await
        .unwrap();
    let after = chrono::Utc::now();
    assert_eq!(result.first_position, result.last_position);
    assert_eq!(result.version_of(&s), Some(StreamVersion(1)));

    let read = all(&store, &s).await;
    assert_eq!(read.len(), 1);
    let got = &read[0];
    assert_eq!(got.event_id, new.event_id);
    assert_eq!(got.event_id.as_uuid().get_version_num(), 7);
    assert_eq!(got.stream, s);
    assert_eq!(got.version, StreamVersion(1));
    assert_eq!(got.position, result.first_position);
    assert_eq!(got.event_type, "Tenant.Provisioned");
    assert_eq!(got.schema_version, 3);
    assert_eq!(got.tenant_id, Some(tenant));
    assert_eq!(got.payload, payload);
    assert_eq!(got.metadata, metadata);
    let slack = chrono::Duration::milliseconds(5);
    assert!(
        got.recorded_at >= before - slack && got.recorded_at <= after + slack,
        "recorded_at {} not within the append ({before}..{after})",
        got.recorded_at
    );
    let from_log = store.read_all(Position::START, 10).await.unwrap();
    assert_eq!(from_log, read);
}

pub async fn unknown_stream_reads_as_empty(store: Store) {
    assert!(all(&store, &stream()).await.is_empty());
    let backwards = store
        .read_stream(&stream(), StreamRead::backwards())
        .await
        .unwrap();
    assert!(backwards.is_empty());
    assert_eq!(store.head().await.unwrap(), Position::START);
    assert!(
        store
            .read_all(Position::START, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn expected_no_stream(store: Store) {
    let s = stream();
    append(&store, &s, ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();
    let again = append(&store, &s, ExpectedVersion::NoStream, events(2..3)).await;
    assert_conflict(again, &s, ExpectedVersion::NoStream, 2);
    assert_eq!(all(&store, &s).await.len(), 2);
}

pub async fn expected_exact_version(store: Store) {
    let s = stream();
    let missing = append(
        &store,
        &s,
        ExpectedVersion::Exact(StreamVersion(5)),
        events(0..1),
    )
    .await;
    assert_conflict(missing, &s, ExpectedVersion::Exact(StreamVersion(5)), 0);

    let first = append(
        &store,
        &s,
        ExpectedVersion::Exact(StreamVersion::NONE),
        events(0..1),
    )
    .await
    .unwrap();
    assert_eq!(first.version_of(&s), Some(StreamVersion(1)));
    let second = append(
        &store,
        &s,
        ExpectedVersion::Exact(StreamVersion(1)),
        events(1..4),
    )
    .await
    .unwrap();
    assert_eq!(second.version_of(&s), Some(StreamVersion(4)));
    assert_eq!(second.last_position.0 - second.first_position.0, 2);

    let stale = append(
        &store,
        &s,
        ExpectedVersion::Exact(StreamVersion(1)),
        events(4..5),
    )
    .await;
    assert_conflict(stale, &s, ExpectedVersion::Exact(StreamVersion(1)), 4);
    let versions: Vec<u64> = all(&store, &s).await.iter().map(|e| e.version.0).collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
}

pub async fn expected_stream_exists(store: Store) {
    let s = stream();
    let missing = append(&store, &s, ExpectedVersion::StreamExists, events(0..1)).await;
    assert_conflict(missing, &s, ExpectedVersion::StreamExists, 0);
    append(&store, &s, ExpectedVersion::Any, events(0..1))
        .await
        .unwrap();
    let ok = append(&store, &s, ExpectedVersion::StreamExists, events(1..2))
        .await
        .unwrap();
    assert_eq!(ok.version_of(&s), Some(StreamVersion(2)));
}

pub async fn expected_any(store: Store) {
    let s = stream();
    for n in 0..3 {
        let r = append(&store, &s, ExpectedVersion::Any, events(n..n + 1))
            .await
            .unwrap();
        assert_eq!(r.version_of(&s), Some(StreamVersion(n + 1)));
    }
}

pub async fn multi_stream_append_is_atomic(store: Store) {
    let (a, b) = (stream(), stream());
    let ok = store
        .append(
            AppendRequest::to_stream(a.clone(), ExpectedVersion::NoStream, events(0..2))
                .and_stream(b.clone(), ExpectedVersion::NoStream, events(2..3)),
        )
        .await
        .unwrap();
    assert_eq!(ok.version_of(&a), Some(StreamVersion(2)));
    assert_eq!(ok.version_of(&b), Some(StreamVersion(1)));
    assert_eq!(ok.last_position.0 - ok.first_position.0, 2);
    let head = store.head().await.unwrap();
    assert_eq!(head, ok.last_position);

    // b's expectation fails, so a gets nothing either.
    let failed = store
        .append(
            AppendRequest::to_stream(
                a.clone(),
                ExpectedVersion::Exact(StreamVersion(2)),
                events(3..5),
            )
            .and_stream(
                b.clone(),
                ExpectedVersion::Exact(StreamVersion(7)),
                events(5..6),
            ),
        )
        .await;
    assert_conflict(failed, &b, ExpectedVersion::Exact(StreamVersion(7)), 1);
    assert_eq!(all(&store, &a).await.len(), 2);
    assert_eq!(all(&store, &b).await.len(), 1);
    assert_eq!(store.head().await.unwrap(), head);
}

pub async fn expectation_only_stream_guards_an_append(store: Store) {
    let (guard, target) = (stream(), stream());
    append(&store, &guard, ExpectedVersion::Any, events(0..1))
        .await
        .unwrap();
    let request = |v| {
        AppendRequest::to_stream(target.clone(), ExpectedVersion::Any, events(1..2)).and_stream(
            guard.clone(),
            ExpectedVersion::Exact(StreamVersion(v)),
            vec![],
        )
    };
    let ok = store.append(request(1)).await.unwrap();
    assert_eq!(ok.version_of(&guard), Some(StreamVersion(1)));
    assert_eq!(ok.version_of(&target), Some(StreamVersion(1)));
    assert_conflict(
        store.append(request(0)).await,
        &guard,
        ExpectedVersion::Exact(StreamVersion(0)),
        1,
    );
    assert_eq!(all(&store, &target).await.len(), 1);
}

pub async fn command_id_makes_appends_idempotent(store: Store) {
    let s = stream();
    let command = CommandId::new_v7();
    let request = AppendRequest::to_stream(s.clone(), ExpectedVersion::NoStream, events(0..2))
        .idempotent(command);
    let first = store.append(request.clone()).await.unwrap();
    assert!(!first.replayed);
    let replay = |mut r: crate::event_store::AppendResult| {
        assert!(
            r.replayed,
            "a repeated command id must be reported as replayed"
        );
        r.replayed = false;
        r
    };
    // The retry would conflict (NoStream) if it were not recognised as the same command.
    let second = store.append(request).await.unwrap();
    assert_eq!(first, replay(second));
    // A different body under the same command id is still the same command.
    let third = store
        .append(
            AppendRequest::to_stream(stream(), ExpectedVersion::Any, events(5..9))
                .idempotent(command),
        )
        .await
        .unwrap();
    assert_eq!(first, replay(third));
    let found = store.find_command(command).await.unwrap().unwrap();
    assert_eq!(first, replay(found));
    assert_eq!(store.find_command(CommandId::new_v7()).await.unwrap(), None);
    assert_eq!(all(&store, &s).await.len(), 2);
    assert_eq!(store.head().await.unwrap(), first.last_position);

    // Concurrent retries of one command: one write, one result.
    let other = CommandId::new_v7();
    let s2 = stream();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let req = AppendRequest::to_stream(s2.clone(), ExpectedVersion::Any, events(0..1))
                .idempotent(other);
            tokio::spawn(async move { store.append(req).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        let mut r = t.await.unwrap();
        r.replayed = false;
        results.push(r);
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(all(&store, &s2).await.len(), 1);
}

pub async fn invalid_events_write_nothing(store: Store) {
    let s = stream();
    let bad_type = NewEvent::new("", json!({}), meta());
    let err = append(&store, &s, ExpectedVersion::Any, vec![event(0), bad_type])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("event type must not be empty"),
        "{err}"
    );
    let not_object = NewEvent::new("X", json!("just a string"), meta());
    let err = append(&store, &s, ExpectedVersion::Any, vec![not_object])
        .await
        .unwrap_err();
    assert!(matches!(err, EventStoreError::InvalidEvent(_)), "{err:?}");
    let nul = NewEvent::new("X", json!({ "name": "a\u{0}b" }), meta());
    let err = append(&store, &s, ExpectedVersion::Any, vec![nul])
        .await
        .unwrap_err();
    assert!(matches!(err, EventStoreError::InvalidEvent(_)), "{err:?}");
    let future = event(9).with_schema_version(u32::MAX);
    let err = append(&store, &s, ExpectedVersion::Any, vec![future])
        .await
        .unwrap_err();
    assert!(matches!(err, EventStoreError::InvalidEvent(_)), "{err:?}");
    let err = append(&store, &s, ExpectedVersion::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, EventStoreError::InvalidAppend(_)), "{err:?}");
    let twice = event(1);
    let err = append(&store, &s, ExpectedVersion::Any, vec![twice.clone(), twice])
        .await
        .unwrap_err();
    assert!(matches!(err, EventStoreError::InvalidAppend(_)), "{err:?}");
    let err = store
        .append(
            AppendRequest::to_stream(s.clone(), ExpectedVersion::Any, events(0..1)).and_stream(
                s.clone(),
                ExpectedVersion::Any,
                events(1..2),
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EventStoreError::InvalidAppend(_)), "{err:?}");

    // An event id that is already stored fails the append, and only that append.
    let stored = event(2);
    append(&store, &s, ExpectedVersion::Any, vec![stored.clone()])
        .await
        .unwrap();
    let dup = append(&store, &stream(), ExpectedVersion::Any, vec![stored])
        .await
        .unwrap_err();
    assert!(
        dup.to_string().contains("event id") && dup.to_string().contains("already stored"),
        "a reused event id must be refused clearly: {dup}"
    );
    assert_eq!(store.head().await.unwrap(), Position(1));
    assert_eq!(all(&store, &s).await.len(), 1);
}

/// Appends `events` after a valid event in one request, and asserts the request is refused as
/// `expected` says, with nothing written.
async fn assert_refused_whole(
    store: &Store,
    events: Vec<NewEvent>,
    expected: impl Fn(&EventStoreError) -> bool,
    about: &str,
) {
    let head = store.head().await.unwrap();
    let s = stream();
    let mut request = vec![event(0)];
    request.extend(events);
    let outcome = append(store, &s, ExpectedVersion::Any, request).await;
    match outcome {
        Err(e) if expected(&e) => {}
        other => panic!("{about}: expected a refusal, got {other:?}"),
    }
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "{about}: something was written"
    );
    assert!(all(store, &s).await.is_empty(), "{about}: the stream grew");
}

fn invalid_event(error: &EventStoreError, expected: &InvalidEvent) -> bool {
    matches!(error, EventStoreError::InvalidEvent(e) if e == expected)
}

/// An event whose payload and metadata serialize to exactly `bytes` bytes together.
fn event_of_size(bytes: usize) -> NewEvent {
    let shell = NewEvent::new("Something.Happened", json!({ "pad": "" }), meta());
    let overhead = serde_json::to_vec(&shell.payload).unwrap().len()
        + serde_json::to_vec(&shell.metadata).unwrap().len();
    let sized = NewEvent::new(
        "Something.Happened",
        json!({ "pad": "x".repeat(bytes - overhead) }),
        meta(),
    );
    assert_eq!(sized.validate().unwrap(), bytes);
    sized
}

pub async fn more_than_10_000_events_in_one_append_are_refused(store: Store) {
    let s = stream();
    let most = append(
        &store,
        &s,
        ExpectedVersion::NoStream,
        events(0..MAX_EVENTS_PER_APPEND as u64),
    )
    .await
    .unwrap();
    assert_eq!(
        most.version_of(&s),
        Some(StreamVersion(MAX_EVENTS_PER_APPEND as u64))
    );
    assert_eq!(MAX_EVENTS_PER_APPEND, 10_000, "the documented limit");
    assert_refused_whole(
        &store,
        events(1..MAX_EVENTS_PER_APPEND as u64 + 1),
        |e| matches!(e, EventStoreError::InvalidAppend(m) if m.contains("at most 10000 events")),
        "10,001 events",
    )
    .await;
}

pub async fn more_than_32_mib_in_one_append_are_refused(store: Store) {
    assert_eq!(
        MAX_BYTES_PER_APPEND,
        32 * 1024 * 1024,
        "the documented limit"
    );
    // The valid first event `assert_refused_whole` adds, then events of 250,000 bytes, the
    // last one sized so the whole request is one byte over the limit.
    let first = event(0).validate().unwrap();
    let mut left = MAX_BYTES_PER_APPEND + 1 - first;
    let mut big = Vec::new();
    while left > 0 {
        // Never leave a remainder too small to be an event of its own.
        let size = match left {
            251_000.. => 250_000,
            250_001..251_000 => left - 1_000,
            _ => left,
        };
        big.push(event_of_size(size));
        left -= size;
    }
    assert_refused_whole(
        &store,
        big,
        |e| matches!(e, EventStoreError::InvalidAppend(m) if m.contains("bytes")),
        "an append one byte over 32 MiB",
    )
    .await;
}

pub async fn metadata_over_16_kib_is_refused(store: Store) {
    assert_eq!(MAX_METADATA_BYTES, 16 * 1024, "the documented limit");
    let with_metadata_of = |bytes: usize| {
        let mut metadata = meta();
        metadata.source_ip = Some(String::new());
        let overhead = serde_json::to_vec(&metadata).unwrap().len();
        metadata.source_ip = Some("1".repeat(bytes - overhead));
        assert_eq!(serde_json::to_vec(&metadata).unwrap().len(), bytes);
        NewEvent::new("Something.Happened", json!({}), metadata)
    };
    let s = stream();
    let at_limit = with_metadata_of(MAX_METADATA_BYTES);
    append(
        &store,
        &s,
        ExpectedVersion::NoStream,
        vec![at_limit.clone()],
    )
    .await
    .unwrap();
    assert_eq!(all(&store, &s).await[0].metadata, at_limit.metadata);
    assert_refused_whole(
        &store,
        vec![with_metadata_of(MAX_METADATA_BYTES + 1)],
        |e| invalid_event(e, &InvalidEvent::MetadataTooLarge(MAX_METADATA_BYTES + 1)),
        "metadata of 16 KiB + 1 byte",
    )
    .await;
}

pub async fn event_types_over_128_bytes_or_with_other_characters_are_refused(store: Store) {
    assert_eq!(MAX_EVENT_TYPE_LEN, 128, "the documented limit");
    let typed = |name: &str| NewEvent::new(name, json!({}), meta());
    let s = stream();
    let longest = format!("Aa0._:-{}", "x".repeat(MAX_EVENT_TYPE_LEN - 7));
    append(&store, &s, ExpectedVersion::NoStream, vec![typed(&longest)])
        .await
        .unwrap();
    assert_eq!(all(&store, &s).await[0].event_type, longest);

    let too_long = "x".repeat(MAX_EVENT_TYPE_LEN + 1);
    assert_refused_whole(
        &store,
        vec![typed(&too_long)],
        |e| invalid_event(e, &InvalidEvent::EventTypeTooLong(too_long.clone())),
        "an event type of 129 bytes",
    )
    .await;
    for bad in [
        "Tenant Provisioned",
        "Tenant/Provisioned",
        "Tenant\nProvisioned",
        "Événement",
        "Tenant;DROP",
        "Tenant'Provisioned",
    ] {
        assert_refused_whole(
            &store,
            vec![typed(bad)],
            |e| invalid_event(e, &InvalidEvent::EventTypeCharacters(bad.into())),
            &format!("the event type {bad:?}"),
        )
        .await;
    }
}

pub async fn schema_version_0_is_refused_and_the_largest_is_kept(store: Store) {
    assert_refused_whole(
        &store,
        vec![event(1).with_schema_version(0)],
        |e| invalid_event(e, &InvalidEvent::SchemaVersionOutOfRange),
        "schema version 0",
    )
    .await;
    let s = stream();
    append(
        &store,
        &s,
        ExpectedVersion::NoStream,
        vec![event(2).with_schema_version(MAX_SCHEMA_VERSION)],
    )
    .await
    .unwrap();
    assert_eq!(all(&store, &s).await[0].schema_version, MAX_SCHEMA_VERSION);
    assert_refused_whole(
        &store,
        vec![event(3).with_schema_version(MAX_SCHEMA_VERSION + 1)],
        |e| invalid_event(e, &InvalidEvent::SchemaVersionOutOfRange),
        "schema version 2^31",
    )
    .await;
}

pub async fn reads_stream_forwards_and_backwards_from_a_version(store: Store) {
    let s = stream();
    append(&store, &s, ExpectedVersion::NoStream, events(0..10))
        .await
        .unwrap();
    let n = |evs: Vec<RecordedEvent>| -> Vec<u64> { evs.iter().map(|e| e.version.0).collect() };
    let fwd = store
        .read_stream(
            &s,
            StreamRead::forwards()
                .from_version(StreamVersion(4))
                .limit(3),
        )
        .await
        .unwrap();
    assert_eq!(n(fwd), vec![4, 5, 6]);
    let back = store
        .read_stream(&s, StreamRead::backwards().limit(2))
        .await
        .unwrap();
    assert_eq!(n(back), vec![10, 9]);
    let back_from = store
        .read_stream(&s, StreamRead::backwards().from_version(StreamVersion(3)))
        .await
        .unwrap();
    assert_eq!(n(back_from), vec![3, 2, 1]);
    let past_end = store
        .read_stream(&s, StreamRead::forwards().from_version(StreamVersion(11)))
        .await
        .unwrap();
    assert!(past_end.is_empty());
    let payloads: Vec<_> = all(&store, &s)
        .await
        .iter()
        .map(|e| e.payload["n"].as_u64().unwrap())
        .collect();
    assert_eq!(payloads, (0..10).collect::<Vec<_>>());
}

pub async fn global_log_is_dense_and_ordered_in_batches(store: Store) {
    let streams: Vec<StreamId> = (0..4).map(|_| stream()).collect();
    let mut written = Vec::new();
    for round in 0..5u64 {
        for s in &streams {
            let r = append(&store, s, ExpectedVersion::Any, events(round..round + 2))
                .await
                .unwrap();
            written.push((s.clone(), r.first_position, r.last_position));
        }
    }
    let head = store.head().await.unwrap();
    assert_eq!(head, Position(40));
    let mut read = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = store.read_all(after, 7).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 7);
        after = batch.last().unwrap().position;
        read.extend(batch);
    }
    let positions: Vec<u64> = read.iter().map(|e| e.position.0).collect();
    assert_eq!(positions, (1..=40).collect::<Vec<_>>());
    for (s, first, last) in written {
        for p in first.0..=last.0 {
            assert_eq!(read[(p - 1) as usize].stream, s);
        }
    }
    // The payload-free read names the same streams at the same positions, in the same
    // batches.
    let mut light = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = store.read_all_streams(after, 7).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 7);
        after = batch.last().unwrap().0;
        light.extend(batch);
    }
    let full: Vec<(Position, StreamId)> = read
        .iter()
        .map(|e| (e.position, e.stream.clone()))
        .collect();
    assert_eq!(light, full);
}

pub async fn concurrent_writers_to_one_stream_exactly_one_wins(store: Store) {
    let s = stream();
    append(&store, &s, ExpectedVersion::NoStream, events(0..1))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let store = store.clone();
            let s = s.clone();
            tokio::spawn(async move {
                append(
                    &store,
                    &s,
                    ExpectedVersion::Exact(StreamVersion(1)),
                    events(n..n + 1),
                )
                .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_conflict(
                Err::<(), _>(e),
                &s,
                ExpectedVersion::Exact(StreamVersion(1)),
                2,
            ),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(all(&store, &s).await.len(), 2);
}

pub async fn concurrent_appends_to_many_streams_all_land_in_order(store: Store) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let s = stream();
                let mut last = StreamVersion::NONE;
                for n in 0..20 {
                    let r = append(&store, &s, ExpectedVersion::Exact(last), events(n..n + 1))
                        .await
                        .unwrap();
                    last = r.version_of(&s).unwrap();
                }
                s
            })
        })
        .collect();
    let mut streams = Vec::new();
    for t in tasks {
        streams.push(t.await.unwrap());
    }
    let log = store.read_all(Position::START, 1000).await.unwrap();
    assert_eq!(log.len(), 320);
    assert!(
        log.iter()
            .enumerate()
            .all(|(i, e)| e.position.0 == i as u64 + 1)
    );
    for s in streams {
        let versions: Vec<u64> = log
            .iter()
            .filter(|e| e.stream == s)
            .map(|e| e.version.0)
            .collect();
        assert_eq!(versions, (1..=20).collect::<Vec<_>>());
    }
}

pub async fn concurrent_appends_to_one_stream_get_consecutive_versions(store: Store) {
    // Concurrent appends are likely to share a batch: each must see the versions the ones
    // before it produce, including when one of them is rejected.
    let s = stream();
    let tasks: Vec<_> = (0..24)
        .map(|n| {
            let store = store.clone();
            let s = s.clone();
            tokio::spawn(async move {
                let expected = if n % 6 == 5 {
                    ExpectedVersion::NoStream // refused: the stream exists by then, or not
                } else {
                    ExpectedVersion::Any
                };
                (expected, append(&store, &s, expected, events(0..2)).await)
            })
        })
        .collect();
    let mut written = 0;
    for t in tasks {
        match t.await.unwrap() {
            (_, Ok(r)) => {
                written += 2;
                let v = r.version_of(&s).unwrap().0;
                assert_eq!(
                    v % 2,
                    0,
                    "appends of 2 events end on even versions, got {v}"
                );
            }
            (ExpectedVersion::NoStream, Err(EventStoreError::VersionConflict { .. })) => {}
            (_, Err(e)) => panic!("unexpected failure: {e}"),
        }
    }
    let versions: Vec<u64> = all(&store, &s).await.iter().map(|e| e.version.0).collect();
    assert_eq!(versions, (1..=written).collect::<Vec<_>>());
    assert_eq!(store.head().await.unwrap(), Position(written));
}

pub async fn a_refused_append_does_not_fail_the_appends_beside_it(store: Store) {
    // Concurrent appends may share a transaction; one of them reuses a stored event id.
    let stored = event(0);
    append(
        &store,
        &stream(),
        ExpectedVersion::Any,
        vec![stored.clone()],
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let store = store.clone();
            let evs = if n == 6 {
                vec![event(1), stored.clone()]
            } else {
                events(0..3)
            };
            tokio::spawn(async move { append(&store, &stream(), ExpectedVersion::Any, evs).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    for (n, outcome) in outcomes.iter().enumerate() {
        if n == 6 {
            assert!(outcome.is_err(), "the append reusing an event id must fail");
        } else {
            assert!(outcome.is_ok(), "append {n} failed: {outcome:?}");
        }
    }
    assert_eq!(store.head().await.unwrap(), Position(1 + 11 * 3));
}

async fn collect(sub: &mut crate::event_store::EventStream, n: usize) -> Vec<RecordedEvent> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("subscription stalled after {} events", got.len()));
        got.push(next.expect("subscription ended").unwrap());
    }
    got
}

pub async fn subscription_catches_up_then_goes_live(store: Store) {
    let s = stream();
    append(&store, &s, ExpectedVersion::Any, events(0..25))
        .await
        .unwrap();
    let mut sub = store.subscribe(Position::START);
    let first = collect(&mut sub, 25).await;

    // Live: several writers while the subscriber waits.
    let writers: Vec<_> = (0..5)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let s = stream();
                for n in 0..5 {
                    append(&store, &s, ExpectedVersion::Any, events(n..n + 1))
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let live = collect(&mut sub, 25).await;
    for w in writers {
        w.await.unwrap();
    }
    let positions: Vec<u64> = first.iter().chain(&live).map(|e| e.position.0).collect();
    assert_eq!(positions, (1..=50).collect::<Vec<_>>());
    let ids: HashSet<EventId> = first.iter().chain(&live).map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 50);
    // Nothing more arrives that was not written: the next event delivered is the next one
    // appended (a duplicate or a stray would come before it).
    let next = append(&store, &stream(), ExpectedVersion::Any, events(0..1))
        .await
        .unwrap();
    let delivered = collect(&mut sub, 1).await;
    assert_eq!(delivered[0].position, next.first_position);
    assert_eq!(next.first_position, Position(51));
}

pub async fn a_follower_of_some_categories_gets_every_position_and_only_their_payloads(
    store: Store,
) {
    let wanted = StreamId::for_aggregate("wanted", uuid::Uuid::now_v7());
    let other = StreamId::for_aggregate("other_kind", uuid::Uuid::now_v7());
    for n in 0..6 {
        let s = if n % 2 == 0 { &wanted } else { &other };
        append(&store, s, ExpectedVersion::Any, events(n..n + 1))
            .await
            .unwrap();
    }
    let reads = crate::event::Reads::categories(&["wanted", "absent"]);
    let check = |got: &[RecordedEvent]| {
        let positions: Vec<u64> = got.iter().map(|e| e.position.0).collect();
        assert_eq!(
            positions,
            (1..=6).collect::<Vec<_>>(),
            "every position, in order"
        );
        for e in got {
            if reads.includes(e) {
                assert_eq!(e.payload["n"], json!(e.position.0 - 1), "{e:?}");
                assert_eq!(e.metadata, meta());
            } else {
                assert_eq!(e.payload, serde_json::Value::Null, "{e:?}");
                assert_eq!(e.stream, other);
            }
        }
    };
    check(
        &store
            .read_all_of(Position::START, 100, reads)
            .await
            .unwrap(),
    );
    let mut sub = store.subscribe_to(Position::START, reads);
    check(&collect(&mut sub, 6).await);
    // The plain read still carries everything.
    let all = store.read_all(Position::START, 100).await.unwrap();
    assert!(all.iter().all(|e| e.payload["n"].is_u64()));
}

pub async fn subscription_from_a_position_skips_earlier_events(store: Store) {
    let s = stream();
    append(&store, &s, ExpectedVersion::Any, events(0..10))
        .await
        .unwrap();
    let mut sub = store.subscribe(Position(6));
    append(&store, &s, ExpectedVersion::Any, events(10..12))
        .await
        .unwrap();
    let got = collect(&mut sub, 6).await;
    let positions: Vec<u64> = got.iter().map(|e| e.position.0).collect();
    assert_eq!(positions, vec![7, 8, 9, 10, 11, 12]);
}
