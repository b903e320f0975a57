//! The event envelope: what an append takes ([`NewEvent`]) and what a read returns
//! ([`RecordedEvent`]), plus stream names, versions and global positions.

use crate::ids::{ApiKeyId, CommandId, CorrelationId, EventId, TenantId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Longest accepted stream name, in bytes.
pub const MAX_STREAM_ID_LEN: usize = 200;
/// Longest accepted event type, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 128;
/// Largest accepted payload, serialized, in bytes. Events are facts, not blobs.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Largest accepted metadata, serialized, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Highest schema version (stored as a 32-bit signed integer).
pub const MAX_SCHEMA_VERSION: u32 = i32::MAX as u32;

/// Why an event or stream name was refused. Nothing is written when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    #[error("stream id must not be empty")]
    EmptyStreamId,
    #[error("stream id is longer than {MAX_STREAM_ID_LEN} bytes")]
    StreamIdTooLong,
    #[error("stream id {0:?} contains whitespace or control characters")]
    StreamIdCharacters(String),
    #[error("event type must not be empty")]
    EmptyEventType,
    #[error("event type {0:?} is longer than {MAX_EVENT_TYPE_LEN} bytes")]
    EventTypeTooLong(String),
    #[error("event type {0:?} may contain only letters, digits and . _ - :")]
    EventTypeCharacters(String),
    #[error("schema version must be between 1 and {MAX_SCHEMA_VERSION}")]
    SchemaVersionOutOfRange,
    #[error("payload is not valid JSON: {0}")]
    PayloadNotJson(String),
    #[error("payload must be a JSON object, got {0}")]
    PayloadNotObject(&'static str),
    #[error("payload is {0} bytes, more than the {MAX_PAYLOAD_BYTES} allowed")]
    PayloadTooLarge(usize),
    #[error("metadata is {0} bytes, more than the {MAX_METADATA_BYTES} allowed")]
    MetadataTooLarge(usize),
    #[error("{0} contains a NUL character (\\u0000), which cannot be stored")]
    NulCharacter(&'static str),
}

/// The name of one stream: one aggregate instance, such as `tenant-<uuid>`.
///
/// Deserializing does not run [`StreamId::parse`]: stream names come back in stored command
/// results, and one stored under an older rule must stay readable. Appends check names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// Parses a stream name: non-empty, at most [`MAX_STREAM_ID_LEN`] bytes, no whitespace.
    pub fn parse(name: impl Into<String>) -> Result<Self, InvalidEvent> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidEvent::EmptyStreamId);
        }
        if name.len() > MAX_STREAM_ID_LEN {
            return Err(InvalidEvent::StreamIdTooLong);
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEvent::StreamIdCharacters(name));
        }
        Ok(Self(name))
    }

    /// A stream id as a store holds it: written once through [`Self::parse`] or
    /// [`Self::for_aggregate`], trusted when read back (so tightening the rules later never
    /// makes stored events unreadable).
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    /// The one constructor for aggregate streams: `<category>-<uuid>`.
    pub fn for_aggregate(category: &'static str, id: uuid::Uuid) -> Self {
        Self(format!("{category}-{id}"))
    }

    /// The aggregate id of a `<category>-<uuid>` stream of `category` (the inverse of
    /// [`Self::for_aggregate`]); `None` for any other stream.
    pub fn aggregate_id(&self, category: &str) -> Option<uuid::Uuid> {
        self.0
            .strip_prefix(category)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
    }

    /// The part before the first `-` (`tenant` for `tenant-<uuid>`).
    pub fn category(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = InvalidEvent;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<StreamId> for String {
    fn from(value: StreamId) -> Self {
        value.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version of a stream: the number of events in it. An absent stream is at version 0,
/// its first event has version 1.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StreamVersion(pub u64);

impl StreamVersion {
    pub const NONE: Self = Self(0);

    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            f.write_str("0 (no stream)")
        } else {
            self.0.fmt(f)
        }
    }
}

/// A place in the global log. Positions are dense: the n-th committed event has position n,
/// so `Position(0)` means "before the first event" and the head position is the event count.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    pub const START: Self = Self(0);
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who caused a change. Recorded on every event for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The platform itself (a reactor, a scheduler, a migration), named.
    System {
        name: String,
    },
    User {
        id: UserId,
    },
    ApiKey {
        id: ApiKeyId,
    },
    /// An inbound webhook, named by its source (for example `stripe`).
    Webhook {
        source: String,
    },
    /// An unauthenticated request (sign-up, log-in attempts).
    Anonymous,
}

impl Actor {
    pub fn system(name: impl Into<String>) -> Self {
        Self::System { name: name.into() }
    }
}

