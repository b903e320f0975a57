//! The one place adapters are built from configuration.

use crate::cli::GlobalArgs;
use anyhow::Context;
use commands::Executor;
use domain::event_store::EventStore;
use infra::database::{Database, DatabaseOptions, redact};
use projections::ReadDb;
use projections::runner::RunnerConfig;
use std::sync::Arc;

/// The environment variable that carries the master key (never a command-line flag).
pub const MASTER_KEY_ENV: &str = "TENANTRY_MASTER_KEY";

/// Everything a running role needs.
#[derive(Debug)]
pub struct App {
    pub database: Database,
    pub store: Arc<dyn EventStore>,
    /// The write path (with snapshots).
    pub executor: Executor,
    pub read_db: ReadDb,
}

/// Connects to the configured database and migrates it.
pub async fn open_database(global: &GlobalArgs) -> anyhow::Result<Database> {
    let options = DatabaseOptions {
        max_connections: global.max_connections,
        ..DatabaseOptions::default()
    };
    let database = Database::open(&global.database_url, &options)
        .await
        .with_context(|| format!("opening {}", redact(&global.database_url)))?;
    tracing::info!(
        database.url = %redact(&global.database_url),
        database.backend = database.backend_name(),
        "database ready (migrations applied)"
    );
    Ok(database)
}

pub async fn open(global: &GlobalArgs) -> anyhow::Result<App> {
    assemble(open_database(global).await?).await
}

/// The store, the write path and the read models over an open database.
pub async fn assemble(database: Database) -> anyhow::Result<App> {
    let store = database
        .event_store()
        .await
        .context("starting the event store")?;
    let executor = Executor::new(store.clone()).with_snapshots(database.snapshot_store());
    Ok(App {
        database: database.clone(),
        store,
        executor,
        read_db: database.read_db(),
    })
}

pub fn runner_config(batch_size: usize) -> RunnerConfig {
    RunnerConfig {
        batch_size,
        ..RunnerConfig::default()
    }
}

/// The API's collaborators: the vault and session signer (from the master key), the mailer
/// (SMTP, or files when none is configured) and the operators.
/// The environment variable that carries the metrics token (never a command-line flag).
pub const METRICS_TOKEN_ENV: &str = "TENANTRY_METRICS_TOKEN";

/// Where `/metrics` is served and who may read it: on a listener of its own, behind the
/// token, or open (a warning says so).
fn metrics_access(
    args: &crate::cli::serve::ServeArgs,
    credentials: &dyn domain::credentials::Credentials,
) -> anyhow::Result<api::services::MetricsAccess> {
    use api::services::MetricsAccess;
    let token = std::env::var(METRICS_TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty());
    Ok(match (args.metrics_listen, token) {
        (Some(_), _) => MetricsAccess::SeparateListener,
        (None, Some(token)) => {
            anyhow::ensure!(
                token.trim().len() >= 16,
                "{METRICS_TOKEN_ENV} must be at least 16 characters"
            );
            MetricsAccess::Token(credentials.hash_token(token.trim()))
        }
        (None, None) => {
            tracing::warn!(
                "GET /metrics is open on the API's listener; set {METRICS_TOKEN_ENV} or --metrics-listen to restrict it"
            );
            MetricsAccess::Open
        }
    })
}

/// The payment provider: Stripe when a key is configured, else none (local mode).
fn payments(
    args: &crate::cli::serve::ServeArgs,
) -> anyhow::Result<Option<Arc<dyn domain::payments::Payments>>> {
    let Some(key) = args
        .stripe_api_key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
    else {
        tracing::info!("no Stripe key configured: billing runs in local mode (nothing is charged)");
        return Ok(None);
    };
    let stripe = infra::stripe::StripePayments::new(key.trim(), args.stripe_api_base.as_deref())
        .context("configuring Stripe")?;
    if args.stripe_webhook_secrets.is_empty() {
        tracing::warn!(
            "Stripe is configured without a webhook secret: payment outcomes will not reach Tenantry"
        );
    }
    tracing::info!(
        stripe.api_base = args
            .stripe_api_base
            .as_deref()
            .unwrap_or("https://api.stripe.com"),
        "billing through Stripe"
    );
    Ok(Some(Arc::new(stripe)))
}

/// The audit area's ports: exports asked for through the API go to `--audit-export-s3`
/// when set, else under `--audit-export-dir`.
async fn audit_services(
    app: &App,
    args: &crate::cli::serve::ServeArgs,
    master: &infra::crypto::MasterKey,
) -> anyhow::Result<api::services::AuditServices> {
    let s3 = match args
        .audit_export_s3
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        None => None,
        Some(url) => {
            let (bucket, prefix) = infra::s3::parse_url(url.trim()).with_context(|| {
                format!("--audit-export-s3 {url:?}: expected s3://bucket/prefix")
            })?;
            Some((args.s3.settings()?.client(), bucket, prefix))
        }
    };
    Ok(api::services::AuditServices {
        entries: Arc::new(projections::audit::AuditFromReadModel::new(
            app.read_db.clone(),
        )),
        signer: Arc::new(infra::audit::Ed25519Signer::new(master)),
        destinations: Arc::new(infra::audit::ExportDestinations {
            dir: args.audit_export_dir.clone(),
            s3,
        }),
        progress: Arc::default(),
    })
}

