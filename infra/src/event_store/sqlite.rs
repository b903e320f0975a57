//! The SQLite event store (the embedded default): one file, WAL mode, one writer.
//!
//! SQLite admits one write transaction at a time, so the writer assigns positions as
//! `max + 1` inside its transaction and they are dense and in commit order by construction.
//! Appends still go through group commit: concurrent appends share one transaction and one
//! fsync.

use super::group_commit::{BatchWriter, GroupCommit, Outcome};
use super::row::{EVENT_COLUMNS, EventRow, columns_where, decode_all, sql_limit, sql_u64};
use super::{SUBSCRIPTION_BATCH, tail};
use crate::database::SqliteDatabase;
use async_trait::async_trait;
use domain::event::{Position, Reads, RecordedEvent, StreamId, StreamVersion};
use domain::event_store::{
    AppendRequest, AppendResult, EventStore, EventStoreError, EventStream, ReadDirection,
    StreamRead, StreamWritten,
};
use domain::ids::CommandId;
use sqlx::types::Json;
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    reader: SqlitePool,
    commits: GroupCommit,
    head: Arc<watch::Sender<Position>>,
}

impl SqliteEventStore {
    /// Starts the writer task on a migrated database.
    pub async fn start(db: SqliteDatabase) -> Result<Self, EventStoreError> {
        let head = Arc::new(watch::Sender::new(read_head(&db.reader).await?));
        let commits = GroupCommit::start(
            SqliteBatchWriter {
                pool: db.writer.clone(),
            },
            head.clone(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                reader: db.reader,
                commits,
                head,
            }),
        })
    }
}

async fn read_head(pool: &SqlitePool) -> Result<Position, EventStoreError> {
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
        .fetch_one(pool)
        .await
        .map_err(EventStoreError::backend)?;
    Ok(Position(u64::try_from(head).unwrap_or_default()))
}

struct SqliteBatchWriter {
    pool: SqlitePool,
}

