//! Runs projectors: registration, catch-up in batches then live, checkpoints moved in the
//! projector's own transaction, failure isolation with backoff, rebuilds beside the live
//! tables with an atomic swap, and status.

use crate::{ProjectionError, Projector, ReadDb, exec};
use chrono::Utc;
use domain::event::{Position, RecordedEvent};
use domain::event_store::{EventStore, EventStoreError};
use domain::ids::TenantId;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// What a committed batch changed, for live readers (GraphQL subscriptions): pushed after
/// the commit, so a reader that reacts by querying sees the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionUpdate {
    pub projection: &'static str,
    pub position: Position,
    /// The tenants whose events were in the batch.
    pub tenants: Vec<TenantId>,
}

/// Where runners announce their commits (lagging receivers miss updates, never block).
pub type Updates = tokio::sync::broadcast::Sender<ProjectionUpdate>;

fn announce(
    config: &RunnerConfig,
    projector: &dyn Projector,
    events: &[RecordedEvent],
    to: Position,
) {
    let Some(updates) = &config.updates else {
        return;
    };
    if events.is_empty() || updates.receiver_count() == 0 {
        return;
    }
    let mut tenants: Vec<TenantId> = events
        .iter()
        .filter(|e| projector.announces(e))
        .filter_map(|e| e.tenant_id)
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    let _ = updates.send(ProjectionUpdate {
        projection: projector.name(),
        position: to,
        tenants,
    });
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Most events per transaction.
    pub batch_size: usize,
    /// First pause after a failure; doubles up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// Where to announce committed batches, if anyone listens.
    pub updates: Option<Updates>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            retry_delay: Duration::from_millis(100),
            max_retry_delay: Duration::from_secs(30),
            updates: None,
        }
    }
}

mod checkpoint;
mod rebuild;

pub use checkpoint::{Checkpoint, checkpoints};
use checkpoint::{checkpoint, register};
pub use rebuild::rebuild;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("read-model database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] EventStoreError),
    #[error("no projector named {0}")]
    Unknown(String),
    #[error(
        "projection {name}: version {live} is live, newer than this build's {ours}; standing by"
    )]
    NewerVersionLive { name: String, live: i32, ours: i32 },
    #[error("projection {name}: version {live} was swapped in while this build runs {ours}")]
    VersionChanged { name: String, live: i32, ours: i32 },
    #[error("projection {0}: another rebuild swapped generations first")]
    RebuildRaced(String),
}

/// Applies `events` (all handled) and moves the checkpoint from `from` to `to` in one
/// transaction. Returns `Ok(false)` when the checkpoint had moved (another generation was
/// swapped in): nothing was written and the caller must reload.
async fn commit_batch(
    db: &ReadDb,
    projector: &dyn Projector,
    cp: &Checkpoint,
    events: &[RecordedEvent],
    to: Position,
    status: &str,
) -> Result<bool, ProjectionError> {
    // A reactor acts first, outside the transaction (its commands append through the event
    // store, which on SQLite shares the one writer connection this transaction would hold);
    // should the checkpoint then not move, the events come again and the reaction, being
    // idempotent, does nothing twice.
    if let Some(reactor) = projector.reactor()
        && !events.is_empty()
    {
        reactor.react(events).await?;
    }
    // The guard comes first: it locks the checkpoint row (PostgreSQL; SQLite's write
    // transaction is exclusive anyway), so a rebuild cannot swap generations under this batch,
    // and a batch whose generation was swapped out writes nothing to the old tables.
    let mut tx = db.begin().await?;
    let moved = exec!(
        &mut tx,
        "UPDATE projections SET position = $1, status = $2, last_error = NULL, \
         error_position = NULL, updated_at = $3 \
         WHERE name = $4 AND generation = $5 AND position = $6",
        i64::try_from(to.0).unwrap_or(i64::MAX),
        status,
        Utc::now(),
        projector.name(),
        cp.generation,
        cp.position
    )?;
    if moved != 1 {
        return Ok(false);
    }
    if !events.is_empty() {
        projector.apply(&mut tx, &cp.suffix(), events).await?;
    }
    tx.commit().await?;
    Ok(true)
}

