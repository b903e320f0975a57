//! The stored form of an event, shared by both backends' reads.

use chrono::{DateTime, Utc};
use domain::event::{Actor, EventMetadata, Position, RecordedEvent, StreamId, StreamVersion};
use domain::event_store::EventStoreError;
use domain::ids::{EventId, TenantId};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

/// Columns selected by every event read, in [`EventRow`] order.
pub(crate) const EVENT_COLUMNS: &str = "position, event_id, stream_id, version, event_type, \
     schema_version, tenant_id, payload, metadata, recorded_at";

/// [`EVENT_COLUMNS`] with payload and metadata only where `{wanted}` (an SQL condition on
/// `stream_id`) holds: `read_all_of`.
pub(crate) fn columns_where(wanted: &str) -> String {
    format!(
        "position, event_id, stream_id, version, event_type, schema_version, tenant_id, \
         CASE WHEN {wanted} THEN payload END AS payload, \
         CASE WHEN {wanted} THEN metadata END AS metadata, recorded_at"
    )
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow {
    position: i64,
    event_id: Uuid,
    stream_id: String,
    version: i64,
    event_type: String,
    schema_version: i32,
    tenant_id: Option<Uuid>,
    /// `None`: elided (`read_all_of`).
    payload: Option<Json<Value>>,
    metadata: Option<Json<Value>>,
    recorded_at: DateTime<Utc>,
}

impl TryFrom<EventRow> for RecordedEvent {
    type Error = EventStoreError;

    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| {
            EventStoreError::Corrupt(format!("event at position {}: {what}", row.position))
        };
        Ok(Self {
            event_id: EventId::from_uuid(row.event_id),
            stream: StreamId::from_stored(row.stream_id.clone()),
            version: StreamVersion(u64::try_from(row.version).map_err(|_| corrupt("version"))?),
            position: Position(u64::try_from(row.position).map_err(|_| corrupt("position"))?),
            event_type: row.event_type.clone(),
            schema_version: u32::try_from(row.schema_version)
                .map_err(|_| corrupt("schema version"))?,
            tenant_id: row.tenant_id.map(TenantId::from_uuid),
            metadata: match row.metadata {
                Some(Json(metadata)) => serde_json::from_value(metadata)
                    .map_err(|e| corrupt(&format!("metadata: {e}")))?,
                None => EventMetadata::by(Actor::system("elided")),
            },
            payload: row.payload.map_or(Value::Null, |Json(payload)| payload),
            recorded_at: row.recorded_at,
        })
    }
}

pub(crate) fn decode_all(rows: Vec<EventRow>) -> Result<Vec<RecordedEvent>, EventStoreError> {
    rows.into_iter().map(RecordedEvent::try_from).collect()
}

/// SQL `LIMIT` from a `usize` limit (saturating: `usize::MAX` means "all").
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A version or position as the signed integer the databases store.
pub(crate) fn sql_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
