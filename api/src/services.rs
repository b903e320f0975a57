//! What resolvers share: the write path, the read models, the vault, the mailer, the session
//! signer, the rate limiter, metrics, and the API's configuration.

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use commands::{CommandContext, CommandError, CommandOutcome, Executor};
use domain::event::{Actor, Position};
use domain::ids::SubjectId;
use domain::mailer::Mailer;
use domain::personal_data::PersonalData;
use projections::ReadDb;
use projections::runner::Updates;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the web app lives: links in e-mails point here.
    pub public_url: String,
    pub session_ttl: Duration,
    pub introspection: bool,
    pub max_body_bytes: usize,
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_batch: usize,
    /// Longest a query waits for the read models to reach a requested position.
    pub consistency_timeout: Duration,
    /// How long a WebSocket may stay open without `connection_init`.
    pub ws_init_timeout: Duration,
    /// How often the server pings a WebSocket (silent for three: closed).
    pub ws_keepalive: Duration,
    /// Attempts per window on log-in, sign-up, password reset and TOTP checks, per IP and
    /// per account.
    pub auth_attempts: u32,
    pub auth_window: Duration,
    /// Days a closed tenant's data is kept.
    pub close_retention_days: i64,
    /// Who may read `GET /metrics`.
    pub metrics: MetricsAccess,
    /// Reverse proxies whose forwarding headers name the client (none: the peer is).
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Longest an HTTP request may take, its body's upload included.
    pub request_timeout: Duration,
    /// HTTP requests served at once; more are answered 503 at once.
    pub max_concurrent_requests: usize,
    /// Mutation fields per HTTP request, across a batch and its aliases.
    pub max_mutations: usize,
    /// The least time `signUp`, `requestPasswordReset` and `resendVerificationEmail` take to
    /// answer, so that the answer's timing does not tell whether an address has an account.
    pub anonymous_answer_floor: Duration,
    /// Open (not closed) tenants a user may own; creating one more is refused.
    pub max_tenants_per_user: u64,
    /// Longest a client may take to send a request's headers (or stay silent on a kept-alive
    /// connection) before the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a subscription stays past due after a failed payment before it (and its
    /// tenant) is suspended.
    pub payment_grace: Duration,
    /// Which usage events are refused for their timestamp (`commands::metering`).
    pub usage_rules: commands::metering::IngestRules,
    /// The secrets `POST /webhooks/stripe` checks signatures with (none: the endpoint
    /// answers 404), and how old a signed timestamp may be.
    pub stripe_webhook: WebhookSecrets,
    /// Whether tenants' webhook endpoints may be plain `http://` (endpoints on a trusted
    /// network, tests); `https://` only otherwise.
    pub webhooks_allow_http: bool,
}

/// Webhook signing secrets (several while one is rotated). Never printed.
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    pub secrets: Vec<String>,
    pub tolerance: Duration,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

/// Where `GET /metrics` is served and who may read it.
#[derive(Debug, Clone, Default)]
pub enum MetricsAccess {
    /// On the API's listener, to anyone who can reach it.
    #[default]
    Open,
    /// On the API's listener, to requests with `Authorization: Bearer <token>` (the token's
    /// hash is kept).
    Token(domain::user::SecretHash),
    /// Only on a listener of its own (`api::metrics_router`), not on the API's.
    SeparateListener,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8080".into(),
            session_ttl: Duration::from_secs(12 * 3600),
            introspection: true,
            max_body_bytes: 64 * 1024,
            max_depth: 10,
            max_complexity: 10_000,
            max_aliases: 30,
            max_batch: 10,
            consistency_timeout: Duration::from_secs(2),
            ws_init_timeout: Duration::from_secs(3),
            ws_keepalive: Duration::from_secs(30),
            auth_attempts: 10,
            auth_window: Duration::from_secs(60),
            close_retention_days: 30,
            metrics: MetricsAccess::Open,
            trusted_proxies: crate::client_ip::TrustedProxies::default(),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 1_024,
            max_mutations: 10,
            anonymous_answer_floor: Duration::from_millis(400),
            max_tenants_per_user: 10,
            header_read_timeout: Duration::from_secs(10),
            payment_grace: Duration::from_secs(7 * 24 * 3600),
            usage_rules: commands::metering::IngestRules::default(),
            stripe_webhook: WebhookSecrets {
                secrets: Vec::new(),
                tolerance: Duration::from_secs(300),
            },
            webhooks_allow_http: false,
        }
    }
}

