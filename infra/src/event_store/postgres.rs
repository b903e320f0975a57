//! The PostgreSQL event store (production).
//!
//! Appends call the `tenantry_append_typed` function (see the migrations), one call per
//! group-commit batch, in a single round trip. The function serialises appends with a transaction-scoped
//! advisory lock, which makes positions dense and commit-ordered across every process that
//! shares the database. Subscribers are woken in-process by the writer and across processes
//! by `NOTIFY tenantry_events`.

use super::group_commit::{BatchWriter, GroupCommit, Outcome};
use super::row::{EVENT_COLUMNS, EventRow, columns_where, decode_all, sql_limit, sql_u64};
use super::{SUBSCRIPTION_BATCH, tail};
use async_trait::async_trait;
use domain::event::{Position, Reads, RecordedEvent, StreamId, StreamVersion};
use domain::event_store::{
    AppendRequest, AppendResult, EventStore, EventStoreError, EventStream, ExpectedVersion,
    ReadDirection, StreamRead, StreamWritten,
};
use domain::ids::CommandId;
use serde::Deserialize;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, Row};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use uuid::Uuid;

const NOTIFY_CHANNEL: &str = "tenantry_events";

#[derive(Debug, Clone)]
pub struct PgEventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    commits: GroupCommit,
    head: Arc<watch::Sender<Position>>,
    listener: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgEventStore {
    /// Starts the writer task and the NOTIFY listener on a migrated database.
    pub async fn start(pool: PgPool) -> Result<Self, EventStoreError> {
        let head = Arc::new(watch::Sender::new(read_head(&pool).await?));
        // The listener and the writer each hold a connection for as long as the store runs:
        // give them their own, so the shared pool keeps all of its connections for reads.
        let options = (*pool.connect_options()).clone();
        let dedicated = || {
            PgPoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .connect_lazy_with(options.clone())
        };
        let mut listener = PgListener::connect_with(&dedicated())
            .await
            .map_err(EventStoreError::backend)?;
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .map_err(EventStoreError::backend)?;
        let listener = tokio::spawn(listen(listener, head.clone())).abort_handle();
        let commits = GroupCommit::start(
            PgBatchWriter {
                pool: dedicated(),
                conn: None,
            },
            head.clone(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                commits,
                head,
                listener,
            }),
        })
    }

    /// Appends `requests` on `conn` without committing: inside the caller's transaction if
    /// one is open (the advisory lock then holds until that transaction ends, and the
    /// transaction must be READ COMMITTED), or as one auto-committed statement otherwise.
    /// Returns one outcome per request. Two requests with the same command id may not share a
    /// call.
    pub async fn append_on(
        conn: &mut PgConnection,
        requests: &[AppendRequest],
    ) -> Result<Vec<Outcome>, EventStoreError> {
        let mut commands = std::collections::HashSet::new();
        for request in requests {
            request.validate()?;
            if let Some(command) = request.command_id
                && !commands.insert(command)
            {
                return Err(EventStoreError::InvalidAppend(format!(
                    "command {command} appears twice in one batch"
                )));
            }
        }
        Self::append_validated(conn, requests).await
    }

    /// [`Self::append_on`] for requests that group commit has already validated (and never
    /// batches with a repeated command id), so the hot path checks each request once.
    async fn append_validated(
        conn: &mut PgConnection,
        requests: &[AppendRequest],
    ) -> Result<Vec<Outcome>, EventStoreError> {
        let args = AppendArgs::from_requests(requests);
        let rows = sqlx::query(
            "SELECT request, kind, first_position, last_position, versions, prior, \
             conflict_stream, actual FROM tenantry_append_typed($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(args.r_command)
        .bind(args.r_x_end)
        .bind(args.r_e_end)
        .bind(args.x_stream)
        .bind(args.x_kind)
        .bind(args.x_version)
        .bind(args.x_count)
        .bind(args.x_prev)
        .bind(args.e_r)
        .bind(args.e_x)
        .bind(args.e_ord)
        .bind(args.e_id)
        .bind(args.e_type)
        .bind(args.e_schema)
        .bind(args.e_tenant)
        .bind(args.e_payload)
        .bind(args.e_metadata)
        .bind(chrono::Utc::now())
        .fetch_all(&mut *conn)
        .await
        .map_err(EventStoreError::backend)?;
        let mut outcomes: Vec<Option<Outcome>> = requests.iter().map(|_| None).collect();
        for row in rows {
            let request: i32 = row.try_get("request").map_err(EventStoreError::backend)?;
            let index = usize::try_from(request - 1).unwrap_or(usize::MAX);
            let (Some(slot), Some(sent)) = (outcomes.get_mut(index), requests.get(index)) else {
                return Err(EventStoreError::Corrupt(format!(
                    "tenantry_append_typed returned an outcome for request {request} of {}",
                    requests.len()
                )));
            };
            *slot = Some(decode_outcome(&row, sent)?);
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.ok_or_else(|| {
                    EventStoreError::Corrupt("tenantry_append_typed skipped a request".into())
                })
            })
            .collect()
    }
}

