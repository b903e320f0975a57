//! Snapshot stores on SQLite and PostgreSQL: one row per stream, replaced only by a newer one.

use crate::database::SqliteDatabase;
use async_trait::async_trait;
use domain::event::{StreamId, StreamVersion};
use domain::event_store::EventStoreError;
use domain::snapshot::{Snapshot, SnapshotStore};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgPool, SqlitePool};

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

#[derive(Debug, Clone)]
pub struct PgSnapshotStore {
    pool: PgPool,
}

impl PgSnapshotStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SnapshotStore for PgSnapshotStore {
    async fn load(&self, stream: &StreamId) -> Result<Option<Snapshot>, EventStoreError> {
        let row: Option<Row> = sqlx::query_as(LOAD)
            .bind(stream.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(EventStoreError::backend)?;
        Ok(decode(stream, row))
    }

    async fn save(&self, snapshot: &Snapshot) -> Result<(), EventStoreError> {
        sqlx::query(SAVE)
            .bind(snapshot.stream.as_str())
            .bind(sql_version(snapshot.version))
            .bind(sql_schema(snapshot))
            .bind(Json(&snapshot.state))
            .bind(chrono::Utc::now())
            .execute(&self.pool)
            .await
            .map_err(EventStoreError::backend)?;
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct SqliteSnapshotStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteSnapshotStore {
    pub fn new(db: SqliteDatabase) -> Self {
        Self {
            writer: db.writer,
            reader: db.reader,
        }
    }
}

#[async_trait]
impl SnapshotStore for SqliteSnapshotStore {
    async fn load(&self, stream: &StreamId) -> Result<Option<Snapshot>, EventStoreError> {
        let row: Option<Row> = sqlx::query_as(LOAD)
            .bind(stream.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(EventStoreError::backend)?;
        Ok(decode(stream, row))
    }

    async fn save(&self, snapshot: &Snapshot) -> Result<(), EventStoreError> {
        sqlx::query(SAVE)
            .bind(snapshot.stream.as_str())
            .bind(sql_version(snapshot.version))
            .bind(sql_schema(snapshot))
            .bind(Json(&snapshot.state))
            .bind(chrono::Utc::now())
            .execute(&self.writer)
            .await
            .map_err(EventStoreError::backend)?;
        Ok(())
    }
}
