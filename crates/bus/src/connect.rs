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
    let (servers, credentials) = split_credentials(url);
    loop {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(3));
        if let Some((user, password)) = credentials.clone() {
            options = options.user_and_password(user, password);
        }
        match options.connect(servers.as_str()).await {
            Ok(client) => {
                tracing::info!(url = %servers, attempt, "connected to NATS");
                return Ok(client);
            }
            Err(e) => {
                tracing::warn!(url = %servers, attempt, error = %e, retry_in = ?wait, "cannot connect to NATS yet");
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

/// Takes `user:password@` out of NATS URLs (comma-separated), since the
/// client does not read credentials from the URL; the first URL that has
/// them gives them. The returned URLs carry no secret, so they can be logged.
pub fn split_credentials(urls: &str) -> (String, Option<(String, String)>) {
    let mut credentials = None;
    let clean: Vec<String> = urls
        .split(',')
        .map(|u| {
            let u = u.trim();
            let (scheme, rest) = match u.split_once("://") {
                Some((s, r)) => (format!("{s}://"), r),
                None => (String::new(), u),
            };
            match rest.rsplit_once('@') {
                Some((userinfo, host)) => {
                    if credentials.is_none() {
                        let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                        credentials = Some((user.to_string(), pass.to_string()));
                    }
                    format!("{scheme}{host}")
                }
                None => u.to_string(),
            }
        })
        .collect();
    (clean.join(","), credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_go_to_the_options() {
        assert_eq!(
            split_credentials("nats://svc:p%40ss:w@nats:4222, nats://other:4222"),
            (
                "nats://nats:4222,nats://other:4222".to_string(),
                Some(("svc".to_string(), "p%40ss:w".to_string()))
            )
        );
        assert_eq!(
            split_credentials("nats://127.0.0.1:4222"),
            ("nats://127.0.0.1:4222".to_string(), None)
        );
    }
}