/// The arrays `tenantry_append` takes (see its comment in the migration).
#[derive(Default)]
struct AppendArgs<'a> {
    r_command: Vec<Option<Uuid>>,
    r_x_end: Vec<i32>,
    r_e_end: Vec<i32>,
    x_stream: Vec<String>,
    x_kind: Vec<i16>,
    x_version: Vec<i64>,
    x_count: Vec<i64>,
    x_prev: Vec<i32>,
    e_r: Vec<i32>,
    e_x: Vec<i32>,
    e_ord: Vec<i64>,
    e_id: Vec<Uuid>,
    e_type: Vec<&'a str>,
    e_schema: Vec<i32>,
    e_tenant: Vec<Option<Uuid>>,
    /// Borrowed from the requests: encoded straight into the bind buffer, never copied.
    e_payload: Vec<Json<&'a Value>>,
    e_metadata: Vec<Json<&'a domain::event::EventMetadata>>,
}

impl<'a> AppendArgs<'a> {
    fn from_requests(requests: &'a [AppendRequest]) -> Self {
        let mut args = Self::default();
        let index = |len: usize| i32::try_from(len).unwrap_or(i32::MAX);
        // The latest expectation index (1-based) of each stream seen so far in the batch.
        let mut last_seen: HashMap<&str, i32> = HashMap::new();
        for request in requests {
            args.r_command.push(request.command_id.map(|c| c.as_uuid()));
            let r = index(args.r_command.len());
            for part in &request.streams {
                args.x_stream.push(part.stream.as_str().to_owned());
                let x = index(args.x_stream.len());
                args.x_prev
                    .push(last_seen.insert(part.stream.as_str(), x).unwrap_or(0));
                args.x_count.push(sql_u64(part.events.len() as u64));
                let (kind, version) = match part.expected {
                    ExpectedVersion::Any => (0, 0),
                    ExpectedVersion::NoStream => (1, 0),
                    ExpectedVersion::Exact(v) => (2, sql_u64(v.0)),
                    ExpectedVersion::StreamExists => (3, 0),
                };
                args.x_kind.push(kind);
                args.x_version.push(version);
                for (ord, event) in part.events.iter().enumerate() {
                    args.e_r.push(r);
                    args.e_x.push(x);
                    args.e_ord.push(sql_u64(ord as u64 + 1));
                    args.e_id.push(event.event_id.as_uuid());
                    args.e_type.push(&event.event_type);
                    args.e_schema
                        .push(i32::try_from(event.schema_version).unwrap_or(i32::MAX));
                    args.e_tenant.push(event.tenant_id.map(|t| t.as_uuid()));
                    args.e_payload.push(Json(&event.payload));
                    args.e_metadata.push(Json(&event.metadata));
                }
            }
            args.r_x_end.push(index(args.x_stream.len()));
            args.r_e_end.push(index(args.e_id.len()));
        }
        args
    }
}

/// An append result as `tenantry_append_typed` stores it for a command id.
#[derive(Deserialize)]
struct WireResult {
    first_position: u64,
    last_position: u64,
    streams: Vec<StreamId>,
    versions: Vec<u64>,
}

impl From<WireResult> for AppendResult {
    fn from(wire: WireResult) -> Self {
        Self {
            streams: wire
                .streams
                .into_iter()
                .zip(wire.versions)
                .map(|(stream, version)| StreamWritten {
                    stream,
                    version: StreamVersion(version),
                })
                .collect(),
            first_position: Position(wire.first_position),
            last_position: Position(wire.last_position),
            replayed: false,
        }
    }
}

