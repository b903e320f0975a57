//! The one write path: load, decide, append with the exact expected version, retry.

use crate::CommandContext;
use crate::freshness::LogWatch;
use domain::aggregate::{Aggregate, EventDecodeError, decode_event, encode_event};
use domain::event::{NewEvent, Position, RecordedEvent, StreamId, StreamVersion};
use domain::event_store::{
    AppendRequest, AppendResult, EventStore, EventStoreError, ExpectedVersion, StreamRead,
};
use domain::ids::EventId;
use domain::snapshot::{Snapshot, SnapshotStore};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
            snapshot_every: 20,
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

impl AsRef<CommandOutcome> for CommandOutcome {
    fn as_ref(&self) -> &CommandOutcome {
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    #[error("gave up after {attempts} attempts: stream {stream} kept changing")]
    Contention { stream: StreamId, attempts: u32 },
    /// The command id was already used by a command on another stream.
    #[error("idempotency key {command_id} was already used for a different command")]
    IdempotencyKeyReused { command_id: domain::ids::CommandId },
    #[error(transparent)]
    Store(#[from] EventStoreError),
    #[error("a stored event could not be read: {0}")]
    Decode(#[from] EventDecodeError),
}

impl<E: std::error::Error + 'static> CommandError<E> {
    /// The same failure with the refusal turned into another use case's error.
    pub fn map_rejection<F: std::error::Error + 'static>(
        self,
        f: impl FnOnce(E) -> F,
    ) -> CommandError<F> {
        match self {
            Self::Rejected(e) => CommandError::Rejected(f(e)),
            Self::Contention { stream, attempts } => CommandError::Contention { stream, attempts },
            Self::IdempotencyKeyReused { command_id } => {
                CommandError::IdempotencyKeyReused { command_id }
            }
            Self::Store(e) => CommandError::Store(e),
            Self::Decode(e) => CommandError::Decode(e),
        }
    }
}

/// An aggregate as loaded: its state, its stream version and the position of its last event.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    pub version: StreamVersion,
    /// `None` when the last event came from a snapshot rather than the read.
    pub last_position: Option<Position>,
    /// Where the state started: a stored snapshot (rather than the cache or the stream's start).
    pub from_snapshot: bool,
}

#[derive(Debug, Clone)]
pub struct Executor {
    store: Arc<dyn EventStore>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    policy: ExecutePolicy,
    cache: Arc<StateCache>,
    watch: Arc<LogWatch>,
}

/// Most aggregates whose loaded state this process keeps.
const CACHE_CAPACITY: usize = 10_000;

/// A cached state: its stream version, how much of the log it reflects (`None`: unknown, so
/// it is never trusted without reading the tail), and the state.
type CachedState = (StreamVersion, Option<Position>, Arc<dyn Any + Send + Sync>);

/// Loaded aggregate states by stream. Events never change, so a cached state plus the events
/// stored after its version is always the current state: the cache saves reads and decoding,
/// never correctness. Entries are evicted arbitrarily when full. An entry is only ever
/// replaced by a state at least as new, so a slow load cannot undo a newer append's update.
#[derive(Debug, Default)]
struct StateCache {
    entries: Mutex<HashMap<StreamId, CachedState>>,
}

impl StateCache {
    fn get<A: Aggregate>(&self, stream: &StreamId) -> Option<(StreamVersion, Option<Position>, A)> {
        let entries = self.entries.lock().ok()?;
        let (version, as_of, state) = entries.get(stream)?;
        state
            .downcast_ref::<A>()
            .map(|s| (*version, *as_of, s.clone()))
    }

    fn put<A: Aggregate>(
        &self,
        stream: &StreamId,
        version: StreamVersion,
        as_of: Option<Position>,
        state: &A,
    ) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(entry) = entries.get_mut(stream) {
                if entry.0 > version {
                    return;
                }
                if entry.0 == version {
                    entry.1 = entry.1.max(as_of);
                    return;
                }
            } else if entries.len() >= CACHE_CAPACITY {
                let victim = entries.keys().next().cloned();
                if let Some(victim) = victim {
                    entries.remove(&victim);
                }
            }
            entries.insert(stream.clone(), (version, as_of, Arc::new(state.clone())));
        }
    }
}

