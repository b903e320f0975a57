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
