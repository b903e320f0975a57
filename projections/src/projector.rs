//! The projector contract.

use crate::ReadTx;
use async_trait::async_trait;
use domain::aggregate::{Aggregate, decode_event};
use domain::event::{Reads, RecordedEvent};
use domain::reactor::{ReactionError, Reactor};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read-model database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event at position {position} could not be projected: {reason}")]
    Event { position: u64, reason: String },
    #[error(transparent)]
    Reaction(#[from] ReactionError),
    #[error("{0} is a reactor: its effects happened once and are not rebuilt")]
    NotRebuildable(&'static str),
}

/// An event of aggregate `A` as the read model needs it, upcast to the current schema; an
/// event that does not decode fails the batch at its position.
pub fn decode<A: Aggregate>(event: &RecordedEvent) -> Result<A::Event, ProjectionError> {
    decode_event::<A>(
        &event.event_type,
        event.schema_version,
        event.payload.clone(),
    )
    .map_err(|e| ProjectionError::Event {
        position: event.position.0,
        reason: e.to_string(),
    })
}

/// Builds one read model from the global log.
#[async_trait]
pub trait Projector: Send + Sync + std::fmt::Debug + 'static {
    /// Stable name: the checkpoint's key and the read model's view name.
    fn name(&self) -> &'static str;
    /// Bumped when the tables or the way events map onto them change; a new version is built
    /// beside the old one from position 0 and swapped in when caught up.
    fn version(&self) -> u32;
    /// The streams it reads, by their aggregates' categories (other events only move the
    /// checkpoint).
    fn reads(&self) -> Reads;
    /// Whether applying `event` changes what live readers of this read model see for the
    /// event's tenant (what a committed batch announces to GraphQL subscriptions). Every
    /// event read, unless a projector reads some only for housekeeping.
    fn announces(&self, _event: &RecordedEvent) -> bool {
        true
    }
    /// The stable names of its tables; each is a view over `<table><suffix>` of the live
    /// generation.
    fn tables(&self) -> &'static [&'static str];
    /// Creates the tables of one generation, named with `suffix` (for example `_g3`), and
    /// nothing else: the runner points each view in `tables()` at `<table><suffix>`.
    async fn create_tables(&self, tx: &mut ReadTx<'_>, suffix: &str)
    -> Result<(), ProjectionError>;
    /// Applies a batch of events (in position order, all handled) to the tables of the
    /// generation named with `suffix`, inside `tx`, which also moves the checkpoint.
    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError>;

    /// The reactor behind this entry, when it is one (see [`reacting`]): the runner lets it
    /// react before moving the checkpoint, outside the checkpoint's transaction.
    fn reactor(&self) -> Option<&dyn Reactor> {
        None
    }
}

/// A reactor run by the projection runner: same lease, checkpoint, batching, failure isolation
/// and status as a projector, no tables, never rebuilt.
pub fn reacting(reactor: Arc<dyn Reactor>) -> Arc<dyn Projector> {
    Arc::new(Reacting(reactor))
}

#[derive(Debug)]
struct Reacting(Arc<dyn Reactor>);

#[async_trait]
impl Projector for Reacting {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn version(&self) -> u32 {
        1
    }
    fn reads(&self) -> Reads {
        self.0.reads()
    }
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }
    async fn create_tables(&self, _: &mut ReadTx<'_>, _: &str) -> Result<(), ProjectionError> {
        Ok(())
    }
    async fn apply(
        &self,
        _: &mut ReadTx<'_>,
        _: &str,
        _: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        Ok(())
    }
    fn reactor(&self) -> Option<&dyn Reactor> {
        Some(self.0.as_ref())
    }
}