#[derive(Debug)]
pub struct Services {
    pub executor: Executor,
    pub read_db: ReadDb,
    pub vault: Arc<dyn PersonalData>,
    pub credentials: Arc<dyn domain::credentials::Credentials>,
    pub codes: Arc<dyn domain::credentials::OneTimeCodes>,
    /// Used by the mail outbox only (`commands::mail`), never on a request's path.
    pub mailer: Arc<dyn Mailer>,
    /// The payment provider (Stripe); `None` in local mode. Called by the payments reactor,
    /// and on a request's path only for a SetupIntent.
    pub payments: Option<Arc<dyn domain::payments::Payments>>,
    /// Usage against period allowances (the usage read model).
    pub usage: Arc<dyn domain::usage::UsageFigures>,
    /// Tenant webhooks: signing secrets and posts.
    pub webhooks: Arc<dyn domain::webhook::Webhooks>,
    pub signer: Arc<dyn domain::session_token::SessionTokens>,
    pub key_usage: Arc<dyn domain::key_usage::KeyUsage>,
    pub config: ApiConfig,
    pub limiter: RateLimiter,
    /// Failed log-ins per client and account, with growing delays.
    pub backoff: crate::rate_limit::FailureBackoff,
    /// Hourly quotas on mails and invitations.
    pub quotas: crate::rate_limit::Quotas,
    /// Slots for password hashing (about one per core): a request that finds none is
    /// answered RATE_LIMITED at once instead of queueing behind the hashes.
    pub hashing: Arc<tokio::sync::Semaphore>,
    pub metrics: Metrics,
    pub updates: Updates,
    /// Blind indexes of the operators' e-mail addresses.
    pub operators: HashSet<Uuid>,
    /// Serialises one user's tenant creations in this process, so the tenants-per-user
    /// quota is counted after the previous creation is in the read model.
    pub founding: crate::rate_limit::StripedLocks,
    /// The audit area's ports: entries, digest signing, export destinations and progress.
    pub audit: AuditServices,
    /// When each kind of refusal was last recorded (see [`Services::record_refusal`]).
    pub refusals: Arc<std::sync::Mutex<HashMap<String, std::time::Instant>>>,
    /// Refusal records being written at once (beyond, they are dropped: a flood of refused
    /// requests must not become a queue of writes).
    pub refusal_writes: Arc<tokio::sync::Semaphore>,
}

/// What the audit area needs besides the write path.
#[derive(Debug, Clone)]
pub struct AuditServices {
    pub entries: Arc<dyn domain::audit::AuditEntries>,
    pub signer: Arc<dyn domain::audit::export::DigestSigner>,
    pub destinations: Arc<infra::audit::ExportDestinations>,
    pub progress: Arc<ExportProgressBoard>,
}

/// The progress of the exports running in this process (`tenant { auditExports }`).
#[derive(Debug, Default)]
pub struct ExportProgressBoard(std::sync::Mutex<HashMap<Uuid, (u64, u64)>>);

impl ExportProgressBoard {
    /// Entries done and in all, while the export runs in this process.
    pub fn of(&self, export: Uuid) -> Option<(u64, u64)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&export)
            .copied()
    }
}

impl domain::audit::export::ExportProgress for ExportProgressBoard {
    fn report(&self, export_id: Uuid, done: u64, total: u64) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(export_id, (done, total));
    }
}

/// The request's origin, for rate limits and (sealed) event metadata.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub request_id: String,
    /// The mutation field being resolved: idempotency keys are scoped by it, so one key
    /// reused for another mutation is another command, never a replay of the first.
    pub operation: String,
    /// A digest of the mutation's arguments (its idempotency key aside), stored with what it
    /// writes: the same key with other arguments is refused.
    pub fingerprint: Option<String>,
}

