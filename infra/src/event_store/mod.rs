//! The event-store adapters. Both feed appends through [`group_commit`] (one writer task per
//! process that turns concurrent appends into one transaction) and serve subscriptions with
//! [`tail`] (catch-up reads, then wake-ups from the writer or, across processes, from
//! PostgreSQL's LISTEN/NOTIFY).

mod group_commit;
mod postgres;
mod row;
mod sqlite;
mod tail;

pub use postgres::PgEventStore;
pub use sqlite::SqliteEventStore;

/// How many events one global-log read returns at most while a subscription catches up.
pub const SUBSCRIPTION_BATCH: usize = 1_000;

use domain::event_store::EventStoreError;
use sqlx::error::ErrorKind;

/// Whether a failed batch may have failed because of one of its requests (a constraint or a
/// value the database refused), so that retrying its requests one by one isolates the faulty
/// one. Anything else (a lost connection, a timeout) fails the whole batch at once.
pub(crate) fn caused_by_a_request(error: &EventStoreError) -> bool {
    let EventStoreError::Backend(source) = error else {
        return false;
    };
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => {
            matches!(
                db.kind(),
                ErrorKind::UniqueViolation
                    | ErrorKind::CheckViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::ForeignKeyViolation
            ) || db.code().is_some_and(|code| code.starts_with("22"))
        }
        _ => false,
    }
}

/// Turns a database refusal that names a caller's mistake into an error that says so.
pub(crate) fn explain(error: EventStoreError) -> EventStoreError {
    if let EventStoreError::Backend(source) = &error
        && let Some(sqlx::Error::Database(db)) = source.downcast_ref::<sqlx::Error>()
        && db.kind() == ErrorKind::UniqueViolation
        && (db.constraint() == Some("events_event_id_key")
            || db.message().contains("events.event_id"))
    {
        return EventStoreError::InvalidAppend(
            "an event id in this append is already stored".into(),
        );
    }
    error
}
