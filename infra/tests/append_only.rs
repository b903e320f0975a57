//! Invariant 1: events and command results are never updated or deleted. The tables refuse
//! it themselves (triggers), whoever asks: UPDATE and DELETE on both backends, TRUNCATE on
//! PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests")]

use domain::event::{Actor, EventMetadata, NewEvent, Position, StreamId};
use domain::event_store::{AppendRequest, ExpectedVersion};
use domain::ids::CommandId;
use infra::database::Database;
use serde_json::json;

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "Test.Happened",
        json!({ "n": n }),
        EventMetadata::by(Actor::system("test")),
    )
}

infra::on_both_backends!(events_and_command_results_cannot_be_changed_or_removed);

async fn events_and_command_results_cannot_be_changed_or_removed(db: Database) {
    let store = db.event_store().await.unwrap();
    let command = CommandId::new_v7();
    let written = store
        .append(
            AppendRequest::to_stream(
                StreamId::for_aggregate("test", uuid::Uuid::now_v7()),
                ExpectedVersion::NoStream,
                vec![event(1), event(2)],
            )
            .idempotent(command),
        )
        .await
        .unwrap();
    let log = store.read_all(Position::START, 10).await.unwrap();
    assert_eq!(log.len(), 2);

    let mut statements = vec![
        "UPDATE events SET event_type = 'Test.Rewritten'",
        "UPDATE events SET payload = '{}' WHERE position = 1",
        "DELETE FROM events",
        "DELETE FROM events WHERE position = 2",
        "UPDATE event_commands SET result = '{}'",
        "DELETE FROM event_commands",
    ];
    if matches!(db, Database::Postgres(_)) {
        statements.extend([
            "TRUNCATE events",
            "TRUNCATE event_commands",
            "TRUNCATE events, event_commands",
        ]);
    }
    for sql in statements {
        let refused = match &db {
            Database::Sqlite(s) => sqlx::query(sql).execute(&s.writer).await.map(drop),
            Database::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        };
        let error = refused.expect_err(sql).to_string();
        assert!(error.contains("append-only"), "{sql}: {error}");
    }

    assert_eq!(store.read_all(Position::START, 10).await.unwrap(), log);
    let mut replayed = store.find_command(command).await.unwrap().unwrap();
    assert!(replayed.replayed);
    replayed.replayed = false;
    assert_eq!(replayed, written);
}