pub async fn api_services(
    app: &App,
    args: &crate::cli::serve::ServeArgs,
    updates: projections::runner::Updates,
) -> anyhow::Result<api::services::Services> {
    use domain::personal_data::PersonalData;
    use infra::crypto::{MasterKey, SessionSigner, SubjectKeyVault};
    let (master, source) = MasterKey::load(
        std::env::var(MASTER_KEY_ENV).ok().as_deref(),
        &args.master_key_file,
    )
    .context("loading the master key")?;
    match source {
        infra::crypto::KeySource::Generated => tracing::warn!(
            key.file = %args.master_key_file.display(),
            "generated a new master key (owner-only file); back it up: without it, personal data cannot be read"
        ),
        infra::crypto::KeySource::File => {
            tracing::info!(key.file = %args.master_key_file.display(), "master key loaded from file")
        }
        infra::crypto::KeySource::Configured => {
            tracing::info!("master key taken from configuration")
        }
    }
    let vault = Arc::new(SubjectKeyVault::new(app.database.clone(), &master));
    let mailer: Arc<dyn domain::mailer::Mailer> = match &args.smtp {
        Some(url) => {
            let ca = match &args.smtp_ca_file {
                Some(path) => Some(
                    std::fs::read(path)
                        .with_context(|| format!("reading --smtp-ca-file {}", path.display()))?,
                ),
                None => None,
            };
            // The URL may hold a password: errors name what is wrong, never the URL.
            Arc::new(infra::smtp::SmtpMailer::from_url(
                url,
                &args.mail_from,
                ca.as_deref(),
            )?)
        }
        None => {
            tracing::info!(mail.dir = %args.mail_dir.display(), "no SMTP server configured; e-mails are written to files");
            Arc::new(infra::mail_files::FileMailer::new(
                &args.mail_dir,
                &args.mail_from,
            ))
        }
    };
    let mut operators = std::collections::HashSet::new();
    for address in args
        .operators
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
    {
        let email = domain::user::Email::parse(address)
            .map_err(|e| anyhow::anyhow!("--operators: {address:?}: {e}"))?;
        operators.insert(vault.blind_index("email", email.as_str()));
    }
    let credentials: Arc<dyn domain::credentials::Credentials> =
        Arc::new(infra::crypto::Argon2Credentials);
    let config = api::services::ApiConfig {
        public_url: args.public_url.clone(),
        session_ttl: std::time::Duration::from_secs(args.session_hours * 3600),
        introspection: args.introspection,
        max_body_bytes: args.max_body_bytes,
        max_depth: args.max_query_depth,
        max_complexity: args.max_query_complexity,
        auth_attempts: args.auth_attempts_per_minute,
        ws_init_timeout: std::time::Duration::from_millis(args.ws_init_timeout_ms),
        ws_keepalive: std::time::Duration::from_secs(args.ws_keepalive_seconds),
        metrics: metrics_access(args, credentials.as_ref())?,
        trusted_proxies: api::client_ip::TrustedProxies(args.trusted_proxies.clone()),
        request_timeout: std::time::Duration::from_secs(args.request_timeout_seconds),
        max_concurrent_requests: usize::try_from(args.max_concurrent_requests)
            .unwrap_or(usize::MAX),
        anonymous_answer_floor: std::time::Duration::from_millis(args.anonymous_answer_floor_ms),
        max_tenants_per_user: args.max_tenants_per_user,
        header_read_timeout: std::time::Duration::from_secs(args.header_read_timeout_seconds),
        payment_grace: std::time::Duration::from_secs(args.payment_grace_seconds),
        usage_rules: commands::metering::IngestRules {
            future_skew: chrono::Duration::seconds(
                i64::try_from(args.usage_future_skew_seconds).unwrap_or(i64::MAX),
            ),
            late_grace: chrono::Duration::seconds(
                i64::try_from(args.usage_late_grace_seconds).unwrap_or(i64::MAX),
            ),
        },
        stripe_webhook: api::services::WebhookSecrets {
            secrets: args
                .stripe_webhook_secrets
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            tolerance: std::time::Duration::from_secs(args.stripe_webhook_tolerance_seconds),
        },
        webhooks_allow_http: args.webhooks_allow_http,
        ..api::services::ApiConfig::default()
    };
    Ok(api::services::Services {
        executor: app.executor.clone(),
        read_db: app.read_db.clone(),
        vault,
        credentials,
        codes: Arc::new(infra::crypto::TotpCodes),
        mailer,
        payments: payments(args)?,
        usage: Arc::new(projections::usage::UsageFromReadModel::new(
            app.read_db.clone(),
        )),
        webhooks: Arc::new(
            infra::webhooks::HttpWebhooks::new(&master).context("configuring tenant webhooks")?,
        ),
        signer: Arc::new(SessionSigner::new(&master)),
        key_usage: Arc::new(infra::key_usage::DbKeyUsage::new(app.database.clone())),
        limiter: api::rate_limit::RateLimiter::new(config.auth_attempts, config.auth_window),
        backoff: api::rate_limit::FailureBackoff::default(),
        quotas: api::rate_limit::Quotas::default(),
        hashing: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )),
        metrics: api::metrics::Metrics::default(),
        updates,
        operators,
        founding: api::rate_limit::StripedLocks::default(),
        audit: audit_services(app, args, &master).await?,
        refusals: Arc::default(),
        refusal_writes: Arc::new(tokio::sync::Semaphore::new(16)),
        config,
    })
}