impl Executor {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            snapshots: None,
            policy: ExecutePolicy::default(),
            cache: Arc::default(),
            watch: Arc::default(),
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

    /// Follows the log so that [`Self::load_current`] can answer from the cache (see
    /// [`crate::freshness`]). Without it, every load reads the stream's tail.
    pub fn watch_log(&self) -> tokio::task::JoinHandle<()> {
        self.watch.spawn(self.store.clone())
    }

    /// Loads aggregate `id`: from its snapshot (if one of the current shape exists) plus the
    /// events after it, or from the start. Always reads the stream (at least its tail), so it
    /// sees every append committed before it began, in any process.
    pub async fn load<A: Aggregate>(&self, id: Uuid) -> Result<Loaded<A>, LoadError> {
        let stream = StreamId::for_aggregate(A::CATEGORY, id);
        let as_of = self.watch.live_position();
        let mut loaded = Loaded {
            state: A::default(),
            version: StreamVersion::NONE,
            last_position: None,
            from_snapshot: false,
        };
        if let Some((version, _, state)) = self.cache.get::<A>(&stream) {
            loaded.state = state;
            loaded.version = version;
            self.load_tail(&stream, &mut loaded).await?;
        } else {
            self.load_uncached(&stream, &mut loaded).await?;
        }
        self.cache
            .put(&stream, loaded.version, as_of, &loaded.state);
        Ok(loaded)
    }