async fn record_failure(
    db: &ReadDb,
    cp: &Checkpoint,
    error: &(dyn std::fmt::Display + Sync),
    position: Option<Position>,
) {
    let name = cp.name.as_str();
    let result = async {
        let mut tx = db.begin().await?;
        exec!(
            &mut tx,
            "UPDATE projections SET status = 'failing', last_error = $1, error_position = $2, \
             updated_at = $3 WHERE name = $4 AND generation = $5",
            error.to_string(),
            position.map(|p| i64::try_from(p.0).unwrap_or(i64::MAX)),
            Utc::now(),
            name,
            cp.generation
        )?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(projection = name, error = %e, "could not record a projection failure");
    }
}

/// Runs one projector until its task is aborted: catch-up, then live.
pub async fn run(
    store: Arc<dyn EventStore>,
    db: ReadDb,
    projector: Arc<dyn Projector>,
    config: RunnerConfig,
) -> Result<(), RunnerError> {
    let name = projector.name();
    let ours = i32::try_from(projector.version()).unwrap_or(i32::MAX);
    let mut cp = register(&db, projector.as_ref()).await?;
    if cp.version > ours {
        // A newer build's tables are live: never rebuild them down; stand by.
        return Err(RunnerError::NewerVersionLive {
            name: name.to_owned(),
            live: cp.version,
            ours,
        });
    }
    if cp.version < ours {
        tracing::info!(
            projection = name,
            from = cp.version,
            to = projector.version(),
            "projector version changed; rebuilding beside the live tables"
        );
        if let Err(error) =
            rebuild(&store, &db, projector.as_ref(), config.clone(), |_, _| {}).await
        {
            let message = format!("rebuilding to version {ours} failed: {error}");
            let position = match &error {
                RunnerError::Projection(ProjectionError::Event { position, .. }) => {
                    Some(Position(*position))
                }
                _ => None,
            };
            record_failure(&db, &cp, &message, position).await;
            return Err(error);
        }
        cp = register(&db, projector.as_ref()).await?;
    }
    if cp.position() >= store.head().await? && cp.status == "catching_up" {
        // Nothing to catch up on: say so now rather than at the next event.
        let mut tx = db.begin().await?;
        exec!(
            &mut tx,
            "UPDATE projections SET status = 'live', updated_at = $1 \
             WHERE name = $2 AND generation = $3 AND position = $4",
            Utc::now(),
            name,
            cp.generation,
            cp.position
        )?;
        tx.commit().await?;
    }
    let reads = projector.reads();
    'subscription: loop {
        // Events outside `reads` come without payloads: nothing reads them here.
        let mut batches = store
            .subscribe_to(cp.position(), reads)
            .ready_chunks(config.batch_size);
        while let Some(chunk) = batches.next().await {
            let mut events = Vec::with_capacity(chunk.len());
            for item in chunk {
                match item {
                    Ok(event) => events.push(event),
                    Err(error) => {
                        tracing::warn!(projection = name, error = %error, "reading the log failed; retrying")
                    }
                }
            }
            let Some(last) = events.last().map(|e| e.position) else {
                continue;
            };
            // Live when this batch reached the head of the log as it stands now.
            let head = store.head().await?;
            let status = if last >= head { "live" } else { "catching_up" };
            let handled: Vec<RecordedEvent> =
                events.into_iter().filter(|e| reads.includes(e)).collect();
            match commit_batch(&db, projector.as_ref(), &cp, &handled, last, status).await {
                Ok(true) => {
                    cp.position = i64::try_from(last.0).unwrap_or(i64::MAX);
                    announce(&config, projector.as_ref(), &handled, last);
                }
                Ok(false) => {
                    cp = reload_same_version(&db, name, ours).await?;
                    continue 'subscription;
                }
                Err(error) => {
                    tracing::warn!(projection = name, error = %error, "batch failed; applying its events one by one");
                    if !one_by_one(
                        &db,
                        projector.as_ref(),
                        &mut cp,
                        &handled,
                        last,
                        status,
                        &config,
                    )
                    .await?
                    {
                        cp = reload_same_version(&db, name, ours).await?;
                        continue 'subscription;
                    }
                    announce(&config, projector.as_ref(), &handled, last);
                }
            }
        }
    }
}

