//! Connecting to NATS: retry with exponential backoff until the broker
//! answers or shutdown is asked for; once connected, async-nats reconnects
//! by itself.

use std::time::Duration;

use crate::{Error, Shutdown};

/// Connects, retrying with backoff (100 ms doubling to 5 s), logging each
/// failure. Returns `ShuttingDown` if the shutdown flag is set first.
pub async fn connect(
    url: &str,
    name: &str,
    shutdown: &Shutdown,
) -> Result<async_nats::Client, Error> {
    let mut wait = Duration::from_millis(100);
    let mut attempt = 1u32;
    loop {
        let options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(3));
        match options.connect(url).await {
            Ok(client) => {
                tracing::info!(%url, attempt, "connected to NATS");
                return Ok(client);
            }
            Err(e) => {
                tracing::warn!(%url, attempt, error = %e, retry_in = ?wait, "cannot connect to NATS yet");
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return Err(Error::ShuttingDown),
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(5));
        attempt += 1;
    }
}
