//! intake: the front door. It accepts ticket events (HTTP, gRPC, NATS),
//! validates them, masks personal identifiers, de-duplicates, and publishes
//! facts; it takes operators' commands and serves the incident projection,
//! a live event stream and the console. It never decides reportability:
//! that is the classifier's.

pub mod auth;
pub mod console;
pub mod grpc;
pub mod http;
pub mod nats_door;
pub mod ops;
pub mod watch;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use nisvakt_bus::config::CommonArgs;

/// The front door of nisvakt: tickets in, operator commands, incident views.
#[derive(Debug, Clone, Parser)]
#[command(name = "nisvakt-intake", version, about, long_about = None)]
pub struct Config {
    /// Options shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address of the REST API, the event stream and the console.
    #[arg(long, env = "NISVAKT_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Address of the gRPC API (`nisvakt.v1.Intake`).
    #[arg(long, env = "NISVAKT_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Largest accepted request body in bytes; larger bodies get 413.
    #[arg(long, env = "NISVAKT_MAX_BODY_BYTES", default_value_t = 262_144)]
    pub max_body_bytes: usize,

    /// Bearer tokens per role: `ticketing=…,operator=…,viewer=…` (a role may
    /// appear several times). With neither this nor the webhook secret set,
    /// intake runs OPEN: every request is allowed (for a laptop only).
    #[arg(long, env = "NISVAKT_TOKENS", hide_env_values = true)]
    pub tokens: Option<auth::Secret>,

    /// Secret for `X-Nisvakt-Signature: sha256=<hex HMAC-SHA256 of the
    /// body>` on `POST /v1/tickets`; a valid signature grants `ticketing`.
    #[arg(long, env = "NISVAKT_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<auth::Secret>,

    /// How long a request waits for the broker before it gets 503.
    #[arg(long, env = "NISVAKT_PERSIST_TIMEOUT_MS", default_value_t = 3000)]
    pub persist_timeout_ms: u64,
}

/// The admin address when none is configured.
pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9100);

/// Runs intake until `shutdown`: binds HTTP and gRPC, connects, serves.
pub async fn run(config: Config, shutdown: nisvakt_bus::Shutdown) -> anyhow::Result<()> {
    let auth = auth::Auth::from_config(config.tokens.as_ref(), config.webhook_secret.as_ref())?;
    if auth.is_open() {
        tracing::warn!(
            "AUTHENTICATION IS OFF: neither NISVAKT_TOKENS nor NISVAKT_WEBHOOK_SECRET is set, \
             so anyone who reaches this port may submit tickets and act on incidents. \
             Fine on a laptop; never in production."
        );
    }
    // Bind first so a busy port is reported before anything else happens.
    let http_listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding NISVAKT_HTTP_ADDR {}: {e}", config.http_addr))?;
    let grpc_listener = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding NISVAKT_GRPC_ADDR {}: {e}", config.grpc_addr))?;
    tracing::info!(addr = ?http_listener.local_addr().ok(), "HTTP API listening");
    tracing::info!(addr = ?grpc_listener.local_addr().ok(), "gRPC API listening");

    let rt = nisvakt_bus::Runtime::start("intake", &config.common, DEFAULT_ADMIN, shutdown.clone())
        .await?;
    let intake = ops::Intake::new(
        rt.clone(),
        Duration::from_millis(config.persist_timeout_ms.max(1)),
    )
    .await?;
    let hub = watch::Hub::start(rt.client.clone(), shutdown.clone()).await?;
    let door = nats_door::start(
        rt.client.clone(),
        intake.clone(),
        config.max_body_bytes,
        shutdown.clone(),
    )
    .await?;

    let http = http::serve(
        http_listener,
        http::AppState {
            intake: intake.clone(),
            hub: hub.clone(),
            max_body_bytes: config.max_body_bytes,
            auth: auth.clone(),
        },
        shutdown.clone(),
    );
    let grpc = grpc::serve(grpc_listener, intake.clone(), hub, auth, shutdown.clone());
    let (h, g) = tokio::join!(http, grpc);
    let _ = door.await;
    rt.close().await;
    h?;
    g?;
    Ok(())
}
