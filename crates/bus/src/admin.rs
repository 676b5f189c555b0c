//! The admin server every service runs on its admin address:
//! `/healthz` (the process is alive), `/readyz` (NATS is connected and the
//! streams exist) and `/metrics` (Prometheus text).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::{Metrics, Shutdown};

/// Answers whether the service can do its work now.
pub type ReadyCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    ready: ReadyCheck,
}

/// The admin routes, to be served alone or merged into a larger router.
pub fn router(metrics: Metrics, ready: ReadyCheck) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { metrics, ready })
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if (s.ready)().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// A readiness check over a NATS client: connected and every stream there.
pub fn nats_ready(client: async_nats::Client) -> ReadyCheck {
    Arc::new(move || {
        let client = client.clone();
        Box::pin(async move {
            if client.connection_state() != async_nats::connection::State::Connected {
                return false;
            }
            let js = async_nats::jetstream::new(client);
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                crate::topology::exists(&js),
            )
            .await
            .unwrap_or(false)
        })
    })
}

/// Serves the admin routes on `listener` until shutdown.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: ReadyCheck,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, ready))
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
