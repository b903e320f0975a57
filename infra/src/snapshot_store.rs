//! Snapshot stores on SQLite and PostgreSQL: one row per stream, replaced only by a newer one.

use crate::database::Database;
use async_trait::async_trait;
use domain::event::{StreamId, StreamVersion};
use domain::event_store::EventStoreError;
use domain::snapshot::{Snapshot, SnapshotStore};
use serde_json::Value;
use sqlx::types::Json;

const SAVE: &str = "INSERT INTO snapshots (stream_id, version, schema_version, state, taken_at) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, \
     schema_version = excluded.schema_version, state = excluded.state, taken_at = excluded.taken_at \
     WHERE snapshots.version < excluded.version OR snapshots.schema_version <> excluded.schema_version";
const LOAD: &str = "SELECT version, schema_version, state FROM snapshots WHERE stream_id = $1";

type Row = (i64, i32, Json<Value>);

fn decode(stream: &StreamId, row: Option<Row>) -> Option<Snapshot> {
    let (version, schema_version, Json(state)) = row?;
    Some(Snapshot {
        stream: stream.clone(),
        version: StreamVersion(u64::try_from(version).ok()?),
        schema_version: u32::try_from(schema_version).ok()?,
        state,
    })
}

fn sql_version(version: StreamVersion) -> i64 {
    i64::try_from(version.0).unwrap_or(i64::MAX)
}

fn sql_schema(snapshot: &Snapshot) -> i32 {
    i32::try_from(snapshot.schema_version).unwrap_or(i32::MAX)
}

/// Snapshots in the configured database (SQLite reads on the read pool, writes on the writer).
#[derive(Debug, Clone)]
pub struct SqlSnapshotStore {
    db: Database,
}

impl SqlSnapshotStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl SnapshotStore for SqlSnapshotStore {
    async fn load(&self, stream: &StreamId) -> Result<Option<Snapshot>, EventStoreError> {
        let row: Option<Row> = match &self.db {
            Database::Postgres(pool) => {
                sqlx::query_as(LOAD)
                    .bind(stream.as_str())
                    .fetch_optional(pool)
                    .await
            }
            Database::Sqlite(db) => {
                sqlx::query_as(LOAD)
                    .bind(stream.as_str())
                    .fetch_optional(&db.reader)
                    .await
            }
        }
        .map_err(EventStoreError::backend)?;
        Ok(decode(stream, row))
    }

    async fn save(&self, snapshot: &Snapshot) -> Result<(), EventStoreError> {
        let now = chrono::Utc::now();
        let (stream, version, schema) = (
            snapshot.stream.as_str(),
            sql_version(snapshot.version),
            sql_schema(snapshot),
        );
        let state = Json(&snapshot.state);
        match &self.db {
            Database::Postgres(pool) => sqlx::query(SAVE)
                .bind(stream)
                .bind(version)
                .bind(schema)
                .bind(state)
                .bind(now)
                .execute(pool)
                .await
                .map(drop),
            Database::Sqlite(db) => sqlx::query(SAVE)
                .bind(stream)
                .bind(version)
                .bind(schema)
                .bind(state)
                .bind(now)
                .execute(&db.writer)
                .await
                .map(drop),
        }
        .map_err(EventStoreError::backend)
    }
}
