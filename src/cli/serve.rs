//! `tenantry serve`: the HTTP server (GraphQL API), the projections, reactors and periodic jobs, with
//! graceful shutdown on SIGTERM or Ctrl-C.

use crate::cli::GlobalArgs;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, env = "TENANTRY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// How often closed tenants are checked for data whose retention period is over.
    #[arg(long, env = "TENANTRY_RETENTION_CHECK_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_check_seconds: u64,
    /// How often subscriptions are checked for a period or grace period that is over.
    #[arg(long, env = "TENANTRY_RENEWAL_CHECK_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub renewal_check_seconds: u64,
    /// Most events a projection applies in one transaction.
    #[arg(long, env = "TENANTRY_PROJECTION_BATCH_SIZE", default_value_t = 1_000)]
    pub projection_batch_size: usize,

    /// Where the master key is kept when `TENANTRY_MASTER_KEY` is not set; generated on first
    /// start. The key itself (32 bytes, base64) is never taken on the command line, where
    /// other users of the machine could read it in the process list: only from the
    /// environment (`TENANTRY_MASTER_KEY`) or this file.
    #[arg(
        long,
        env = "TENANTRY_MASTER_KEY_FILE",
        default_value = "data/master.key"
    )]
    pub master_key_file: PathBuf,

    /// Reverse proxies (addresses or CIDR blocks, comma-separated) whose `Forwarded` or
    /// `X-Forwarded-For` headers name the client. Without any, the peer address is the
    /// client's and those headers are ignored.
    #[arg(long, env = "TENANTRY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<api::client_ip::IpBlock>,

    /// Longest a GraphQL HTTP request may take, its body's upload included (then 408).
    #[arg(long, env = "TENANTRY_REQUEST_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_seconds: u64,
    /// Longest a client may take to send a request's headers, or stay silent on a kept-alive
    /// connection, before the connection is closed (slow clients cannot hold connections).
    #[arg(long, env = "TENANTRY_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_seconds: u64,
    /// GraphQL HTTP requests served at once; more are answered 503 with `Retry-After` at once.
    #[arg(long, env = "TENANTRY_MAX_CONCURRENT_REQUESTS", default_value_t = 1_024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrent_requests: u64,

    /// Serve `GET /metrics` on this address only (for example `127.0.0.1:9100`), not on the
    /// API's listener. Otherwise it is on the API's listener, behind `TENANTRY_METRICS_TOKEN`
    /// when that is set (environment only, like every secret).
    #[arg(long, env = "TENANTRY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// SMTP server for e-mail, as a URL: `smtps://user:password@host:465` (implicit TLS),
    /// `smtp://user:password@host:587` (STARTTLS, required), `smtp://host?tls=opportunistic`,
    /// or plain `smtp://host:25?tls=none` / `host:port` for a relay on a trusted network.
    /// Credentials are refused where they would travel in clear. Give a URL with a password
    /// in the environment (`TENANTRY_SMTP`), not on the command line. Without a server,
    /// e-mails are written as files into --mail-dir.
    #[arg(long, env = "TENANTRY_SMTP", hide_env_values = true)]
    pub smtp: Option<String>,
    /// A PEM CA certificate to trust for the SMTP server's TLS, besides the usual roots (a
    /// private or self-signed mail server).
    #[arg(long, env = "TENANTRY_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// Where e-mails go when no SMTP server is configured.
    #[arg(long, env = "TENANTRY_MAIL_DIR", default_value = "data/mail")]
    pub mail_dir: PathBuf,
    /// The sender of the platform's e-mails.
    #[arg(
        long,
        env = "TENANTRY_MAIL_FROM",
        default_value = "Tenantry <no-reply@tenantry.localhost>"
    )]
    pub mail_from: String,
    /// Stripe's secret API key. Without it billing runs in local mode: plans, trials and
    /// limits work, nothing is charged. Give it in the environment, not on the command line.
    #[arg(long, env = "TENANTRY_STRIPE_API_KEY", hide_env_values = true)]
    pub stripe_api_key: Option<String>,
    /// Another Stripe API address (a Stripe-compatible test server such as localstripe).
    #[arg(long, env = "TENANTRY_STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
    /// Signing secrets of the Stripe webhook endpoint (`whsec_…`; comma-separated: during a
    /// rotation, the old and the new). Without one, `POST /webhooks/stripe` answers 404.
    #[arg(
        long,
        env = "TENANTRY_STRIPE_WEBHOOK_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub stripe_webhook_secrets: Vec<String>,
    /// How far a webhook's signed timestamp may be from now, in seconds.
    #[arg(
        long,
        env = "TENANTRY_STRIPE_WEBHOOK_TOLERANCE_SECONDS",
        default_value_t = 300
    )]
    pub stripe_webhook_tolerance_seconds: u64,
    /// Lets tenants set plain `http://` webhook endpoints (endpoints on a trusted network,
    /// tests); without it only `https://` is accepted.
    #[arg(long, env = "TENANTRY_WEBHOOKS_ALLOW_HTTP")]
    pub webhooks_allow_http: bool,
    /// Where audit exports asked for through the API are written (and downloaded from,
    /// `GET /audit/exports/{tenant}/{export}`), unless `--audit-export-s3` is set.
    #[arg(
        long,
        env = "TENANTRY_AUDIT_EXPORT_DIR",
        default_value = "data/audit-exports"
    )]
    pub audit_export_dir: PathBuf,
    /// Writes audit exports asked for through the API to `s3://bucket/prefix` instead
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; see `--s3-endpoint`).
    #[arg(long, env = "TENANTRY_AUDIT_EXPORT_S3")]
    pub audit_export_s3: Option<String>,
    #[command(flatten)]
    pub s3: crate::cli::s3::S3Args,
    /// How often audit entries beyond their tenant's retention are archived, in seconds.
    #[arg(
        long,
        env = "TENANTRY_AUDIT_ARCHIVE_CHECK_SECONDS",
        default_value_t = 3600
    )]
    pub audit_archive_check_seconds: u64,
    /// How long a retention day lasts, in seconds (tests shorten it).
    #[arg(long, default_value_t = 86_400, hide = true)]
    pub audit_retention_day_seconds: u64,
    /// How long a subscription stays past due after a failed payment before it and its
    /// tenant are suspended, in seconds (604800: 7 days).
    #[arg(
        long,
        env = "TENANTRY_PAYMENT_GRACE_SECONDS",
        default_value_t = 604_800
    )]
    pub payment_grace_seconds: u64,
    /// How far ahead of the server's clock a usage event's timestamp may be, in seconds.
    #[arg(
        long,
        env = "TENANTRY_USAGE_FUTURE_SKEW_SECONDS",
        default_value_t = 300
    )]
    pub usage_future_skew_seconds: u64,
    /// How long after its billing period ended a usage event is still accepted, in seconds
    /// (259200: 3 days); later ones are refused with the reason.
    #[arg(
        long,
        env = "TENANTRY_USAGE_LATE_GRACE_SECONDS",
        default_value_t = 259_200
    )]
    pub usage_late_grace_seconds: u64,
    /// The web app's address; links in e-mails point to it.
    #[arg(
        long,
        env = "TENANTRY_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: String,

    /// E-mail addresses of platform operators (comma-separated): they can list every tenant
    /// and suspend or reactivate tenants.
    #[arg(long, env = "TENANTRY_OPERATORS", value_delimiter = ',')]
    pub operators: Vec<String>,
    /// Serve GraphQL introspection (turn off in production if the schema is private).
    #[arg(long, env = "TENANTRY_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,
    /// Open (not closed) tenants one user may own; `createTenant` beyond it is refused with
    /// PLAN_LIMIT_EXCEEDED.
    #[arg(long, env = "TENANTRY_MAX_TENANTS_PER_USER", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tenants_per_user: u64,
    /// The least time `signUp`, `requestPasswordReset` and `resendVerificationEmail` take to
    /// answer (milliseconds), so that timing does not tell whether an address has an
    /// account. Keep it above the slowest of those requests (a password hash and a write).
    #[arg(
        long,
        env = "TENANTRY_ANONYMOUS_ANSWER_FLOOR_MS",
        default_value_t = 400
    )]
    pub anonymous_answer_floor_ms: u64,
    /// Log-in, sign-up, password-reset and TOTP attempts allowed per minute, per IP address
    /// and per account.
    #[arg(long, env = "TENANTRY_AUTH_ATTEMPTS_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_attempts_per_minute: u32,
    /// How long a session lasts.
    #[arg(long, env = "TENANTRY_SESSION_HOURS", default_value_t = 12,
          value_parser = clap::value_parser!(u64).range(1..=720))]
    pub session_hours: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "TENANTRY_MAX_BODY_BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,
    /// How long a WebSocket may stay open without `connection_init`, in milliseconds.
    #[arg(long, env = "TENANTRY_WS_INIT_TIMEOUT_MS", default_value_t = 3_000)]
    pub ws_init_timeout_ms: u64,
    /// How often WebSockets are pinged; a client silent for three intervals is disconnected.
    #[arg(long, env = "TENANTRY_WS_KEEPALIVE_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ws_keepalive_seconds: u64,
    /// Deepest query accepted.
    #[arg(long, env = "TENANTRY_MAX_QUERY_DEPTH", default_value_t = 10)]
    pub max_query_depth: usize,
    /// Highest query complexity accepted (lists count `first` times their fields).
    #[arg(long, env = "TENANTRY_MAX_QUERY_COMPLEXITY", default_value_t = 10_000)]
    pub max_query_complexity: usize,
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    // Register the handlers before anything else, so a signal that arrives while starting up
    // still shuts down cleanly instead of killing the process.
    let shutdown = shutdown_signal().context("installing signal handlers")?;
    let app = crate::wiring::open(global).await?;
    let updates = tokio::sync::broadcast::channel(1_024).0;
    let mut runner = crate::wiring::runner_config(args.projection_batch_size.max(1));
    runner.updates = Some(updates.clone());
    let services = crate::wiring::api_services(&app, &args, updates).await?;
    // Projections run beside the API; dropping the handle at shutdown stops them (a batch in
    // flight rolls back and is applied again on the next start).
    // Reactors (the mail outbox) run with them, and the periodic jobs each in one process at
    // a time.
    let _background = projections::runner::spawn(
        app.store.clone(),
        app.read_db.clone(),
        api::areas::projectors(&services),
        runner,
    )
    .join(projections::jobs::spawn(
        app.read_db.clone(),
        api::areas::jobs(
            &services,
            api::areas::JobSettings {
                retention_check: std::time::Duration::from_secs(args.retention_check_seconds),
                renewal_check: std::time::Duration::from_secs(args.renewal_check_seconds),
                audit_archive_check: std::time::Duration::from_secs(
                    args.audit_archive_check_seconds,
                ),
                audit_retention_day: std::time::Duration::from_secs(
                    args.audit_retention_day_seconds,
                ),
            },
        ),
    ));
    // Sessions, API keys and tenant access are checked on every request from cached states
    // that this watch keeps current (commands::freshness).
    let log_watch = app.executor.watch_log();
    // Every platform has a free plan; the first process to start publishes it.
    commands::billing::seed_free_plan(&app.executor, chrono::Utc::now())
        .await
        .context("publishing the free plan")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(listen.addr = %addr, "tenantry listening on http://{addr} (GraphQL at /graphql)");
    let state = api::AppState::new(services);
    let metrics_server = match args.metrics_listen {
        Some(address) => {
            let metrics = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("binding --metrics-listen {address}"))?;
            let bound = metrics
                .local_addr()
                .context("reading the metrics address")?;
            tracing::info!(metrics.addr = %bound, "metrics on http://{bound}/metrics");
            Some(tokio::spawn(api::serve_metrics(metrics, state.clone())))
        }
        None => None,
    };
    api::serve(listener, state, shutdown)
        .await
        .context("serving HTTP")?;
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    log_watch.abort();
    tracing::info!("shut down cleanly");
    Ok(())
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed now.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Ctrl-C received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}
