//! What this process knows of the log's latest changes, so that a cached aggregate state can
//! be trusted without reading its stream's tail (see [`crate::Executor::load_current`]).
//!
//! A watcher task follows the global log by position. For every event it notes the position in
//! one of [`STRIPES`] slots chosen by a hash of the event's stream id. A cached state that was
//! read when the watcher had noted everything up to position `p` is current as long as its
//! stream's slot holds no position above `p`: any later event on that stream (or, rarely, on
//! another stream hashed to the same slot, which only costs a read) raises the slot.
//!
//! That holds only for what the watcher has read. Its reads begin at most [`POLL`] apart; a
//! cached state is trusted only while the last read that reached the end of the log began less
//! than [`MAX_LAG`] ago, so an event appended by another process is taken into account within
//! `MAX_LAG` (and, when the database is slow or unreachable, every load reads the stream
//! instead). Appends made by this process's executor update the cache themselves, so they
//! count from the next request on.

use domain::event::{Position, StreamId};
use domain::event_store::EventStore;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Hash slots of last-change positions (32 KiB).
pub const STRIPES: usize = 4_096;
/// How often the watcher reads the log when it has caught up.
pub const POLL: Duration = Duration::from_millis(50);
/// How old the watcher's last complete read may be for cached states to be trusted: the
/// longest another process's change can go unseen.
pub const MAX_LAG: Duration = Duration::from_millis(500);
/// Events read per watcher read.
const BATCH: usize = 1_000;

#[derive(Debug)]
pub struct LogWatch {
    /// Every event up to this position has been noted.
    noted: AtomicU64,
    stripes: Box<[AtomicU64]>,
    /// Microseconds after `epoch` at which the last read that reached the end of the log
    /// began, plus one (0: never).
    caught_up: AtomicU64,
    epoch: Instant,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for LogWatch {
    fn default() -> Self {
        Self {
            noted: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            caught_up: AtomicU64::new(0),
            epoch: Instant::now(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl LogWatch {
    fn stripe(&self, stream: &StreamId) -> &AtomicU64 {
        let hash = self.hasher.hash_one(stream.as_str());
        let slot = usize::try_from(hash % STRIPES as u64).unwrap_or(0);
        &self.stripes[slot]
    }

    fn note(&self, stream: &StreamId, position: Position) {
        self.stripe(stream).fetch_max(position.0, Ordering::AcqRel);
    }

    /// The position up to which every event has been noted, while the watcher is live: a state
    /// read now reflects at least that much of the log. `None` when no watcher runs or its
    /// last complete read is older than [`MAX_LAG`].
    pub fn live_position(&self) -> Option<Position> {
        let caught_up = self.caught_up.load(Ordering::Acquire);
        if caught_up == 0 {
            return None;
        }
        let age = u64::try_from(self.epoch.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .saturating_sub(caught_up - 1);
        (age < u64::try_from(MAX_LAG.as_micros()).unwrap_or(u64::MAX))
            .then(|| Position(self.noted.load(Ordering::Acquire)))
    }

    /// Whether a state of `stream` that reflected the log up to `as_of` is still current.
    pub fn unchanged_since(&self, stream: &StreamId, as_of: Position) -> bool {
        self.live_position().is_some() && self.stripe(stream).load(Ordering::Acquire) <= as_of.0
    }

    fn caught_up_at(&self, began: Instant) {
        let micros = u64::try_from(began.duration_since(self.epoch).as_micros()).unwrap_or(0);
        self.caught_up.fetch_max(micros + 1, Ordering::AcqRel);
    }

    /// Follows the log from its current head for as long as the returned task runs.
    pub fn spawn(self: &Arc<Self>, store: Arc<dyn EventStore>) -> tokio::task::JoinHandle<()> {
        let watch = self.clone();
        tokio::spawn(async move {
            let mut after = loop {
                match store.head().await {
                    Ok(head) => break head,
                    Err(error) => {
                        tracing::warn!(error = %error, "log watch cannot read the head; retrying");
                        tokio::time::sleep(MAX_LAG).await;
                    }
                }
            };
            watch.noted.fetch_max(after.0, Ordering::AcqRel);
            loop {
                let began = Instant::now();
                match store.read_all_streams(after, BATCH).await {
                    Ok(events) => {
                        let short = events.len() < BATCH;
                        let mut complete = short;
                        for (position, stream) in events {
                            // Positions are dense; stop at a hole rather than skip it.
                            if position.0 != after.0 + 1 {
                                complete = false;
                                break;
                            }
                            watch.note(&stream, position);
                            after = position;
                        }
                        watch.noted.store(after.0, Ordering::Release);
                        if complete {
                            watch.caught_up_at(began);
                        }
                        if short || !complete {
                            tokio::time::sleep(POLL).await;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "log watch read failed; cached states are not trusted until it recovers");
                        tokio::time::sleep(POLL).await;
                    }
                }
            }
        })
    }
}
