//! Tenantry's HTTP surface: the axum router. For now: liveness (`GET /healthz`) and
//! readiness (`GET /readyz`, which needs the event store's database to answer).
//!
//! Only this crate and the binary name axum; it reaches storage through the ports in
//! `domain`, never through an adapter directly. HTTP statuses are decided here.

mod health;

use axum::Router;
use domain::event_store::EventStore;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What request handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    health::routes().with_state(state)
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
