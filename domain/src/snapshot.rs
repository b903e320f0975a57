//! The snapshot port: the serialized state of an aggregate at a stream version, so that
//! loading a long stream reads only its tail. Snapshots are a cache: losing one costs time,
//! never correctness.

use crate::event::{StreamId, StreamVersion};
use crate::event_store::EventStoreError;
use async_trait::async_trait;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub stream: StreamId,
    pub version: StreamVersion,
    /// The aggregate's `SNAPSHOT_VERSION` when it was taken; others are ignored on load.
    pub schema_version: u32,
    pub state: Value,
}

#[async_trait]
pub trait SnapshotStore: Send + Sync + std::fmt::Debug + 'static {
    /// The latest snapshot of `stream`, if any.
    async fn load(&self, stream: &StreamId) -> Result<Option<Snapshot>, EventStoreError>;
    /// Keeps `snapshot` unless a newer one is already stored.
    async fn save(&self, snapshot: &Snapshot) -> Result<(), EventStoreError>;
}
