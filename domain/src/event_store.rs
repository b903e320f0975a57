//! The event-store port: append with expectations (optionally across several streams at
//! once), idempotency by command id, stream and global-log reads, and a catch-up-then-live
//! subscription.
//!
//! The trait uses `async-trait` (boxed futures) so the wiring can hold an
//! `Arc<dyn EventStore>` whichever backend was configured.

use crate::event::{InvalidEvent, NewEvent, Position, RecordedEvent, StreamId, StreamVersion};
use crate::ids::CommandId;
use async_trait::async_trait;
use futures_core::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// Most events one append request may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;
/// Most bytes (serialized payloads and metadata) one append request may carry.
pub const MAX_BYTES_PER_APPEND: usize = 32 * 1024 * 1024;

/// What the caller believes about a stream's version before appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version (0 means "no stream").
    Exact(StreamVersion),
    /// The stream must have at least one event.
    StreamExists,
}

impl ExpectedVersion {
    /// Whether a stream currently at `actual` satisfies this expectation.
    pub fn is_met_by(self, actual: StreamVersion) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == StreamVersion::NONE,
            Self::Exact(v) => actual == v,
            Self::StreamExists => actual != StreamVersion::NONE,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
            Self::StreamExists => f.write_str("an existing stream"),
        }
    }
}

/// The events for one stream within an append, with that stream's expectation. A stream with
/// no events is a pure check: the append succeeds only if its expectation holds.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// One atomic append: every stream's expectation holds and all events are written, or
/// nothing is written.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendRequest {
    /// When set, a second append with the same id writes nothing and returns the first result.
    pub command_id: Option<CommandId>,
    pub streams: Vec<StreamAppend>,
}

impl AppendRequest {
    /// An append to a single stream.
    pub fn to_stream(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            command_id: None,
            streams: vec![StreamAppend {
                stream,
                expected,
                events,
            }],
        }
    }

    /// Adds another stream to the same atomic append.
    #[must_use]
    pub fn and_stream(
        mut self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        self.streams.push(StreamAppend {
            stream,
            expected,
            events,
        });
        self
    }

    #[must_use]
    pub fn idempotent(mut self, command_id: CommandId) -> Self {
        self.command_id = Some(command_id);
        self
    }

    pub fn event_count(&self) -> usize {
        self.streams.iter().map(|s| s.events.len()).sum()
    }

    /// Every store calls this before writing: a request that fails it writes nothing.
    /// Returns the request's size in bytes (serialized payloads and metadata).
    pub fn validate(&self) -> Result<usize, EventStoreError> {
        let invalid = |reason: String| Err(EventStoreError::InvalidAppend(reason));
        let count = self.event_count();
        if count == 0 {
            return invalid("an append must carry at least one event".into());
        }
        if count > MAX_EVENTS_PER_APPEND {
            return invalid(format!(
                "an append may carry at most {MAX_EVENTS_PER_APPEND} events, got {count}"
            ));
        }
        let mut streams = HashSet::new();
        let mut ids = HashSet::new();
        let mut bytes = 0;
        for part in &self.streams {
            if !streams.insert(&part.stream) {
                return invalid(format!(
                    "stream {} appears twice in one append",
                    part.stream
                ));
            }
            for event in &part.events {
                bytes += event.validate()?;
                if !ids.insert(event.event_id) {
                    return invalid(format!("event id {} appears twice", event.event_id));
                }
            }
        }
        if bytes > MAX_BYTES_PER_APPEND {
            return invalid(format!(
                "an append may carry at most {MAX_BYTES_PER_APPEND} bytes, got {bytes}"
            ));
        }
        Ok(bytes)
    }
}

/// A stream's version after an append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamWritten {
    pub stream: StreamId,
    pub version: StreamVersion,
}

/// What an append wrote: the new version of each stream (in request order) and the global
/// positions of its events (contiguous, `first..=last`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    pub streams: Vec<StreamWritten>,
    pub first_position: Position,
    pub last_position: Position,
    /// True when this is the stored result of an earlier append with the same command id
    /// (nothing was written this time). Not stored.
    #[serde(skip)]
    pub replayed: bool,
}

