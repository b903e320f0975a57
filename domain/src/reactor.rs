//! The reactor port: something that follows the log and acts on it (issues commands, sends
//! mail, calls an outside system), checkpointed by the projection runner like a projector.
//!
//! The runner hands a reactor each batch of the events it [`Reactor::reads`], in order, and
//! moves its checkpoint only after [`Reactor::react`] returned. A crash in between hands the
//! same events over again, so a reaction must be idempotent: commands it issues take ids
//! derived from the causing event (`CommandContext::caused_by`), side effects are keyed by the
//! event id.

use crate::event::{Reads, RecordedEvent};
use async_trait::async_trait;

/// Why a reaction failed; the runner records it with the event's position and retries with
/// backoff, leaving every other projector and reactor running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reaction to the event at position {position} failed: {reason}")]
pub struct ReactionError {
    pub position: u64,
    pub reason: String,
}

impl ReactionError {
    /// A failure to react to `event`.
    pub fn at(event: &RecordedEvent, reason: impl std::fmt::Display) -> Self {
        Self {
            position: event.position.0,
            reason: reason.to_string(),
        }
    }
}

/// `event` as an event of aggregate `A` (upcast to the current schema), or `None` when it
/// belongs to another category; a payload that does not decode fails the reaction.
pub fn decoded<A: crate::aggregate::Aggregate>(
    event: &RecordedEvent,
) -> Result<Option<A::Event>, ReactionError> {
    if event.stream.category() != A::CATEGORY {
        return Ok(None);
    }
    crate::aggregate::decode_event::<A>(
        &event.event_type,
        event.schema_version,
        event.payload.clone(),
    )
    .map(Some)
    .map_err(|e| ReactionError::at(event, e))
}

#[async_trait]
pub trait Reactor: Send + Sync + std::fmt::Debug + 'static {
    /// Stable name: the checkpoint's key, and part of every derived command id.
    fn name(&self) -> &'static str;
    /// Which streams it follows.
    fn reads(&self) -> Reads;
    /// Acts on a batch (in position order, all of them in [`Self::reads`]). Called again with
    /// the same events after a crash before the checkpoint moved.
    async fn react(&self, events: &[RecordedEvent]) -> Result<(), ReactionError>;
}
