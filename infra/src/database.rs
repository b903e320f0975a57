//! The configured database: SQLite (the embedded default, one file) or PostgreSQL. Opening
//! it runs the migrations in `migrations/<backend>/`, which are embedded in the binary.

use crate::event_store::{PgEventStore, SqliteEventStore};
use crate::snapshot_store::SqlSnapshotStore;
use domain::event_store::{EventStore, EventStoreError};
use domain::snapshot::SnapshotStore;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// A pooled PostgreSQL connection idle for this long is pinged before it is used again.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(5);

static PG_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Where the embedded default keeps its data when nothing is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tenantry.db";

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(
        "unsupported database URL scheme in {0:?}: use sqlite://PATH or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl(String),
    #[error("in-memory SQLite is not supported: use a file, such as sqlite://data/tenantry.db")]
    InMemorySqlite,
    #[error("invalid database URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("could not create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("could not connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error(transparent)]
    EventStore(#[from] EventStoreError),
}

/// Pool sizes and timeouts.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// SQLite allows one writer at a time, so writes get a pool of one connection and reads
/// their own pool.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqliteDatabase),
    Postgres(PgPool),
}

impl Database {
    /// The read models' database: the same one (its pools shared).
    pub fn read_db(&self) -> projections::ReadDb {
        match self {
            Self::Sqlite(db) => projections::ReadDb::Sqlite {
                writer: db.writer.clone(),
                reader: db.reader.clone(),
            },
            Self::Postgres(pool) => projections::ReadDb::Postgres(pool.clone()),
        }
    }

    /// Connects (creating the SQLite file and its directory if needed). Does not migrate.
    pub async fn connect(url: &str, options: &DatabaseOptions) -> Result<Self, DatabaseError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url).map_err(DatabaseError::InvalidUrl)?;
            // sqlx pings every connection before handing it out: a round trip per query,
            // which cost the dashboard query a quarter of its database round trips. Only a
            // connection that sat idle for a while can have gone stale unnoticed (the server
            // restarted, a firewall dropped it); busy connections are handed out as they are.
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for < PING_IF_IDLE_FOR {
                            return Ok(true);
                        }
                        Ok(sqlx::Connection::ping(conn).await.is_ok())
                    })
                })
                .connect_with(connect)
                .await
                .map_err(DatabaseError::Connect)?;
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            if url.contains(":memory:") || url.contains("mode=memory") {
                // Writes and reads use separate pools, which would see separate databases.
                return Err(DatabaseError::InMemorySqlite);
            }
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(DatabaseError::InvalidUrl)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: an acknowledged append survives a power cut, not just a crash.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            if let Some(dir) = connect.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|source| DatabaseError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            // A SQLite connection is a local file handle: it cannot go stale, so the pool's
            // ping before each acquire (a round trip to the connection's thread) is waste.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect.clone())
                .await
                .map_err(DatabaseError::Connect)?;
            let reader = SqlitePoolOptions::new()
                .max_connections(options.max_connections.clamp(1, 8))
                .test_before_acquire(false)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect.read_only(true))
                .await
                .map_err(DatabaseError::Connect)?;
            Ok(Self::Sqlite(SqliteDatabase { writer, reader }))
        } else {
            Err(DatabaseError::UnsupportedUrl(redact(url)))
        }
    }

    /// Applies every pending migration (forward-only).
    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        match self {
            Self::Postgres(pool) => PG_MIGRATIONS.run(pool).await?,
            Self::Sqlite(db) => SQLITE_MIGRATIONS.run(&db.writer).await?,
        }
        Ok(())
    }

    /// Connects and migrates.
    pub async fn open(url: &str, options: &DatabaseOptions) -> Result<Self, DatabaseError> {
        let db = Self::connect(url, options).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// A trivial round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DatabaseError> {
        match self {
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Self::Sqlite(db) => {
                sqlx::query("SELECT 1").execute(&db.reader).await?;
            }
        }
        Ok(())
    }

    /// The event store on this database (which must be migrated).
    pub async fn event_store(&self) -> Result<Arc<dyn EventStore>, DatabaseError> {
        Ok(match self {
            Self::Postgres(pool) => Arc::new(PgEventStore::start(pool.clone()).await?),
            Self::Sqlite(db) => Arc::new(SqliteEventStore::start(db.clone()).await?),
        })
    }

    /// The snapshot store on this database (which must be migrated).
    pub fn snapshot_store(&self) -> Arc<dyn SnapshotStore> {
        Arc::new(SqlSnapshotStore::new(self.clone()))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

/// The URL with any password replaced, safe to log or print: the password of the user
/// information (which ends at the *last* `@` before the path) and `password` or
/// `sslpassword` query parameters.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (before_query, None),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}");
    if let Some(path) = path {
        out.push('/');
        out.push_str(path);
    }
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _))
                    if key.eq_ignore_ascii_case("password")
                        || key.eq_ignore_ascii_case("sslpassword") =>
                {
                    format!("{key}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A PostgreSQL `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let host = rest.split_once('/').map_or(rest, |(host, _)| host);
    match query {
        Some(q) => format!("{scheme}://{host}/{database}?{q}"),
        None => format!("{scheme}://{host}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact("sqlite://data/t.db"), "sqlite://data/t.db");
        assert_eq!(
            redact("postgres://app:p@ss@db/x?sslmode=disable"),
            "postgres://app:***@db/x?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://app@db/x?password=s3cret&application_name=t"),
            "postgres://app@db/x?password=***&application_name=t"
        );
    }

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }

    #[tokio::test]
    async fn in_memory_sqlite_is_refused_clearly() {
        let err = Database::connect("sqlite::memory:", &DatabaseOptions::default())
            .await
            .expect_err("in-memory SQLite is not supported");
        assert!(matches!(err, DatabaseError::InMemorySqlite), "{err}");
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_clearly() {
        let err = Database::connect("mysql://u:pw@h/db", &DatabaseOptions::default())
            .await
            .expect_err("mysql is not supported");
        let message = err.to_string();
        assert!(
            message.contains("unsupported database URL scheme"),
            "{message}"
        );
        assert!(!message.contains("pw"), "password leaked: {message}");
    }
}
