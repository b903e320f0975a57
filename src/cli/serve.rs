//! `tenantry serve`: the HTTP server, with graceful shutdown on SIGTERM or Ctrl-C.

use crate::cli::GlobalArgs;
use anyhow::Context;
use std::net::SocketAddr;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, env = "TENANTRY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// How often closed tenants are checked for data whose retention period is over.
    #[arg(long, env = "TENANTRY_RETENTION_CHECK_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_check_seconds: u64,
    /// Most events a projection applies in one transaction.
    #[arg(long, env = "TENANTRY_PROJECTION_BATCH_SIZE", default_value_t = 1_000)]
    pub projection_batch_size: usize,
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    // Register the handlers before anything else, so a signal that arrives while starting up
    // still shuts down cleanly instead of killing the process.
    let shutdown = shutdown_signal().context("installing signal handlers")?;
    let app = crate::wiring::open(global).await?;
    // Projections run beside the API; dropping the handle at shutdown stops them (a batch in
    // flight rolls back and is applied again on the next start).
    let _projections = projections::runner::spawn(
        app.store.clone(),
        app.read_db.clone(),
        crate::wiring::projectors(),
        crate::wiring::runner_config(args.projection_batch_size.max(1)),
    );
    // Reactors: their command ids derive from the causing events, so running them in every
    // process is safe.
    let retention = tokio::spawn(commands::reactors::tenant_data_retention::run(
        app.executor.clone(),
        std::time::Duration::from_secs(args.retention_check_seconds),
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(listen.addr = %addr, "tenantry listening on http://{addr}");
    api::serve(listener, api::AppState { store: app.store }, shutdown)
        .await
        .context("serving HTTP")?;
    retention.abort();
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
