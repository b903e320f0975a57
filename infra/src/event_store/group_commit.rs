//! Group commit: every append in a process goes through one writer task, which drains all
//! requests waiting at that moment and writes them in one transaction. Under load many
//! appends share one commit (and one fsync); with one writer it adds a channel hop.
//!
//! Each request stays atomic on its own: a batch reports a conflict per request. If the
//! whole batch fails (for example a reused event id violates a unique index), its requests are
//! retried one by one so that only the faulty one fails.

use async_trait::async_trait;
use domain::event::Position;
use domain::event_store::{AppendRequest, AppendResult, EventStoreError};
use domain::ids::CommandId;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Most events one batch carries; a single larger request still goes alone.
const MAX_BATCH_EVENTS: usize = 5_000;
/// Most bytes (payloads and metadata) one batch carries; a single larger request goes alone.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// How many times the writer yields to let woken writers catch up with a batch.
const MAX_YIELDS: usize = 4;
/// Appends that may wait for the writer before callers are slowed down.
const QUEUE_DEPTH: usize = 4_096;

pub(crate) type Outcome = Result<AppendResult, EventStoreError>;

/// One transaction over many requests.
#[async_trait]
pub(crate) trait BatchWriter: Send + Sync + 'static {
    /// Writes `batch` in one transaction and returns one outcome per request. `Err` means
    /// the transaction failed as a whole and nothing was written.
    async fn write_batch(
        &mut self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Outcome>, EventStoreError>;
}

struct Pending {
    request: AppendRequest,
    bytes: usize,
    reply: oneshot::Sender<Outcome>,
}

/// The sending side; cloning shares the one writer task.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the writer task. After each commit it raises `head` to the new last position,
    /// which wakes this process's subscriptions.
    pub(crate) fn start(writer: impl BatchWriter, head: Arc<watch::Sender<Position>>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(writer, rx, head));
        Self { queue }
    }

    /// Validates, then appends through the writer task.
    pub(crate) async fn append(&self, request: AppendRequest) -> Outcome {
        let bytes = request.validate()?;
        let (reply, answer) = oneshot::channel();
        let stopped = || EventStoreError::Backend("the event-store writer has stopped".into());
        self.queue
            .send(Pending {
                request,
                bytes,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(
    mut writer: impl BatchWriter,
    mut queue: mpsc::Receiver<Pending>,
    head: Arc<watch::Sender<Position>>,
) {
    // A request held over to the next batch because its command id is already in this one
    // (a retry must see the first attempt's stored result).
    let mut carried: Option<Pending> = None;
    let mut last_batch = 1;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match queue.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut events = first.request.event_count();
        let mut bytes = first.bytes;
        let mut commands: HashSet<CommandId> = first.request.command_id.into_iter().collect();
        let mut batch = vec![first];
        // Writers that the last batch's replies woke are still making their next requests:
        // while fewer have arrived than the last batch held, let them run (a few yields, no
        // timer) before committing, so they share this commit instead of queueing for the
        // next. One writer never waits: its last batch held one request.
        let mut yields = 0;
        while events < MAX_BATCH_EVENTS && bytes < MAX_BATCH_BYTES {
            let next = match queue.try_recv() {
                Ok(next) => next,
                Err(_) if carried.is_none() && batch.len() < last_batch && yields < MAX_YIELDS => {
                    yields += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(_) => break,
            };
            let repeated = next
                .request
                .command_id
                .is_some_and(|command| !commands.insert(command));
            if repeated || bytes + next.bytes > MAX_BATCH_BYTES {
                carried = Some(next);
                break;
            }
            events += next.request.event_count();
            bytes += next.bytes;
            batch.push(next);
        }
        last_batch = batch.len();
        let (requests, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();

        match writer.write_batch(&requests).await {
            Ok(outcomes) => deliver(&head, replies.into_iter().zip(outcomes)),
            Err(error) if requests.len() > 1 && super::caused_by_a_request(&error) => {
                tracing::debug!(error = %error, batch = requests.len(), "batch refused; retrying its appends one by one");
                for (request, reply) in requests.iter().zip(replies) {
                    let outcome = match writer.write_batch(std::slice::from_ref(request)).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| {
                            Err(EventStoreError::Backend(
                                "the writer returned no outcome".into(),
                            ))
                        }),
                        Err(error) => Err(super::explain(error)),
                    };
                    deliver(&head, [(reply, outcome)]);
                }
            }
            Err(error) => {
                // Not one request's fault (the database is unreachable, say): fail them all
                // now rather than retrying each against the same outage.
                tracing::warn!(error = %error, batch = requests.len(), "append batch failed");
                let message = error.to_string();
                let mut errors =
                    std::iter::once(super::explain(error)).chain(std::iter::repeat_with(|| {
                        EventStoreError::Backend(message.clone().into())
                    }));
                deliver(
                    &head,
                    replies.into_iter().map(|reply| {
                        (
                            reply,
                            Err(errors.next().unwrap_or_else(|| {
                                EventStoreError::Backend(message.clone().into())
                            })),
                        )
                    }),
                );
            }
        }
    }
}

fn deliver(
    head: &watch::Sender<Position>,
    outcomes: impl IntoIterator<Item = (oneshot::Sender<Outcome>, Outcome)>,
) {
    for (reply, outcome) in outcomes {
        if let Ok(result) = &outcome {
            let last = result.last_position;
            head.send_if_modified(|h| {
                let raised = last > *h;
                if raised {
                    *h = last;
                }
                raised
            });
        }
        // The caller may have gone away; the append stands regardless.
        let _ = reply.send(outcome);
    }
}
