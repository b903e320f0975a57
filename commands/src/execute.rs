//! The one write path: load, decide, append with the exact expected version, retry.

use crate::CommandContext;
use domain::aggregate::{Aggregate, EventDecodeError, decode_event, encode_event};
use domain::event::{NewEvent, Position, StreamId, StreamVersion};
use domain::event_store::{
    AppendRequest, AppendResult, EventStore, EventStoreError, ExpectedVersion, StreamRead,
};
use domain::ids::EventId;
use domain::snapshot::{Snapshot, SnapshotStore};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Events read per page while loading a stream.
const LOAD_PAGE: usize = 1_000;

#[derive(Debug, Clone, Copy)]
pub struct ExecutePolicy {
    /// Attempts before giving up when the stream keeps changing under the command.
    pub max_attempts: u32,
    /// Take a snapshot each time a stream crosses a multiple of this many events (0: never).
    pub snapshot_every: u64,
}

impl Default for ExecutePolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            snapshot_every: 100,
        }
    }
}

/// What a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The aggregate's stream version after the command.
    pub version: StreamVersion,
    /// The global position of the last event the command wrote (or, when it wrote nothing,
    /// of the last event it decided on): wait for projections to reach it to read your write.
    pub position: Position,
    /// How many events this command appended to the aggregate's stream.
    pub appended: u64,
    /// True when the command id had already been executed and this is its first outcome.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    #[error("gave up after {attempts} attempts: stream {stream} kept changing")]
    Contention { stream: StreamId, attempts: u32 },
    #[error(transparent)]
    Store(#[from] EventStoreError),
    #[error("a stored event could not be read: {0}")]
    Decode(#[from] EventDecodeError),
}

/// An aggregate as loaded: its state, its stream version and the position of its last event.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    pub version: StreamVersion,
    /// `None` when the last event came from a snapshot rather than the read.
    pub last_position: Option<Position>,
}

#[derive(Debug, Clone)]
pub struct Executor {
    store: Arc<dyn EventStore>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    policy: ExecutePolicy,
}

