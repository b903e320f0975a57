//! The event-store conformance suite against SQLite.

mod conformance {
    domain::event_store_conformance!(infra::testing::fresh_sqlite_store);
}
