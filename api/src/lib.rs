//! Tenantry's HTTP surface: the axum router with the GraphQL API (`POST /graphql`, GraphiQL
//! on `GET /graphql`, subscriptions over `graphql-transport-ws` at `/graphql/ws`), liveness and
//! readiness (`/healthz`, `/readyz`), Prometheus metrics (`/metrics`), Stripe's webhooks
//! (`POST /webhooks/stripe`, [`webhooks`]) and usage events as NDJSON (`POST /usage/events`,
//! [`ingest`]).
//!
//! Layout: [`graphql`] holds the schema (one object per area, merged), [`auth`] resolves
//! callers and checks tenant permissions, [`error`] is the one place failures become
//! `extensions.code`, [`http`] and [`ws`] are the transports, [`services`] what resolvers
//! share, [`rate_limit`] and [`metrics`] what they say they are.
//!
//! Only this crate and the binary name axum and async-graphql. It reaches the event store
//! through the write path (`commands`) and read models through `projections`' scoped
//! queries; HTTP statuses and error codes are decided here.

pub mod areas;
pub mod audit_download;
pub mod auth;
pub mod client_ip;
pub mod error;
pub mod graphql;
mod health;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod rate_limit;
pub mod services;
pub mod webhooks;
pub mod ws;

use axum::Router;
use axum::routing::get;
use graphql::TenantrySchema;
use services::Services;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub schema: TenantrySchema,
    /// Parsed documents, shared by every connection.
    pub documents: Arc<http::Documents>,
    /// Slots for HTTP requests in flight (`ApiConfig::max_concurrent_requests`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Open WebSockets per client address and per caller.
    pub sockets: Arc<ws::SocketCounts>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(services: Services) -> Self {
        let services = Arc::new(services);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(
            services.config.max_concurrent_requests.max(1),
        ));
        Self {
            schema: graphql::schema(services.clone()),
            services,
            documents: Arc::default(),
            in_flight,
            sockets: Arc::default(),
        }
    }
}

/// The whole router. `/metrics` is on it unless it has a listener of its own.
pub fn router(state: AppState) -> Router {
    // The GraphQL routes run under the timeout and the concurrency limit; health checks and
    // metrics answer even when the API is full.
    let limited = Router::new()
        .route("/graphql", get(http::graphiql).post(http::graphql))
        .route("/graphql/ws", get(ws::upgrade))
        .route("/webhooks/stripe", axum::routing::post(webhooks::stripe))
        .route("/usage/events", axum::routing::post(ingest::usage_events))
        .route(
            "/audit/exports/{tenant}/{export}",
            get(audit_download::entries),
        )
        .route(
            "/audit/exports/{tenant}/{export}/digest",
            get(audit_download::digest),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::limits,
        ));
    let mut router = limited;
    if !matches!(
        state.services.config.metrics,
        services::MetricsAccess::SeparateListener
    ) {
        router = router.route("/metrics", get(http::metrics));
    }
    router
        .merge(health::routes())
        .layer(axum::middleware::from_fn(http::request_id))
        .with_state(state)
}

/// Serves `GET /metrics` alone on a listener of its own (`--metrics-listen`).
pub async fn serve_metrics(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(http::metrics))
        .with_state(state);
    axum::serve(listener, router).await
}

/// Serves until `shutdown` completes, then lets in-flight requests finish (for at most the
/// request timeout).
///
/// Its own accept loop rather than `axum::serve`, for one thing that one lacks: a bound on
/// how long a client may take to send a request's headers (`ApiConfig::header_read_timeout`,
/// which also closes a kept-alive connection that stays silent). Request bodies and
/// handling are bounded by the request timeout; WebSockets upgrade as before.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let header_timeout = state.services.config.header_read_timeout;
    let drain_for = state.services.config.request_timeout;
    let router = router(state);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little instead of spinning.
                    tracing::warn!(error = %error, "could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Finished connections leave the set as new ones come.
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            let mut router = router.clone();
            async move { tower_service::Service::call(&mut router, request).await }
        });
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(error = %error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(drain_for, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "connections still open after the drain period; closing them"
        );
    }
    Ok(())
}
