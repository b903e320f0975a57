//! The projector contract.

use crate::ReadTx;
use async_trait::async_trait;
use domain::event::RecordedEvent;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read-model database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event at position {position} could not be projected: {reason}")]
    Event { position: u64, reason: String },
}

/// Builds one read model from the global log.
#[async_trait]
pub trait Projector: Send + Sync + std::fmt::Debug + 'static {
    /// Stable name: the checkpoint's key and the read model's view name.
    fn name(&self) -> &'static str;
    /// Bumped when the tables or the way events map onto them change; a new version is built
    /// beside the old one from position 0 and swapped in when caught up.
    fn version(&self) -> u32;
    /// Whether events of this type concern it (others only move the checkpoint).
    fn handles(&self, event_type: &str) -> bool;
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
}
