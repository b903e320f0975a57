//! Fresh databases for tests. Each test owns its data: a new PostgreSQL database or a new
//! SQLite file. PostgreSQL is reached at `TENANTRY_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it cannot be reached the test fails,
//! it never skips.
//!
//! Each database's name carries the run that made it (`tenantry_t_<run>_<uuidv7>`, the run
//! from `TENANTRY_TEST_RUN`, which `.ci/test` sets), so a run drops its own databases and
//! nothing else: not another run's, not a benchmark's (`tenantry_bench_*`). SQLite files go
//! to the run's own temp directory, `tenantry-test-<run>`.
#![expect(
    clippy::expect_used,
    reason = "test support: a panic is the failure report"
)]

use crate::database::{Database, DatabaseOptions, with_database};
use domain::event_store::EventStore;
use sqlx::Connection;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Prefix of every database a test creates, followed by the run and a UUIDv7.
pub const TEST_DATABASE_PREFIX: &str = "tenantry_t_";
/// The environment variable naming the current test run (`[a-z0-9]{1,16}`).
pub const TEST_RUN_VAR: &str = "TENANTRY_TEST_RUN";
/// The run name used when [`TEST_RUN_VAR`] is not set (`cargo test` by hand).
pub const DEFAULT_TEST_RUN: &str = "adhoc";

/// The current run's name, checked so it fits in a PostgreSQL identifier.
pub fn test_run() -> String {
    let run = std::env::var(TEST_RUN_VAR).unwrap_or_else(|_| DEFAULT_TEST_RUN.to_owned());
    assert!(
        !run.is_empty()
            && run.len() <= 16
            && run
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{TEST_RUN_VAR} must be 1 to 16 lowercase letters or digits, got {run:?}"
    );
    run
}

/// The name of a new test database of the current run.
pub fn test_database_name() -> String {
    format!(
        "{TEST_DATABASE_PREFIX}{}_{}",
        test_run(),
        uuid::Uuid::now_v7().simple()
    )
}

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
    let name = test_database_name();
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

/// A path for a new SQLite file, in the current run's directory under the system temp
/// directory (`tenantry-test-<run>`, which `.ci/test` removes when the run ends).
pub fn fresh_sqlite_path() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-test-{}", test_run()));
    std::fs::create_dir_all(&dir).expect("create the run's test directory");
    dir.join(format!("{}.db", uuid::Uuid::now_v7().simple()))
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

/// Polls `check` every 10 ms until it returns `Ok`, and returns that value. Past `within`,
/// panics with `what` and the last `Err` (the state that was not good enough yet).
pub async fn eventually<T, E, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {within:?}; last seen: {last:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

/// localstripe (PyPI), a stateful fake Stripe server, on a loopback port of its own. It keeps
/// nothing on disk (its pickle dump, to a fixed path shared by every instance, is switched
/// off). Killed when dropped. Fails, never skips, when it cannot start.
#[derive(Debug)]
pub struct LocalStripe {
    child: std::process::Child,
    pub port: u16,
}

/// The secret key tests give Tenantry (localstripe takes any `sk_…`).
pub const LOCALSTRIPE_KEY: &str = "sk_test_tenantry";

const LOCALSTRIPE: &str = r#"
import sys
import localstripe.resources as resources
resources.Store.dump_to_disk = lambda self: None
from localstripe.server import start
sys.argv = ["localstripe", "--port", sys.argv[1], "--from-scratch"]
start()
"#;

/// Starts the server `command(port)` makes on a free loopback port (bound and released just
/// before the server binds it) and waits until it accepts connections.
async fn serve_on_a_free_port(
    command: impl FnOnce(u16) -> std::process::Command,
    what: &str,
) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = command(port)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        // Python servers start slowly on a loaded 2-core machine.
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{what} did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, port)
}

impl LocalStripe {
    pub async fn start() -> Self {
        let (child, port) = serve_on_a_free_port(
            |port| {
                let mut cmd = std::process::Command::new("python3");
                cmd.args(["-c", LOCALSTRIPE, &port.to_string()]);
                cmd
            },
            "localstripe (pip install localstripe)",
        )
        .await;
        Self { child, port }
    }

    /// Its API base, for `--stripe-api-base` and `StripePayments::new`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `moto_server` (PyPI `moto[server]`) on a free loopback port: an S3 server for tests,
/// addressed path-style. Killed when dropped.
#[derive(Debug)]
pub struct Moto {
    child: std::process::Child,
    pub port: u16,
}

/// The credentials tests give S3 clients (moto takes any).
pub const MOTO_KEY_ID: &str = "testing";
pub const MOTO_SECRET: &str = "testing-secret";

impl Moto {
    pub async fn start() -> Self {
        let (child, port) = serve_on_a_free_port(
            |port| {
                let mut cmd = std::process::Command::new("moto_server");
                cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                cmd
            },
            "moto_server (pip install 'moto[server]')",
        )
        .await;
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn settings(&self) -> crate::s3::S3Settings {
        crate::s3::S3Settings {
            endpoint: Some(self.url()),
            region: "us-east-1".into(),
            access_key_id: MOTO_KEY_ID.into(),
            secret_access_key: MOTO_SECRET.into(),
            path_style: true,
        }
    }

    /// A client with a new bucket `bucket`.
    pub async fn bucket(&self, bucket: &str) -> aws_sdk_s3::Client {
        let client = self.settings().client();
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create the bucket");
        client
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