impl AppendResult {
    /// The new version of `stream`, if it was part of the append.
    pub fn version_of(&self, stream: &StreamId) -> Option<StreamVersion> {
        self.streams
            .iter()
            .find(|s| &s.stream == stream)
            .map(|s| s.version)
    }
}

/// Which way to read a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadDirection {
    Forwards,
    Backwards,
}

/// A stream read: from a version (inclusive) in a direction, at most `limit` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRead {
    pub direction: ReadDirection,
    pub from: StreamVersion,
    pub limit: usize,
}

impl StreamRead {
    /// The whole stream, oldest first.
    pub fn forwards() -> Self {
        Self {
            direction: ReadDirection::Forwards,
            from: StreamVersion(1),
            limit: usize::MAX,
        }
    }

    /// The whole stream, newest first.
    pub fn backwards() -> Self {
        Self {
            direction: ReadDirection::Backwards,
            from: StreamVersion(u64::MAX),
            limit: usize::MAX,
        }
    }

    #[must_use]
    pub fn from_version(mut self, version: StreamVersion) -> Self {
        self.from = version;
        self
    }

    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// Errors of the event-store port.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    #[error("version conflict on stream {stream}: expected {expected}, actual version {actual}")]
    VersionConflict {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: StreamVersion,
    },
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] InvalidEvent),
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    #[error("event store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data could not be decoded: {0}")]
    Corrupt(String),
}

impl EventStoreError {
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }
}

/// Events of the global log in position order, catch-up first and then live.
pub type EventStream = BoxStream<'static, Result<RecordedEvent, EventStoreError>>;

/// The event store. Implementations: SQLite (embedded), PostgreSQL (production), and later
/// KurrentDB; all pass `testing::conformance`.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug + 'static {
    /// Appends atomically. Fails with [`EventStoreError::VersionConflict`] if any stream's
    /// expectation does not hold, in which case nothing is written for any stream.
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, EventStoreError>;

    /// Reads one stream. An unknown stream reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> Result<Vec<RecordedEvent>, EventStoreError>;

    /// Reads the global log after `after` (exclusive), in position order, at most `limit`.
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, EventStoreError>;

    /// [`Self::read_all`] for a follower that reads only `reads`: every event comes (the
    /// positions stay dense, so checkpoints move past what the follower skips), but those
    /// outside `reads` without their payload and metadata (`Value::Null` and a placeholder),
    /// so that the store neither sends nor decodes what nobody reads. Stores override it; by
    /// default everything is read.
    async fn read_all_of(
        &self,
        after: Position,
        limit: usize,
        reads: crate::event::Reads,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let _ = reads;
        self.read_all(after, limit).await
    }

    /// Which stream each event after `after` went to, in position order, at most `limit`:
    /// [`Self::read_all`] without payloads, for followers that only need to know what changed
    /// (the executor's log watch). Stores override it with a lighter read.
    async fn read_all_streams(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<(Position, StreamId)>, EventStoreError> {
        Ok(self
            .read_all(after, limit)
            .await?
            .into_iter()
            .map(|event| (event.position, event.stream))
            .collect())
    }

    /// The position of the last committed event (`Position::START` when the log is empty).
    async fn head(&self) -> Result<Position, EventStoreError>;

    /// The stored result of the append that carried `command`, if there was one (marked
    /// `replayed`).
    async fn find_command(
        &self,
        command: CommandId,
    ) -> Result<Option<AppendResult>, EventStoreError>;

    /// Every event after `after`, in order, each exactly once: the stored ones first, then new
    /// ones as they commit. The stream ends only when dropped; errors are yielded and the
    /// subscription keeps trying.
    fn subscribe(&self, after: Position) -> EventStream;

    /// [`Self::subscribe`] through [`Self::read_all_of`]: every event, in order, each once, with
    /// payload and metadata only for `reads`. By default everything is read.
    fn subscribe_to(&self, after: Position, reads: crate::event::Reads) -> EventStream {
        let _ = reads;
        self.subscribe(after)
    }
}