#[async_trait]
impl BatchWriter for SqliteBatchWriter {
    async fn write_batch(
        &mut self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Outcome>, EventStoreError> {
        let backend = EventStoreError::backend;
        // IMMEDIATE takes the write lock up front, so another process writing the same file
        // makes this wait (busy timeout) instead of failing on the read-to-write upgrade.
        let mut tx = projections::db::begin_immediate(&self.pool)
            .await
            .map_err(backend)?;
        let mut head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let now = chrono::Utc::now();
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch {
            outcomes.push(append_one(&mut tx, request, &mut head, now).await?);
        }
        tx.commit().await.map_err(backend)?;
        Ok(outcomes)
    }
}

/// One request inside the batch transaction. `Ok(Err(conflict))` leaves nothing written.
async fn append_one(
    tx: &mut Transaction<'_, Sqlite>,
    request: &AppendRequest,
    head: &mut i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Outcome, EventStoreError> {
    let backend = EventStoreError::backend;
    if let Some(command) = request.command_id {
        let prior: Option<Json<AppendResult>> =
            sqlx::query_scalar("SELECT result FROM event_commands WHERE command_id = ?")
                .bind(command.as_uuid())
                .fetch_optional(&mut **tx)
                .await
                .map_err(backend)?;
        if let Some(Json(prior)) = prior {
            return Ok(Ok(AppendResult {
                replayed: true,
                ..prior
            }));
        }
    }

    let mut current = Vec::with_capacity(request.streams.len());
    for part in &request.streams {
        let version: i64 =
            sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = ?")
                .bind(part.stream.as_str())
                .fetch_one(&mut **tx)
                .await
                .map_err(backend)?;
        let version = StreamVersion(u64::try_from(version).unwrap_or_default());
        if !part.expected.is_met_by(version) {
            return Ok(Err(EventStoreError::VersionConflict {
                stream: part.stream.clone(),
                expected: part.expected,
                actual: version,
            }));
        }
        current.push(version);
    }

    let first = *head + 1;
    let mut streams = Vec::with_capacity(request.streams.len());
    for (part, version) in request.streams.iter().zip(current) {
        let mut version = version;
        for event in &part.events {
            *head += 1;
            version = version.next();
            sqlx::query(
                "INSERT INTO events (position, event_id, stream_id, version, event_type, \
                 schema_version, tenant_id, payload, metadata, recorded_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(*head)
            .bind(event.event_id.as_uuid())
            .bind(part.stream.as_str())
            .bind(sql_u64(version.0))
            .bind(&event.event_type)
            .bind(i64::from(event.schema_version))
            .bind(event.tenant_id.map(|t| t.as_uuid()))
            .bind(Json(&event.payload))
            .bind(Json(&event.metadata))
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
        streams.push(StreamWritten {
            stream: part.stream.clone(),
            version,
        });
    }
    let result = AppendResult {
        streams,
        first_position: Position(u64::try_from(first).unwrap_or_default()),
        last_position: Position(u64::try_from(*head).unwrap_or_default()),
        replayed: false,
    };
    if let Some(command) = request.command_id {
        sqlx::query(
            "INSERT INTO event_commands (command_id, result, recorded_at) VALUES (?, ?, ?)",
        )
        .bind(command.as_uuid())
        .bind(Json(&result))
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    Ok(Ok(result))
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, EventStoreError> {
        self.inner.commits.append(request).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let sql = match read.direction {
            ReadDirection::Forwards => format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND version >= ? \
                 ORDER BY version LIMIT ?"
            ),
            ReadDirection::Backwards => format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND version <= ? \
                 ORDER BY version DESC LIMIT ?"
            ),
        };
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(stream.as_str())
            .bind(sql_u64(read.from.0))
            .bind(sql_limit(read.limit))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(EventStoreError::backend)?;
        decode_all(rows)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        );
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(sql_u64(after.0))
            .bind(sql_limit(limit))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(EventStoreError::backend)?;
        decode_all(rows)
    }

    async fn read_all_of(
        &self,
        after: Position,
        limit: usize,
        reads: Reads,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let Some(names) = reads.names() else {
            return self.read_all(after, limit).await;
        };
        // `StreamId::category`: the stream id up to its first '-' (all of it without one).
        let category = "CASE WHEN instr(stream_id, '-') > 0 \
                        THEN substr(stream_id, 1, instr(stream_id, '-') - 1) ELSE stream_id END";
        let placeholders = vec!["?"; names.len()].join(", ");
        let wanted = if placeholders.is_empty() {
            "0".to_owned()
        } else {
            format!("{category} IN ({placeholders})")
        };
        let columns = columns_where(&wanted);
        // The condition appears twice (payload, metadata): its parameters are bound twice.
        let sql =
            format!("SELECT {columns} FROM events WHERE position > ? ORDER BY position LIMIT ?");
        let mut query = sqlx::query_as::<_, EventRow>(&sql);
        for _ in 0..2 {
            for name in names {
                query = query.bind(*name);
            }
        }
        let rows = query
            .bind(sql_u64(after.0))
            .bind(sql_limit(limit))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(EventStoreError::backend)?;
        decode_all(rows)
    }

    async fn read_all_streams(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<(Position, StreamId)>, EventStoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT position, stream_id FROM events WHERE position > ? ORDER BY position LIMIT ?",
        )
        .bind(sql_u64(after.0))
        .bind(sql_limit(limit))
        .fetch_all(&self.inner.reader)
        .await
        .map_err(EventStoreError::backend)?;
        Ok(rows
            .into_iter()
            .map(|(position, stream)| {
                (
                    Position(u64::try_from(position).unwrap_or_default()),
                    StreamId::from_stored(stream),
                )
            })
            .collect())
    }

    async fn head(&self) -> Result<Position, EventStoreError> {
        read_head(&self.inner.reader).await
    }

    async fn find_command(
        &self,
        command: CommandId,
    ) -> Result<Option<AppendResult>, EventStoreError> {
        let stored: Option<Json<AppendResult>> =
            sqlx::query_scalar("SELECT result FROM event_commands WHERE command_id = ?")
                .bind(command.as_uuid())
                .fetch_optional(&self.inner.reader)
                .await
                .map_err(EventStoreError::backend)?;
        Ok(stored.map(|Json(result)| AppendResult {
            replayed: true,
            ..result
        }))
    }

    fn subscribe(&self, after: Position) -> EventStream {
        tail::subscribe(
            self.clone(),
            self.inner.head.subscribe(),
            after,
            SUBSCRIPTION_BATCH,
            None,
        )
    }

    fn subscribe_to(&self, after: Position, reads: Reads) -> EventStream {
        tail::subscribe(
            self.clone(),
            self.inner.head.subscribe(),
            after,
            SUBSCRIPTION_BATCH,
            Some(reads),
        )
    }
}
