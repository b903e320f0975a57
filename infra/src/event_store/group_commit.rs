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
        request.validate()?;
        let (reply, answer) = oneshot::channel();
        let stopped = || EventStoreError::Backend("the event-store writer has stopped".into());
        self.queue
            .send(Pending { request, reply })
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
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match queue.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut events = first.request.event_count();
        let mut commands: HashSet<CommandId> = first.request.command_id.into_iter().collect();
        let mut batch = vec![first];
        while events < MAX_BATCH_EVENTS {
            let Ok(next) = queue.try_recv() else { break };
            if let Some(command) = next.request.command_id
                && !commands.insert(command)
            {
                carried = Some(next);
                break;
            }
            events += next.request.event_count();
            batch.push(next);
        }
        let (requests, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();

        match writer.write_batch(&requests).await {
            Ok(outcomes) => deliver(&head, replies.into_iter().zip(outcomes)),
            Err(error) if requests.len() == 1 => {
                deliver(&head, replies.into_iter().zip([Err(error)]))
            }
            Err(error) => {
                tracing::debug!(error = %error, batch = requests.len(), "batch failed; retrying its appends one by one");
                for (request, reply) in requests.iter().zip(replies) {
                    let outcome = match writer.write_batch(std::slice::from_ref(request)).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| {
                            Err(EventStoreError::Backend(
                                "the writer returned no outcome".into(),
                            ))
                        }),
                        Err(error) => Err(error),
                    };
                    deliver(&head, [(reply, outcome)]);
                }
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
