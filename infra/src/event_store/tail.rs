//! Subscriptions: read the global log in batches until caught up, then wait for a wake-up
//! (a commit in this process, a NOTIFY from another, or a fallback timer) and read again.
//!
//! Positions are dense, so the tail only ever accepts the next position: if a read returned
//! a hole (which the stores' ordering rules out), the tail would wait for it to fill instead
//! of skipping past it.

use domain::event::{Position, Reads, RecordedEvent};
use domain::event_store::{EventStore, EventStream};
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::watch;

/// Re-read even without a wake-up this often, in case a notification was lost.
const FALLBACK_POLL: Duration = Duration::from_millis(500);
/// Pause after a failed read before trying again.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(250);

struct Tail<S> {
    store: S,
    wake: watch::Receiver<Position>,
    after: Position,
    buffer: VecDeque<RecordedEvent>,
    batch: usize,
    /// Only these categories' payloads (`EventStore::read_all_of`); `None`: everything.
    reads: Option<Reads>,
}

/// Catch-up then live, from `after` (exclusive).
pub(crate) fn subscribe<S: EventStore + Clone>(
    store: S,
    wake: watch::Receiver<Position>,
    after: Position,
    batch: usize,
    reads: Option<Reads>,
) -> EventStream {
    let tail = Tail {
        store,
        wake,
        after,
        buffer: VecDeque::new(),
        batch,
        reads,
    };
    futures_util::stream::unfold(tail, |mut tail| async move {
        loop {
            if let Some(event) = tail.buffer.pop_front() {
                tail.after = event.position;
                return Some((Ok(event), tail));
            }
            // Mark the current head as seen *before* reading, so a commit that lands during
            // the read still wakes us afterwards.
            tail.wake.borrow_and_update();
            let read = match tail.reads {
                Some(reads) => tail.store.read_all_of(tail.after, tail.batch, reads).await,
                None => tail.store.read_all(tail.after, tail.batch).await,
            };
            match read {
                Ok(events) => {
                    for (expected, event) in (tail.after.0 + 1..).zip(events) {
                        if event.position.0 != expected {
                            tracing::warn!(
                                position = expected,
                                found = event.position.0,
                                "hole in the global log; waiting for it to fill"
                            );
                            break;
                        }
                        tail.buffer.push_back(event);
                    }
                    if tail.buffer.is_empty() {
                        wait_for_wake(&mut tail.wake).await;
                    }
                }
                Err(error) => {
                    tokio::time::sleep(RETRY_AFTER_ERROR).await;
                    return Some((Err(error), tail));
                }
            }
        }
    })
    .boxed()
}

async fn wait_for_wake(wake: &mut watch::Receiver<Position>) {
    match tokio::time::timeout(FALLBACK_POLL, wake.changed()).await {
        Ok(Ok(())) | Err(_) => {}
        // The store is gone: keep polling slowly rather than spinning.
        Ok(Err(_)) => tokio::time::sleep(FALLBACK_POLL).await,
    }
}
