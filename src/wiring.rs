//! The one place adapters are built from configuration.

use crate::cli::GlobalArgs;
use anyhow::Context;
use commands::Executor;
use domain::event_store::EventStore;
use infra::database::{Database, DatabaseOptions, redact};
use projections::runner::RunnerConfig;
use projections::tenant_directory::TenantDirectory;
use projections::{Projector, ReadDb};
use std::sync::Arc;

/// Everything a running role needs.
#[derive(Debug)]
pub struct App {
    pub store: Arc<dyn EventStore>,
    /// The write path (with snapshots).
    pub executor: Executor,
    pub read_db: ReadDb,
}

/// Connects to the configured database and migrates it.
pub async fn open_database(global: &GlobalArgs) -> anyhow::Result<Database> {
    let options = DatabaseOptions {
        max_connections: global.max_connections,
        ..DatabaseOptions::default()
    };
    let database = Database::open(&global.database_url, &options)
        .await
        .with_context(|| format!("opening {}", redact(&global.database_url)))?;
    tracing::info!(
        database.url = %redact(&global.database_url),
        database.backend = database.backend_name(),
        "database ready (migrations applied)"
    );
    Ok(database)
}

pub async fn open(global: &GlobalArgs) -> anyhow::Result<App> {
    let database = open_database(global).await?;
    let store = database
        .event_store()
        .await
        .context("starting the event store")?;
    let executor = Executor::new(store.clone()).with_snapshots(database.snapshot_store());
    Ok(App {
        store,
        executor,
        read_db: read_db(&database),
    })
}

/// Read models live in the same database as the event store.
pub fn read_db(database: &Database) -> ReadDb {
    match database {
        Database::Sqlite(db) => ReadDb::Sqlite {
            writer: db.writer.clone(),
            reader: db.reader.clone(),
        },
        Database::Postgres(pool) => ReadDb::Postgres(pool.clone()),
    }
}

/// Every projector of the platform.
pub fn projectors() -> Vec<Arc<dyn Projector>> {
    vec![Arc::new(TenantDirectory)]
}

pub fn runner_config(batch_size: usize) -> RunnerConfig {
    RunnerConfig {
        batch_size,
        ..RunnerConfig::default()
    }
}