impl Executor {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            snapshots: None,
            policy: ExecutePolicy::default(),
        }
    }

    #[must_use]
    pub fn with_snapshots(mut self, snapshots: Arc<dyn SnapshotStore>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    #[must_use]
    pub fn with_policy(mut self, policy: ExecutePolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Loads aggregate `id`: from its snapshot (if one of the current shape exists) plus the
    /// events after it, or from the start.
    pub async fn load<A: Aggregate>(&self, id: Uuid) -> Result<Loaded<A>, LoadError> {
        let stream = StreamId::for_aggregate(A::CATEGORY, id);
        let mut loaded = Loaded {
            state: A::default(),
            version: StreamVersion::NONE,
            last_position: None,
        };
        if let Some(snapshots) = &self.snapshots
            && let Some(snapshot) = snapshots.load(&stream).await?
            && snapshot.schema_version == A::SNAPSHOT_VERSION
        {
            match serde_json::from_value::<A>(snapshot.state) {
                Ok(state) => {
                    loaded.state = state;
                    loaded.version = snapshot.version;
                }
                Err(error) => {
                    tracing::warn!(stream = %stream, error = %error, "ignoring unreadable snapshot");
                }
            }
        }
        loop {
            let page = self
                .store
                .read_stream(
                    &stream,
                    StreamRead::forwards()
                        .from_version(loaded.version.next())
                        .limit(LOAD_PAGE),
                )
                .await?;
            for event in &page {
                let decoded = decode_event::<A>(
                    &event.event_type,
                    event.schema_version,
                    event.payload.clone(),
                )?;
                loaded.state.evolve(&decoded);
                loaded.version = event.version;
                loaded.last_position = Some(event.position);
            }
            if page.len() < LOAD_PAGE {
                return Ok(loaded);
            }
        }
    }

    /// Executes `command` on aggregate `id`.
    pub async fn execute<A: Aggregate>(
        &self,
        id: Uuid,
        command: &A::Command,
        ctx: &CommandContext,
    ) -> Result<CommandOutcome, CommandError<A::Error>> {
        self.execute_with::<A, NoGuard, A::Error>(id, None, ctx, |state, _| {
            Ok((state.decide(command)?, vec![]))
        })
        .await
    }

    /// Executes a decision over aggregate `id` and, when `guard` is given, a second aggregate
    /// whose events are appended in the same atomic append, both with exact expectations.
    /// `decide` may run several times (once per attempt) and must be pure.
    pub async fn execute_with<A, G, E>(
        &self,
        id: Uuid,
        guard: Option<Uuid>,
        ctx: &CommandContext,
        decide: impl Fn(&A, &G) -> Result<(Vec<A::Event>, Vec<G::Event>), E>,
    ) -> Result<CommandOutcome, CommandError<E>>
    where
        A: Aggregate,
        G: Aggregate,
        E: std::error::Error + Send + Sync + 'static,
    {
        let stream = StreamId::for_aggregate(A::CATEGORY, id);
        if let Some(first) = self.store.find_command(ctx.command_id).await? {
            return Ok(replayed(&first, &stream));
        }
        for attempt in 1..=self.policy.max_attempts {
            let target = self.load::<A>(id).await.map_err(LoadError::into_command)?;
            let guarded = match guard {
                Some(guard_id) => Some((
                    guard_id,
                    self.load::<G>(guard_id)
                        .await
                        .map_err(LoadError::into_command)?,
                )),
                None => None,
            };
            let no_guard = G::default();
            let guard_state = guarded.as_ref().map_or(&no_guard, |(_, g)| &g.state);
            let (events, guard_events) =
                decide(&target.state, guard_state).map_err(CommandError::Rejected)?;
            if events.is_empty() && guard_events.is_empty() {
                let position = match target.last_position {
                    Some(position) => position,
                    None => self.last_position(&stream).await?,
                };
                return Ok(CommandOutcome {
                    version: target.version,
                    position,
                    appended: 0,
                    replayed: false,
                });
            }

            let mut request = AppendRequest::to_stream(
                stream.clone(),
                ExpectedVersion::Exact(target.version),
                envelopes::<A>(&events, ctx)?,
            )
            .idempotent(ctx.command_id);
            if let Some((guard_id, loaded)) = &guarded {
                request = request.and_stream(
                    StreamId::for_aggregate(G::CATEGORY, *guard_id),
                    ExpectedVersion::Exact(loaded.version),
                    envelopes::<G>(&guard_events, ctx)?,
                );
            }
            match self.store.append(request).await {
                Ok(result) => {
                    let version = result.version_of(&stream).unwrap_or(target.version);
                    self.maybe_snapshot::<A>(id, target.version, version).await;
                    if let Some((guard_id, loaded)) = &guarded {
                        let guard_stream = StreamId::for_aggregate(G::CATEGORY, *guard_id);
                        let after = result.version_of(&guard_stream).unwrap_or(loaded.version);
                        self.maybe_snapshot::<G>(*guard_id, loaded.version, after)
                            .await;
                    }
                    return Ok(CommandOutcome {
                        version,
                        position: result.last_position,
                        appended: version.0.saturating_sub(target.version.0),
                        replayed: false,
                    });
                }
                Err(EventStoreError::VersionConflict { .. }) => {
                    tracing::debug!(stream = %stream, attempt, "version conflict; retrying");
                    backoff(attempt).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(CommandError::Contention {
            stream,
            attempts: self.policy.max_attempts,
        })
    }

    async fn last_position(&self, stream: &StreamId) -> Result<Position, EventStoreError> {
        let last = self
            .store
            .read_stream(stream, StreamRead::backwards().limit(1))
            .await?;
        Ok(last.first().map_or(Position::START, |e| e.position))
    }

    /// Snapshots a stream that crossed a multiple of `snapshot_every`. The state is loaded
    /// afresh (snapshot plus tail), so the snapshot holds exactly what is stored. A failure
    /// only costs a slower load later.
    async fn maybe_snapshot<A: Aggregate>(
        &self,
        id: Uuid,
        before: StreamVersion,
        after: StreamVersion,
    ) {
        let every = self.policy.snapshot_every;
        let Some(snapshots) = &self.snapshots else {
            return;
        };
        if every == 0 || after.0 / every == before.0 / every {
            return;
        }
        let stream = StreamId::for_aggregate(A::CATEGORY, id);
        let result = async {
            let loaded = self.load::<A>(id).await?;
            let state = serde_json::to_value(&loaded.state)
                .map_err(|e| LoadError::Store(EventStoreError::Corrupt(e.to_string())))?;
            snapshots
                .save(&Snapshot {
                    stream: stream.clone(),
                    version: loaded.version,
                    schema_version: A::SNAPSHOT_VERSION,
                    state,
                })
                .await?;
            Ok::<_, LoadError>(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(stream = %stream, error = %error, "snapshot not saved");
        }
    }
}

/// Why an aggregate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] EventStoreError),
    #[error("a stored event could not be read: {0}")]
    Decode(#[from] EventDecodeError),
}

impl LoadError {
    fn into_command<E: std::error::Error + 'static>(self) -> CommandError<E> {
        match self {
            Self::Store(e) => CommandError::Store(e),
            Self::Decode(e) => CommandError::Decode(e),
        }
    }
}

fn replayed(first: &AppendResult, stream: &StreamId) -> CommandOutcome {
    CommandOutcome {
        version: first.version_of(stream).unwrap_or_default(),
        position: first.last_position,
        appended: 0,
        replayed: true,
    }
}

fn envelopes<A: Aggregate>(
    events: &[A::Event],
    ctx: &CommandContext,
) -> Result<Vec<NewEvent>, EventDecodeError> {
    events
        .iter()
        .map(|event| {
            let (event_type, payload) = encode_event(event)?;
            Ok(NewEvent {
                event_id: EventId::new_v7(),
                schema_version: A::schema_version(&event_type),
                event_type,
                tenant_id: ctx.tenant_id,
                payload,
                metadata: ctx.metadata(),
            })
        })
        .collect()
}

/// A short, jittered pause that grows with the attempt, so contending writers spread out.
async fn backoff(attempt: u32) {
    let ceiling_us = 500 * u64::from(attempt.min(20));
    let jitter =
        u64::try_from(Uuid::new_v4().as_u128() % u128::from(ceiling_us.max(1))).unwrap_or(0);
    tokio::time::sleep(Duration::from_micros(jitter)).await;
}

/// The absent second aggregate of a single-aggregate command.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct NoGuard;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum NoEvent {}

#[derive(Debug, thiserror::Error)]
#[error("no guard")]
struct NoGuardError;

impl Aggregate for NoGuard {
    const CATEGORY: &'static str = "none";
    type Command = ();
    type Event = NoEvent;
    type Error = NoGuardError;

    fn decide(&self, _: &()) -> Result<Vec<NoEvent>, NoGuardError> {
        Ok(vec![])
    }

    fn evolve(&mut self, event: &NoEvent) {
        match *event {}
    }
}