/// The checkpoint after it moved under this runner (a rebuild swapped generations). If the
/// swap installed another version, this runner stops; its task starts it again, which rebuilds
/// (older tables) or stands by (newer ones).
async fn reload_same_version(
    db: &ReadDb,
    name: &str,
    ours: i32,
) -> Result<Checkpoint, RunnerError> {
    let cp = checkpoint(db, name)
        .await?
        .ok_or_else(|| RunnerError::Unknown(name.to_owned()))?;
    if cp.version != ours {
        return Err(RunnerError::VersionChanged {
            name: name.to_owned(),
            live: cp.version,
            ours,
        });
    }
    Ok(cp)
}

/// After a failed batch: each event in its own transaction, so the failing one is found,
/// recorded with its position and retried with backoff while the others stay applied.
async fn one_by_one(
    db: &ReadDb,
    projector: &dyn Projector,
    cp: &mut Checkpoint,
    handled: &[RecordedEvent],
    last: Position,
    status: &str,
    config: &RunnerConfig,
) -> Result<bool, RunnerError> {
    for event in handled {
        let mut delay = config.retry_delay;
        loop {
            match commit_batch(
                db,
                projector,
                cp,
                std::slice::from_ref(event),
                event.position,
                "catching_up",
            )
            .await
            {
                Ok(true) => {
                    cp.position = i64::try_from(event.position.0).unwrap_or(i64::MAX);
                    break;
                }
                Ok(false) => return Ok(false),
                Err(error) => {
                    tracing::error!(projection = projector.name(), position = event.position.0, error = %error, "projection failed; retrying");
                    record_failure(db, cp, &error, Some(event.position)).await;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(config.max_retry_delay);
                }
            }
        }
    }
    Ok(
        commit_batch(db, projector, cp, &[], last, status).await? && {
            cp.position = i64::try_from(last.0).unwrap_or(i64::MAX);
            true
        },
    )
}

/// The projection tasks of this process; dropping it stops them (an interrupted batch rolls
/// back and is applied again on the next start).
#[derive(Debug)]
pub struct RunnerHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl RunnerHandle {
    pub(crate) fn from_tasks(tasks: Vec<JoinHandle<()>>) -> Self {
        Self { tasks }
    }

    /// One handle for the tasks of both.
    #[must_use]
    pub fn join(mut self, mut other: Self) -> Self {
        self.tasks.append(&mut other.tasks);
        self
    }
}

impl Drop for RunnerHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts one task per projector. Each first takes the projector's lease (so it runs in one
/// process at a time), then runs it; a projector that stops (its database is down, say) is
/// restarted with backoff while the others run regardless.
pub fn spawn(
    store: Arc<dyn EventStore>,
    db: ReadDb,
    projectors: Vec<Arc<dyn Projector>>,
    config: RunnerConfig,
) -> RunnerHandle {
    let tasks = projectors
        .into_iter()
        .map(|projector| {
            let (store, db, config) = (store.clone(), db.clone(), config.clone());
            tokio::spawn(async move {
                let mut delay = config.retry_delay;
                loop {
                    let mut lease = crate::lease::acquire(&db, projector.name()).await;
                    let started = Instant::now();
                    tokio::select! {
                        result = run(store.clone(), db.clone(), projector.clone(), config.clone()) => {
                            if let Err(error) = result {
                                tracing::error!(projection = projector.name(), error = %error, "projection stopped; restarting");
                            }
                        }
                        () = lease.lost(projector.name()) => {
                            tracing::warn!(projection = projector.name(), "projection lease lost; stopped");
                        }
                    }
                    drop(lease);
                    if started.elapsed() > config.max_retry_delay {
                        delay = config.retry_delay;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(config.max_retry_delay);
                }
            })
        })
        .collect();
    RunnerHandle { tasks }
}