    /// Aggregate `id` as it was at `as_of` (time travel): its stream folded up to the last
    /// event recorded at or before that time, or at or before that log position. Reads the
    /// stream from its start (no snapshot or cache: they hold the present); nothing is cached.
    pub async fn load_as_of<A: Aggregate>(
        &self,
        id: Uuid,
        as_of: AsOf,
    ) -> Result<Loaded<A>, LoadError> {
        let stream = StreamId::for_aggregate(A::CATEGORY, id);
        let mut loaded = Loaded {
            state: A::default(),
            version: StreamVersion::NONE,
            last_position: None,
            from_snapshot: false,
        };
        loop {
            let page = self
                .store
                .read_stream(
                    &stream,
                    StreamRead {
                        direction: domain::event_store::ReadDirection::Forwards,
                        from: StreamVersion(loaded.version.0 + 1),
                        limit: LOAD_PAGE,
                    },
                )
                .await?;
            for event in &page {
                let within = match as_of {
                    AsOf::Time(at) => event.recorded_at <= at,
                    AsOf::Position(position) => event.position <= position,
                };
                if !within {
                    return Ok(loaded);
                }
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

    async fn load_trusting<A: Aggregate>(
        &self,
        id: Uuid,
        trust_cache: bool,
    ) -> Result<Loaded<A>, LoadError> {
        if trust_cache {
            self.load_current(id).await
        } else {
            self.load(id).await
        }
    }

    /// Loads aggregate `id` as [`Self::load`] does, but answers from the cache without a read
    /// while the log watch vouches that the stream has not changed since the cached state
    /// was read: exact for appends made through this executor, and within
    /// [`crate::freshness::MAX_LAG`] for appends made by other processes. For checks on every
    /// request (sessions, API keys, tenant access) and a command's first attempt.
    pub async fn load_current<A: Aggregate>(&self, id: Uuid) -> Result<Loaded<A>, LoadError> {
        let stream = StreamId::for_aggregate(A::CATEGORY, id);
        if let Some((version, Some(as_of), state)) = self.cache.get::<A>(&stream)
            && self.watch.unchanged_since(&stream, as_of)
        {
            return Ok(Loaded {
                state,
                version,
                last_position: None,
                from_snapshot: false,
            });
        }
        self.load(id).await
    }

    async fn load_uncached<A: Aggregate>(
        &self,
        stream: &StreamId,
        loaded: &mut Loaded<A>,
    ) -> Result<(), LoadError> {
        let stream = stream.clone();
        // With snapshots, the newest page is read first: a short stream is then complete in
        // one read, and a long one needs only its snapshot plus events already in hand.
        if let (Some(snapshots), every) = (&self.snapshots, self.policy.snapshot_every)
            && every > 0
        {
            let page = usize::try_from(every)
                .unwrap_or(LOAD_PAGE)
                .clamp(1, LOAD_PAGE);
            let newest = self
                .store
                .read_stream(&stream, StreamRead::backwards().limit(page))
                .await?;
            let Some(oldest) = newest.last().map(|e| e.version) else {
                return Ok(());
            };
            let from = if oldest == StreamVersion(1) {
                Some(StreamVersion::NONE)
            } else {
                match snapshots.load(&stream).await? {
                    Some(snapshot)
                        if snapshot.schema_version == A::SNAPSHOT_VERSION
                            && snapshot.version.0 + 1 >= oldest.0 =>
                    {
                        match serde_json::from_value::<A>(snapshot.state) {
                            Ok(state) => {
                                loaded.state = state;
                                loaded.version = snapshot.version;
                                loaded.from_snapshot = true;
                                Some(snapshot.version)
                            }
                            Err(error) => {
                                tracing::warn!(stream = %stream, error = %error, "ignoring unreadable snapshot");
                                None
                            }
                        }
                    }
                    _ => None,
                }
            };
            if let Some(from) = from {
                for event in newest.iter().rev().filter(|e| e.version > from) {
                    fold_into(loaded, event)?;
                }
                return Ok(());
            }
        }
        // Without a usable snapshot: the whole stream, in pages.
        self.load_tail(&stream, loaded).await
    }

    /// Folds the events stored after `loaded.version` into `loaded`.
    async fn load_tail<A: Aggregate>(
        &self,
        stream: &StreamId,
        loaded: &mut Loaded<A>,
    ) -> Result<(), LoadError> {
        loop {
            let page = self
                .store
                .read_stream(
                    stream,
                    StreamRead::forwards()
                        .from_version(loaded.version.next())
                        .limit(LOAD_PAGE),
                )
                .await?;
            for event in &page {
                fold_into(loaded, event)?;
            }
            if page.len() < LOAD_PAGE {
                return Ok(());
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

    /// The first command of a stream that should not exist yet (one usage event, say):
    /// decides on the empty state and appends with `NoStream` — one write and no read.
    /// `Ok(None)` when the stream exists already (nothing was written: [`Self::execute`]
    /// decides against what is there).
    ///
    /// The `NoStream` expectation is the idempotency: a retry finds the stream, so no command
    /// record is stored (the events still carry the command id in their metadata). That
    /// saves a lookup and a row per append on the hottest write path (usage ingestion).
    pub async fn create<A: Aggregate>(
        &self,
        id: Uuid,
        command: &A::Command,
        ctx: &CommandContext,
    ) -> Result<Option<CommandOutcome>, CommandError<A::Error>> {
        let events = A::default()
            .decide(command)
            .map_err(CommandError::Rejected)?;
        if events.is_empty() {
            return Ok(None);
        }
        let stream = StreamId::for_aggregate(A::CATEGORY, id);
        let request = AppendRequest::to_stream(
            stream.clone(),
            ExpectedVersion::NoStream,
            envelopes::<A>(&events, ctx)?,
        );
        match self.store.append(request).await {
            Ok(result) => Ok(Some(CommandOutcome {
                version: result
                    .version_of(&stream)
                    .unwrap_or(StreamVersion(events.len() as u64)),
                position: result.last_position,
                appended: events.len() as u64,
                replayed: false,
            })),
            Err(EventStoreError::VersionConflict { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
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
        self.execute_claiming::<A, G, NoGuard, E>(id, guard, None, ctx, decide)
            .await
    }

    /// [`Self::execute_with`] plus a third aggregate, a claim (a unique name, say), that
    /// decides `claim.command` and is appended in the same atomic append with its exact
    /// expectation: two commands racing for one claim cannot both succeed, and the loser's
    /// retry sees the claim taken (`claim.refused` turns that refusal into the command's).
    pub async fn execute_claiming<A, G, C, E>(
        &self,
        id: Uuid,
        guard: Option<Uuid>,
        claim: Option<Claim<C, E>>,
        ctx: &CommandContext,
        decide: impl Fn(&A, &G) -> Result<(Vec<A::Event>, Vec<G::Event>), E>,
    ) -> Result<CommandOutcome, CommandError<E>>
    where
        A: Aggregate,
        G: Aggregate,
        C: Aggregate,
        E: std::error::Error + Send + Sync + 'static,
    {
        let stream = StreamId::for_aggregate(A::CATEGORY, id);
        // The append is idempotent by command id, so a retried command that decides to write
        // gets the first result from the store. Only a retry whose decision now writes
        // nothing or is refused (the first attempt changed the state) needs the lookup.
        //
        // The first attempt decides over the states as `load_current` has them (usually from
        // the cache, without a read). That is safe: an append carries the exact versions the
        // decision saw, so a state that was stale only costs a conflict, and a decision that
        // would append nothing (a refusal, or nothing to do) is made again over a fresh read
        // before it is returned. Retries after a conflict read afresh.
        let mut trust_cache = true;
        for attempt in 1..=self.policy.max_attempts {
            let (target, guarded, claimed, decision) = loop {
                let target = self
                    .load_trusting::<A>(id, trust_cache)
                    .await
                    .map_err(LoadError::into_command)?;
                let guarded = match guard {
                    Some(guard_id) => Some((
                        guard_id,
                        self.load_trusting::<G>(guard_id, trust_cache)
                            .await
                            .map_err(LoadError::into_command)?,
                    )),
                    None => None,
                };
                let claimed = match &claim {
                    Some(claim) => Some(
                        self.load_trusting::<C>(claim.id, trust_cache)
                            .await
                            .map_err(LoadError::into_command)?,
                    ),
                    None => None,
                };
                let no_guard = G::default();
                let guard_state = guarded.as_ref().map_or(&no_guard, |(_, g)| &g.state);
                let claim_events = match (&claim, &claimed) {
                    (Some(claim), Some(loaded)) => {
                        loaded.state.decide(&claim.command).map_err(claim.refused)
                    }
                    _ => Ok(vec![]),
                };
                let decision = decide(&target.state, guard_state)
                    .and_then(|(events, guard)| Ok((events, guard, claim_events?)));
                let appends = matches!(&decision, Ok((events, guard_events, claim_events))
                    if !events.is_empty() || !guard_events.is_empty() || !claim_events.is_empty());
                if appends || !trust_cache {
                    break (target, guarded, claimed, decision);
                }
                trust_cache = false;
            };
            let writes_nothing = match &decision {
                Ok((events, guard_events, claim_events)) => {
                    events.is_empty() && guard_events.is_empty() && claim_events.is_empty()
                }
                Err(_) => true,
            };
            if writes_nothing && let Some(first) = self.store.find_command(ctx.command_id).await? {
                self.same_request(&first, ctx).await?;
                return replayed(&first, &stream, ctx);
            }
            let (events, guard_events, claim_events) = decision.map_err(CommandError::Rejected)?;
            if events.is_empty() && guard_events.is_empty() && claim_events.is_empty() {
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

            let target_events = envelopes::<A>(&events, ctx)?;
            let guard_envelopes = envelopes::<G>(&guard_events, ctx)?;
            let mut request = AppendRequest::to_stream(
                stream.clone(),
                ExpectedVersion::Exact(target.version),
                target_events.clone(),
            )
            .idempotent(ctx.command_id);
            if let Some((guard_id, loaded)) = &guarded {
                request = request.and_stream(
                    StreamId::for_aggregate(G::CATEGORY, *guard_id),
                    ExpectedVersion::Exact(loaded.version),
                    guard_envelopes.clone(),
                );
            }
            let claim_envelopes = envelopes::<C>(&claim_events, ctx)?;
            if let (Some(claim), Some(loaded)) = (&claim, &claimed) {
                request = request.and_stream(
                    StreamId::for_aggregate(C::CATEGORY, claim.id),
                    ExpectedVersion::Exact(loaded.version),
                    claim_envelopes.clone(),
                );
            }
            match self.store.append(request).await {
                Ok(result) if result.replayed => {
                    self.same_request(&result, ctx).await?;
                    return replayed(&result, &stream, ctx);
                }
                Ok(result) => {
                    let before = target.version;
                    let version = result.version_of(&stream).unwrap_or(before);
                    self.remember(&stream, target, &target_events, &result);
                    self.maybe_snapshot::<A>(id, before, version).await;
                    if let Some((guard_id, loaded)) = guarded {
                        let guard_stream = StreamId::for_aggregate(G::CATEGORY, guard_id);
                        let guard_before = loaded.version;
                        let after = result.version_of(&guard_stream).unwrap_or(guard_before);
                        self.remember(&guard_stream, loaded, &guard_envelopes, &result);
                        self.maybe_snapshot::<G>(guard_id, guard_before, after)
                            .await;
                    }
                    if let (Some(claim), Some(loaded)) = (&claim, claimed) {
                        let claim_stream = StreamId::for_aggregate(C::CATEGORY, claim.id);
                        self.remember(&claim_stream, loaded, &claim_envelopes, &result);
                    }
                    return Ok(CommandOutcome {
                        version,
                        position: result.last_position,
                        appended: version.0.saturating_sub(before.0),
                        replayed: false,
                    });
                }
                Err(EventStoreError::VersionConflict { .. }) => {
                    trust_cache = false;
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

    /// Caches the state an append produced (the loaded state with the appended events folded
    /// in, decoded from what was stored, as a load would), so this process's next request sees
    /// it without a read.
    fn remember<A: Aggregate>(
        &self,
        stream: &StreamId,
        mut loaded: Loaded<A>,
        appended: &[NewEvent],
        result: &AppendResult,
    ) {
        let Some(version) = result.version_of(stream) else {
            return;
        };
        for event in appended {
            match decode_event::<A>(
                &event.event_type,
                event.schema_version,
                event.payload.clone(),
            ) {
                Ok(decoded) => loaded.state.evolve(&decoded),
                Err(_) => return,
            }
        }
        if version.0 == loaded.version.0 + appended.len() as u64 {
            self.cache
                .put(stream, version, Some(result.last_position), &loaded.state);
        }
    }

    /// A replayed command id must come with the arguments it first came with: the first
    /// event it wrote holds their digest.
    async fn same_request<E: std::error::Error + 'static>(
        &self,
        first: &AppendResult,
        ctx: &CommandContext,
    ) -> Result<(), CommandError<E>> {
        let Some(mine) = &ctx.fingerprint else {
            return Ok(());
        };
        let before = Position(first.first_position.0.saturating_sub(1));
        let stored = self.store.read_all(before, 1).await?;
        match stored
            .first()
            .and_then(|e| e.metadata.request_fingerprint.as_ref())
        {
            Some(theirs) if theirs != mine => Err(CommandError::IdempotencyKeyReused {
                command_id: ctx.command_id,
            }),
            _ => Ok(()),
        }
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

/// A moment in the past to look at: a time, or a log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Time(chrono::DateTime<chrono::Utc>),
    Position(Position),
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
    pub(crate) fn into_command<E: std::error::Error + 'static>(self) -> CommandError<E> {
        match self {
            Self::Store(e) => CommandError::Store(e),
            Self::Decode(e) => CommandError::Decode(e),
        }
    }
}

fn fold_into<A: Aggregate>(
    loaded: &mut Loaded<A>,
    event: &RecordedEvent,
) -> Result<(), EventDecodeError> {
    let decoded = decode_event::<A>(
        &event.event_type,
        event.schema_version,
        event.payload.clone(),
    )?;
    loaded.state.evolve(&decoded);
    loaded.version = event.version;
    loaded.last_position = Some(event.position);
    Ok(())
}

/// The outcome of a command id executed before: its first result, which must concern the
/// same stream (otherwise the key was reused for another command).
fn replayed<E: std::error::Error + 'static>(
    first: &AppendResult,
    stream: &StreamId,
    ctx: &CommandContext,
) -> Result<CommandOutcome, CommandError<E>> {
    let version = first
        .version_of(stream)
        .ok_or(CommandError::IdempotencyKeyReused {
            command_id: ctx.command_id,
        })?;
    Ok(CommandOutcome {
        version,
        position: first.last_position,
        appended: 0,
        replayed: true,
    })
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

/// A claim a command makes (see [`Executor::execute_claiming`]): aggregate `C` with id `id`
/// decides `command`; `refused` turns its refusal into the command's error.
pub struct Claim<C: Aggregate, E> {
    pub id: Uuid,
    pub command: C::Command,
    pub refused: fn(C::Error) -> E,
}

impl<C: Aggregate, E> std::fmt::Debug for Claim<C, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("category", &C::CATEGORY)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
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
