//! Fresh databases for tests. Each test owns its data: a new PostgreSQL database or a new
//! SQLite file. PostgreSQL is reached at `TENANTRY_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it cannot be reached the test fails,
//! it never skips.
#![expect(
    clippy::expect_used,
    reason = "test support: a panic is the failure report"
)]

use crate::database::{Database, DatabaseOptions, with_database};
use domain::event_store::EventStore;
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::Arc;

/// Prefix of every database a test creates; `.ci/test` drops leftovers by it.
pub const TEST_DATABASE_PREFIX: &str = "tenantry_t_";

pub fn pg_admin_url() -> String {
    std::env::var("TENANTRY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates an empty PostgreSQL database and returns its URL (not migrated).
pub async fn fresh_pg_url() -> String {
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for this test ({admin}): {e}"));
    let name = format!("{TEST_DATABASE_PREFIX}{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    with_database(&admin, &name)
}

/// A fresh, migrated PostgreSQL database.
pub async fn fresh_pg_database() -> Database {
    Database::open(&fresh_pg_url().await, &DatabaseOptions::default())
        .await
        .expect("open test database")
}

/// A path for a new SQLite file in the system temp directory.
pub fn fresh_sqlite_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "tenantry-test-{}.db",
        uuid::Uuid::now_v7().simple()
    ))
}

/// A fresh, migrated SQLite database in a new file.
pub async fn fresh_sqlite_database() -> Database {
    let url = format!("sqlite://{}", fresh_sqlite_path().display());
    Database::open(&url, &DatabaseOptions::default())
        .await
        .expect("open test database")
}

pub async fn fresh_pg_store() -> Arc<dyn EventStore> {
    fresh_pg_database()
        .await
        .event_store()
        .await
        .expect("start event store")
}

pub async fn fresh_sqlite_store() -> Arc<dyn EventStore> {
    fresh_sqlite_database()
        .await
        .event_store()
        .await
        .expect("start event store")
}

/// Runs async test functions `fn name(db: Database)` once on a fresh SQLite database and once
/// on a fresh PostgreSQL database: `infra::on_both_backends!(test_a, test_b);` generates
/// `sqlite::test_a`, `postgres::test_a`, ...
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::fresh_sqlite_database().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::fresh_pg_database().await).await;
                }
            )*
        }
    };
}
