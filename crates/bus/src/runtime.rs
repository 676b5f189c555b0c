//! The start and stop every service shares: connect, ensure the topology,
//! serve the admin routes, then hand the service its handles. The order is
//! the house rule: config → telemetry → connect → topology → serve.

use std::net::SocketAddr;
use std::sync::Arc;

use async_nats::jetstream;
use tokio::net::TcpListener;

use crate::config::CommonArgs;
use crate::{Clock, Error, Metrics, Publisher, Shutdown, SystemClock};

/// What a running service holds.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The service's name, e.g. `classifier`.
    pub service: &'static str,
    /// The NATS client.
    pub client: async_nats::Client,
    /// JetStream.
    pub js: jetstream::Context,
    /// The publisher stamping this service as source.
    pub publisher: Publisher,
    /// Metrics shown on `/metrics`.
    pub metrics: Metrics,
    /// The process's shutdown flag.
    pub shutdown: Shutdown,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Where the admin server listens, when it runs.
    pub admin_addr: Option<SocketAddr>,
}

impl Runtime {
    /// Binds the admin listener, connects, ensures streams and buckets and
    /// starts the admin server.
    pub async fn start(
        service: &'static str,
        common: &CommonArgs,
        default_admin: SocketAddr,
        shutdown: Shutdown,
    ) -> Result<Runtime, Error> {
        let admin = common.admin_addr.unwrap_or(default_admin);
        let listener = TcpListener::bind(admin)
            .await
            .map_err(|e| Error::Nats(format!("binding admin address {admin}: {e}")))?;
        let admin_addr = listener.local_addr().ok();
        tracing::info!(service, addr = ?admin_addr, "admin server listening");
        let client =
            crate::connect::connect(&common.nats_url, &format!("nisvakt-{service}"), &shutdown)
                .await?;
        let js = jetstream::new(client.clone());
        crate::topology::ensure(&js).await?;
        let metrics = Metrics::default();
        metrics.set("nisvakt_up", &[("service", service)], 1.0);
        let ready = crate::admin::nats_ready(client.clone());
        tokio::spawn(crate::admin::serve(
            listener,
            metrics.clone(),
            ready,
            shutdown.clone(),
        ));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(Runtime {
            service,
            publisher: Publisher::new(js.clone(), service, clock.clone()),
            client,
            js,
            metrics,
            shutdown,
            clock,
            admin_addr,
        })
    }

    /// Runs `handler(ctx, delivery)` over the durable consumer `spec` until
    /// shutdown: the service's consumer loop with its publisher (for dead
    /// letters), metrics and shutdown flag.
    pub async fn consume<C, H, Fut>(
        &self,
        spec: crate::consume::ConsumerSpec,
        ctx: Arc<C>,
        handler: H,
    ) -> Result<(), Error>
    where
        H: Fn(Arc<C>, crate::Delivery) -> Fut,
        Fut: std::future::Future<Output = Result<(), crate::HandleError>>,
    {
        crate::consume::run(
            self.publisher.clone(),
            self.service,
            spec,
            self.metrics.clone(),
            self.shutdown.clone(),
            move |d| handler(ctx.clone(), d),
        )
        .await
    }

    /// Flushes the connection so every publish left the process.
    pub async fn close(self) {
        if let Err(e) = self.client.flush().await {
            tracing::warn!(error = %e, "flush on shutdown failed");
        }
        tracing::info!(service = self.service, "stopped cleanly");
    }
}