/// One row of `tenantry_append_typed`: the request's result, its first result (a duplicate
/// command id), or its conflict. `Err` only when the row itself is unreadable.
fn decode_outcome(row: &PgRow, request: &AppendRequest) -> Result<Outcome, EventStoreError> {
    let get_i64 = |column: &str| -> Result<Option<i64>, EventStoreError> {
        row.try_get(column).map_err(EventStoreError::backend)
    };
    let position = |column: &str| -> Result<Position, EventStoreError> {
        let value = get_i64(column)?
            .ok_or_else(|| EventStoreError::Corrupt(format!("append outcome without {column}")))?;
        Ok(Position(u64::try_from(value).unwrap_or_default()))
    };
    let kind: i16 = row.try_get("kind").map_err(EventStoreError::backend)?;
    Ok(match kind {
        0 => {
            let versions: Vec<i64> = row.try_get("versions").map_err(EventStoreError::backend)?;
            if versions.len() != request.streams.len() {
                return Err(EventStoreError::Corrupt(format!(
                    "append outcome with {} versions for {} streams",
                    versions.len(),
                    request.streams.len()
                )));
            }
            Ok(AppendResult {
                streams: request
                    .streams
                    .iter()
                    .zip(versions)
                    .map(|(part, version)| StreamWritten {
                        stream: part.stream.clone(),
                        version: StreamVersion(u64::try_from(version).unwrap_or_default()),
                    })
                    .collect(),
                first_position: position("first_position")?,
                last_position: position("last_position")?,
                replayed: false,
            })
        }
        1 => {
            let Json(prior): Json<WireResult> =
                row.try_get("prior").map_err(EventStoreError::backend)?;
            Ok(AppendResult {
                replayed: true,
                ..prior.into()
            })
        }
        2 => {
            let stream: String = row
                .try_get("conflict_stream")
                .map_err(EventStoreError::backend)?;
            let actual = get_i64("actual")?.unwrap_or_default();
            let part = request
                .streams
                .iter()
                .find(|p| p.stream.as_str() == stream)
                .ok_or_else(|| {
                    EventStoreError::Corrupt(format!("conflict on unknown stream {stream}"))
                })?;
            Err(EventStoreError::VersionConflict {
                stream: part.stream.clone(),
                expected: part.expected,
                actual: StreamVersion(u64::try_from(actual).unwrap_or_default()),
            })
        }
        other => {
            return Err(EventStoreError::Corrupt(format!(
                "append outcome of unknown kind {other}"
            )));
        }
    })
}

/// Writes every batch on one dedicated connection (from its own pool of one), held between
/// batches. A connection that failed is closed rather than reused.
struct PgBatchWriter {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

#[async_trait]
impl BatchWriter for PgBatchWriter {
    async fn write_batch(
        &mut self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Outcome>, EventStoreError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self
                .pool
                .acquire()
                .await
                .map_err(EventStoreError::backend)?,
        };
        let outcomes = PgEventStore::append_validated(&mut conn, batch).await;
        if outcomes.is_err() {
            conn.close_on_drop();
        } else {
            self.conn = Some(conn);
        }
        outcomes
    }
}

async fn read_head(pool: &PgPool) -> Result<Position, EventStoreError> {
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
        .fetch_one(pool)
        .await
        .map_err(EventStoreError::backend)?;
    Ok(Position(u64::try_from(head).unwrap_or_default()))
}

/// Raises `head` on every NOTIFY. After a lost connection it nudges subscribers to re-read,
/// since notifications sent meanwhile are gone.
async fn listen(mut listener: PgListener, head: Arc<watch::Sender<Position>>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                if let Ok(position) = notification.payload().parse::<u64>() {
                    head.send_if_modified(|h| {
                        let raised = Position(position) > *h;
                        if raised {
                            *h = Position(position);
                        }
                        raised
                    });
                }
            }
            Ok(None) => {
                tracing::warn!("event notification connection lost; reconnecting");
                head.send_modify(|_| {});
            }
            Err(error) => {
                tracing::warn!(error = %error, "event notification listener failed; retrying");
                head.send_modify(|_| {});
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[async_trait]
impl EventStore for PgEventStore {
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
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 \
                 ORDER BY version LIMIT $3"
            ),
            ReadDirection::Backwards => format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version <= $2 \
                 ORDER BY version DESC LIMIT $3"
            ),
        };
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(stream.as_str())
            .bind(sql_u64(read.from.0))
            .bind(sql_limit(read.limit))
            .fetch_all(&self.inner.pool)
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
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        );
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(sql_u64(after.0))
            .bind(sql_limit(limit))
            .fetch_all(&self.inner.pool)
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
        // `StreamId::category`: the stream id up to its first '-'.
        let sql = format!(
            "SELECT {} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            columns_where("split_part(stream_id, '-', 1) = ANY($3)")
        );
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(sql_u64(after.0))
            .bind(sql_limit(limit))
            .bind(names)
            .fetch_all(&self.inner.pool)
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
            "SELECT position, stream_id FROM events WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .bind(sql_u64(after.0))
        .bind(sql_limit(limit))
        .fetch_all(&self.inner.pool)
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
        read_head(&self.inner.pool).await
    }

    async fn find_command(
        &self,
        command: CommandId,
    ) -> Result<Option<AppendResult>, EventStoreError> {
        let stored: Option<Json<WireResult>> =
            sqlx::query_scalar("SELECT result FROM event_commands WHERE command_id = $1")
                .bind(command.as_uuid())
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(EventStoreError::backend)?;
        Ok(stored.map(|Json(result)| AppendResult {
            replayed: true,
            ..result.into()
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