/// Envelope metadata: why and on whose behalf an event was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<CommandId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<CorrelationId>,
    /// The event that caused the command that wrote this one (set by reactors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<EventId>,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// A digest of the arguments of the request that carried an idempotency key: the same key
    /// with other arguments is refused rather than answered with the first result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_fingerprint: Option<String>,
}

impl EventMetadata {
    fn contains_nul(&self) -> bool {
        let actor = match &self.actor {
            Actor::System { name } => Some(name),
            Actor::Webhook { source } => Some(source),
            Actor::User { .. } | Actor::ApiKey { .. } | Actor::Anonymous => None,
        };
        actor.is_some_and(|s| s.contains('\0'))
            || self.source_ip.as_ref().is_some_and(|s| s.contains('\0'))
    }

    pub fn by(actor: Actor) -> Self {
        Self {
            command_id: None,
            correlation_id: None,
            causation_id: None,
            actor,
            source_ip: None,
            request_fingerprint: None,
        }
    }
}

/// The name of an event type, such as `TenantProvisioned`.
///
/// Like [`StreamId`], deserializing trusts the stored text; [`EventType::parse`] checks input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventType(String);

impl EventType {
    pub fn parse(name: impl Into<String>) -> Result<Self, InvalidEvent> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidEvent::EmptyEventType);
        }
        if name.len() > MAX_EVENT_TYPE_LEN {
            return Err(InvalidEvent::EventTypeTooLong(name));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
        {
            return Err(InvalidEvent::EventTypeCharacters(name));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventType {
    type Error = InvalidEvent;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<EventType> for String {
    fn from(value: EventType) -> Self {
        value.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event about to be appended. Its fields are checked by [`NewEvent::validate`], which
/// every store runs on a whole request before writing anything.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: EventId,
    pub event_type: String,
    pub schema_version: u32,
    pub tenant_id: Option<TenantId>,
    pub payload: Value,
    pub metadata: EventMetadata,
}

impl NewEvent {
    /// An event with schema version 1, no tenant and a fresh UUIDv7 id.
    pub fn new(event_type: impl Into<String>, payload: Value, metadata: EventMetadata) -> Self {
        Self {
            event_id: EventId::new_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            tenant_id: None,
            payload,
            metadata,
        }
    }

    /// Like [`NewEvent::new`], from JSON text (for example a replayed export).
    pub fn from_json(
        event_type: impl Into<String>,
        payload: &str,
        metadata: EventMetadata,
    ) -> Result<Self, InvalidEvent> {
        let payload = serde_json::from_str(payload)
            .map_err(|e| InvalidEvent::PayloadNotJson(e.to_string()))?;
        let event = Self::new(event_type, payload, metadata);
        event.validate()?;
        Ok(event)
    }

    #[must_use]
    pub fn for_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    #[must_use]
    pub fn with_schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// Checks type, schema version, payload shape and size, and metadata size. Returns the
    /// serialized size of payload and metadata, in bytes.
    pub fn validate(&self) -> Result<usize, InvalidEvent> {
        EventType::parse(self.event_type.as_str())?;
        if self.schema_version == 0 || self.schema_version > MAX_SCHEMA_VERSION {
            return Err(InvalidEvent::SchemaVersionOutOfRange);
        }
        let kind = match &self.payload {
            Value::Object(_) => None,
            Value::Null => Some("null"),
            Value::Bool(_) => Some("a boolean"),
            Value::Number(_) => Some("a number"),
            Value::String(_) => Some("a string"),
            Value::Array(_) => Some("an array"),
        };
        if let Some(kind) = kind {
            return Err(InvalidEvent::PayloadNotObject(kind));
        }
        let payload_bytes = serialized_len(&self.payload);
        if payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(InvalidEvent::PayloadTooLarge(payload_bytes));
        }
        // PostgreSQL refuses NUL in JSONB text; refuse it everywhere so backends agree.
        if contains_nul(&self.payload) {
            return Err(InvalidEvent::NulCharacter("payload"));
        }
        let metadata_bytes = serialized_len(&self.metadata);
        if metadata_bytes > MAX_METADATA_BYTES {
            return Err(InvalidEvent::MetadataTooLarge(metadata_bytes));
        }
        if self.metadata.contains_nul() {
            return Err(InvalidEvent::NulCharacter("metadata"));
        }
        Ok(payload_bytes + metadata_bytes)
    }
}

/// The length of `value` serialized as JSON, without building the string.
fn serialized_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// An event as stored: the full envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: EventId,
    pub stream: StreamId,
    pub version: StreamVersion,
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    pub tenant_id: Option<TenantId>,
    pub payload: Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

/// The part of the log a projector or reactor reads: the events of every stream in the named
/// categories. Each category is given by its aggregate's `CATEGORY` constant
/// (`Reads::categories(&[Tenant::CATEGORY])`), so the stream names are written in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads(Option<&'static [&'static str]>);

impl Reads {
    pub const fn categories(categories: &'static [&'static str]) -> Self {
        Self(Some(categories))
    }

    /// Every event of every stream (the audit trail).
    pub const fn everything() -> Self {
        Self(None)
    }

    pub fn includes(&self, event: &RecordedEvent) -> bool {
        self.0
            .is_none_or(|categories| categories.contains(&event.stream.category()))
    }

    /// The category names; `None` for [`Self::everything`].
    pub fn names(&self) -> Option<&'static [&'static str]> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta() -> EventMetadata {
        EventMetadata::by(Actor::system("test"))
    }

    #[test]
    fn payload_that_is_not_json_is_refused() {
        let err =
            NewEvent::from_json("TenantProvisioned", "{not json", meta()).expect_err("not JSON");
        assert!(matches!(err, InvalidEvent::PayloadNotJson(_)), "{err:?}");
    }

    #[test]
    fn empty_or_odd_event_types_are_refused() {
        let event = NewEvent::new("", json!({}), meta());
        assert_eq!(event.validate(), Err(InvalidEvent::EmptyEventType));
        let event = NewEvent::new("X", json!({}), meta()).with_schema_version(u32::MAX);
        assert_eq!(event.validate(), Err(InvalidEvent::SchemaVersionOutOfRange));
        let event = NewEvent::new("Tenant Provisioned", json!({}), meta());
        assert!(matches!(
            event.validate(),
            Err(InvalidEvent::EventTypeCharacters(_))
        ));
    }

    #[test]
    fn payload_must_be_an_object_of_bounded_size() {
        let event = NewEvent::new("X", json!([1, 2]), meta());
        assert_eq!(
            event.validate(),
            Err(InvalidEvent::PayloadNotObject("an array"))
        );
        let big = "x".repeat(MAX_PAYLOAD_BYTES);
        let event = NewEvent::new("X", json!({ "blob": big }), meta());
        assert!(matches!(
            event.validate(),
            Err(InvalidEvent::PayloadTooLarge(_))
        ));
    }

    #[test]
    fn nul_characters_are_refused_in_payload_and_metadata() {
        let event = NewEvent::new("X", json!({ "name": "a\u{0}b" }), meta());
        assert_eq!(event.validate(), Err(InvalidEvent::NulCharacter("payload")));
        let mut m = meta();
        m.source_ip = Some("\u{0}".into());
        let event = NewEvent::new("X", json!({ "name": "a\\u0000 is fine as text" }), m);
        assert_eq!(
            event.validate(),
            Err(InvalidEvent::NulCharacter("metadata"))
        );
    }

    #[test]
    fn stream_ids_are_checked_and_aggregate_streams_have_a_category() {
        assert_eq!(StreamId::parse(""), Err(InvalidEvent::EmptyStreamId));
        assert!(StreamId::parse("a b").is_err());
        let id = uuid::Uuid::nil();
        let stream = StreamId::for_aggregate("tenant", id);
        assert_eq!(stream.as_str(), format!("tenant-{id}"));
        assert_eq!(stream.category(), "tenant");
        assert_eq!(stream.aggregate_id("tenant"), Some(id));
        assert_eq!(
            stream.aggregate_id("ten"),
            None,
            "a category is matched whole"
        );
        assert_eq!(
            StreamId::for_aggregate("access", id).aggregate_id("tenant"),
            None
        );
    }

    #[test]
    fn stored_stream_ids_and_event_types_decode_without_todays_checks() {
        let long = "s".repeat(MAX_STREAM_ID_LEN + 1);
        assert!(StreamId::parse(long.clone()).is_err());
        let stream: StreamId = serde_json::from_value(json!(long)).expect("stored stream id");
        assert_eq!(stream.as_str(), long);
        // A stored append result (a command's outcome) naming such a stream stays readable.
        let written: crate::event_store::StreamWritten =
            serde_json::from_value(json!({ "stream": "old stream", "version": 3 }))
                .expect("stored append result");
        assert_eq!(written.stream.as_str(), "old stream");

        assert!(EventType::parse("Old Type").is_err());
        let event_type: EventType =
            serde_json::from_value(json!("Old Type")).expect("stored event type");
        assert_eq!(event_type.as_str(), "Old Type");
        assert_eq!(
            serde_json::to_value(&event_type).ok(),
            Some(json!("Old Type"))
        );
    }

    #[test]
    fn metadata_round_trips_through_json() {
        let mut m = EventMetadata::by(Actor::User {
            id: UserId::new_v7(),
        });
        m.command_id = Some(CommandId::new_v7());
        m.source_ip = Some("192.0.2.1".into());
        let text = serde_json::to_string(&m).expect("serialize");
        let back: EventMetadata = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, m);
    }
}