/// How often one caller's same refusal is recorded: a flood of refused requests must not
/// become a flood of writes.
pub const REFUSAL_RECORD_INTERVAL: Duration = Duration::from_secs(10);

impl Services {
    /// Records a refused request in `tenant`'s audit trail (the platform's when `None`),
    /// at most once per [`REFUSAL_RECORD_INTERVAL`] for the same caller, tenant, code and
    /// operation, in the background: the answer never waits for it.
    /// `from` (the client's address) only tells anonymous callers apart; it is not written.
    pub fn record_refusal(
        &self,
        actor: Actor,
        from: Option<IpAddr>,
        tenant: Option<domain::ids::TenantId>,
        code: &str,
        operation: &str,
    ) {
        let key = format!("{actor:?}/{from:?}/{tenant:?}/{code}/{operation}");
        {
            let mut seen = self
                .refusals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = std::time::Instant::now();
            if seen
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < REFUSAL_RECORD_INTERVAL)
            {
                return;
            }
            if seen.len() > 10_000 {
                seen.retain(|_, at| now.duration_since(*at) < REFUSAL_RECORD_INTERVAL);
                if seen.len() > 10_000 {
                    return;
                }
            }
            seen.insert(key, now);
        }
        let Ok(permit) = self.refusal_writes.clone().try_acquire_owned() else {
            return;
        };
        let exec = self.executor.clone();
        let (code, operation) = (code.to_owned(), operation.to_owned());
        tokio::spawn(async move {
            let _permit = permit;
            // Only a member's refusal goes into the tenant's trail (anyone can name any
            // tenant); anyone else's into the platform's.
            let tenant = match (tenant, &actor) {
                (Some(t), Actor::User { id }) => exec
                    .load::<domain::access::TenantAccess>(t.as_uuid())
                    .await
                    .ok()
                    .filter(|a| a.state.members.contains_key(id))
                    .map(|_| t),
                (Some(t), Actor::ApiKey { id }) => exec
                    .load::<domain::access::TenantAccess>(t.as_uuid())
                    .await
                    .ok()
                    .filter(|a| a.state.api_keys.contains_key(id))
                    .map(|_| t),
                _ => None,
            };
            let ctx = CommandContext::new(actor);
            if let Err(e) = commands::audit::record_refusal(
                &exec,
                &ctx,
                chrono::Utc::now(),
                tenant,
                &code,
                &operation,
            )
            .await
            {
                tracing::warn!(error = %e, code, operation, "could not record a refusal in the audit trail");
            }
        });
    }

    /// A password-hashing slot for the length of one use case, or RATE_LIMITED now.
    pub fn hashing_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.hashing
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::RateLimited {
                retry_after_secs: 1,
            })
    }

    pub fn email_index(&self, email: &domain::user::Email) -> Uuid {
        commands::identity::email_index(self.vault.as_ref(), email)
    }

    /// A command context for `actor`: the command id comes from the caller's idempotency key
    /// (scoped to `caller`, so two callers' keys never meet) or is fresh; the IP is sealed
    /// under `subject`'s key.
    pub async fn context(
        &self,
        actor: Actor,
        caller: Uuid,
        idempotency_key: Option<Uuid>,
        subject: Option<SubjectId>,
        meta: &RequestMeta,
    ) -> Result<CommandContext, ApiError> {
        let ctx = CommandContext::from_request(actor, caller, &meta.operation, idempotency_key)
            .with_fingerprint(
                idempotency_key
                    .is_some()
                    .then(|| meta.fingerprint.clone())
                    .flatten(),
            );
        match subject {
            Some(subject) => self.with_sealed_ip(ctx, subject, meta).await,
            None => Ok(ctx),
        }
    }

    /// Records the request's IP address, sealed under `subject`'s key.
    pub async fn with_sealed_ip(
        &self,
        ctx: CommandContext,
        subject: SubjectId,
        meta: &RequestMeta,
    ) -> Result<CommandContext, ApiError> {
        match meta.ip {
            Some(ip) => {
                let sealed = self.vault.seal(subject, &ip.to_string()).await?;
                Ok(ctx.from_ip(sealed.as_str()))
            }
            None => Ok(ctx),
        }
    }

    /// Counts a command's outcome in the metrics (`ok`, `replayed`, `refused` by the domain,
    /// `conflict`, `error`) and turns its error into the API's.
    pub fn counted<T, E>(
        &self,
        aggregate: &'static str,
        result: Result<T, CommandError<E>>,
    ) -> Result<T, ApiError>
    where
        T: AsRef<CommandOutcome>,
        E: std::error::Error + Into<ApiError> + 'static,
    {
        let outcome = match &result {
            Ok(done) if done.as_ref().replayed => "replayed",
            Ok(_) => "ok",
            Err(CommandError::Rejected(_)) => "refused",
            Err(CommandError::Contention { .. } | CommandError::IdempotencyKeyReused { .. }) => {
                "conflict"
            }
            Err(_) => "error",
        };
        self.metrics.command(aggregate, outcome);
        result.map_err(ApiError::from)
    }

    /// Waits (bounded) until the read models reached `position`. Woken by the runners'
    /// commit announcements rather than by polling alone (a short poll stays as a fallback,
    /// for runners in other processes).
    async fn caught_up(&self, position: Position, read_models: &[&str]) -> Result<(), ApiError> {
        use projections::read_your_writes::{WaitError, wait_for};
        let deadline = tokio::time::Instant::now() + self.config.consistency_timeout;
        let mut commits = self.updates.subscribe();
        loop {
            match wait_for(&self.read_db, read_models, position, Duration::ZERO).await {
                Ok(()) => return Ok(()),
                Err(WaitError::NotCaughtUp { .. } | WaitError::Unknown(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    let wake =
                        deadline.min(tokio::time::Instant::now() + Duration::from_millis(20));
                    // Wait for a commit of one of these read models that reached the
                    // position (any lag: check again). Other read models' commits, and
                    // earlier ones, wake nobody: under many concurrent writes each waiter
                    // re-read the checkpoints on every commit of every projection. Read models
                    // that another process projects announce nothing here: the 20 ms tick.
                    let _ = tokio::time::timeout_at(wake, async {
                        loop {
                            match commits.recv().await {
                                Ok(update)
                                    if update.position < position
                                        || !read_models.contains(&update.projection) => {}
                                _ => break,
                            }
                        }
                    })
                    .await;
                }
                Err(_) => {
                    // Past the bound: the full check, for its clear error.
                    return wait_for(&self.read_db, read_models, position, Duration::ZERO)
                        .await
                        .map_err(ApiError::from);
                }
            }
        }
    }

    /// A position a client asked for (`atPosition`, `X-Consistency-Position`): refused at
    /// once when the log has not reached it (no write returned it), else waited for.
    pub async fn reached(&self, position: Position, read_models: &[&str]) -> Result<(), ApiError> {
        let head = self
            .executor
            .store()
            .head()
            .await
            .map_err(ApiError::internal)?;
        if position > head {
            return Err(ApiError::BadInput {
                message: format!(
                    "position {} has not been written yet (the log ends at {})",
                    position.0, head.0
                ),
                field: Some("atPosition"),
            });
        }
        self.caught_up(position, read_models).await
    }

    /// After a mutation's write: waits for the read models its result is read from (and no
    /// other area's) before reading it. Past the bound the error says that the write stands
    /// and where to read it.
    pub async fn written(&self, position: Position, read_models: &[&str]) -> Result<(), ApiError> {
        self.caught_up(position, read_models)
            .await
            .map_err(|error| match error {
                ApiError::Conflict(_) => ApiError::Conflict(format!(
                    "the change was written (position {}), but the read models have not caught up \
                 yet; read it with atPosition {} instead of repeating the mutation",
                    position.0, position.0
                )),
                other => other,
            })
    }

    /// Runs `work` and holds its answer back until the anonymous answer floor has passed
    /// since the start: requests about an address (sign-up, reset, resend) take the same time
    /// whether it has an account or not.
    pub async fn no_sooner_than_the_floor<T>(&self, work: impl Future<Output = T>) -> T {
        let started = tokio::time::Instant::now();
        let answer = work.await;
        tokio::time::sleep_until(started + self.config.anonymous_answer_floor).await;
        answer
    }
}
