//! What intake's tests start: intake in-process over a real nats-server
//! (for the doors and their errors), or the whole system from the real
//! binaries (for what needs the classifier: flags, alerts, deadlines).
//! Every wait has a timeout; everything stops on drop.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream;
use nisvakt_testkit::{NatsServer, ServiceProcess, Services, free_port};

/// A ticketing-system token in every test.
pub const TICKETING: &str = "tick-token-0001";
/// An operator token.
pub const OPERATOR: &str = "oper-token-0001";
/// A viewer token.
pub const VIEWER: &str = "view-token-0001";
/// The webhook secret.
pub const SECRET: &str = "hook-secret-0001";

/// `NISVAKT_TOKENS` for the tokens above.
pub fn tokens() -> String {
    format!("ticketing={TICKETING},operator={OPERATOR},viewer={VIEWER}")
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn http_client() -> anyhow::Result<reqwest::Client> {
    install_crypto();
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?)
}

/// Intake running inside the test process against a real nats-server.
pub struct InProcess {
    pub nats: NatsServer,
    pub http: String,
    pub grpc: String,
    pub shutdown: nisvakt_bus::Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub client: reqwest::Client,
}

impl InProcess {
    /// Starts with authentication on (tokens and secret above) unless
    /// `open`; `extra` are more flags.
    pub async fn start(open: bool, extra: &[&str]) -> anyhow::Result<InProcess> {
        let nats = NatsServer::start().await?;
        let http_port = free_port();
        let grpc_port = free_port();
        let mut args = vec![
            "nisvakt-intake".to_string(),
            "--nats-url".into(),
            nats.url(),
            "--http-addr".into(),
            format!("127.0.0.1:{http_port}"),
            "--grpc-addr".into(),
            format!("127.0.0.1:{grpc_port}"),
            "--admin-addr".into(),
            format!("127.0.0.1:{}", free_port()),
        ];
        if !open {
            args.extend([
                "--tokens".into(),
                tokens(),
                "--webhook-secret".into(),
                SECRET.into(),
            ]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let config: nisvakt_intake::Config = nisvakt_bus::config::try_parse_from(args)?;
        let shutdown = nisvakt_bus::Shutdown::new();
        let task = tokio::spawn(nisvakt_intake::run(config, shutdown.clone()));
        let me = InProcess {
            nats,
            http: format!("http://127.0.0.1:{http_port}"),
            grpc: format!("http://127.0.0.1:{grpc_port}"),
            shutdown,
            task,
            client: http_client()?,
        };
        wait_ready(&me.client, &me.http, Some(OPERATOR)).await?;
        Ok(me)
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.trigger();
        self.task.abort();
    }
}

/// Waits until `GET /v1/incidents` answers 200 (connected, streams there).
pub async fn wait_ready(
    client: &reqwest::Client,
    http: &str,
    token: Option<&str>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut req = client.get(format!("{http}/v1/incidents"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Ok(r) = req.send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("intake at {http} not ready in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The four real binaries over a real nats-server, authentication on.
pub struct System {
    pub nats: NatsServer,
    pub intake: ServiceProcess,
    pub classifier: ServiceProcess,
    pub timer: ServiceProcess,
    pub notifier: ServiceProcess,
    pub http: String,
    pub nats_client: async_nats::Client,
    pub js: jetstream::Context,
    pub client: reqwest::Client,
}

impl System {
    pub async fn start() -> anyhow::Result<System> {
        let nats = NatsServer::start().await?;
        let Services {
            intake,
            classifier,
            timer,
            notifier,
            http,
            ..
        } = Services::start(
            &nats.url(),
            &[
                ("NISVAKT_TOKENS", tokens()),
                ("NISVAKT_WEBHOOK_SECRET", SECRET.to_string()),
            ],
        )?;
        let nats_client = nats.client().await?;
        let js = jetstream::new(nats_client.clone());
        let client = http_client()?;
        if let Err(e) = wait_ready(&client, &http, Some(OPERATOR)).await {
            bail!("{e}\n{}", intake.output());
        }
        Ok(System {
            nats,
            intake,
            classifier,
            timer,
            notifier,
            http,
            nats_client,
            js,
            client,
        })
    }

    /// Waits until `GET /v1/incidents` lists `n` incidents.
    pub async fn wait_incidents(&self, n: usize) -> anyhow::Result<Vec<serde_json::Value>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let list: serde_json::Value = self
                .client
                .get(format!("{}/v1/incidents", self.http))
                .bearer_auth(OPERATOR)
                .send()
                .await?
                .json()
                .await?;
            let items = list["incidents"].as_array().cloned().unwrap_or_default();
            if items.len() >= n {
                return Ok(items);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{n} incidents not there in 30 s: {list}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A ticket describing a disruption that began `hours_ago` and goes on.
pub fn ticket(id: &str, system: &str, hours_ago: i64) -> serde_json::Value {
    let now = chrono::Utc::now();
    serde_json::json!({
        "source": "intraservice",
        "ticket_id": id,
        "revision": 1,
        "subject": format!("Eventuell NIS-incident: {system} går inte att nå"),
        "description": "Ingen på enheten kommer åt systemet.",
        "reported_at": now.to_rfc3339(),
        "unit": "Hemsjukvården Centrum",
        "system": system,
        "disruption_started_at": (now - chrono::Duration::hours(hours_ago)).to_rfc3339(),
        "care_blocked": true,
        "status": "open"
    })
}

/// Reads every message of `stream` from the start (an ephemeral consumer
/// without acks) until it has all `info.state.messages` or the timeout.
pub async fn all_messages(
    js: &jetstream::Context,
    stream: &str,
) -> anyhow::Result<Vec<jetstream::Message>> {
    use futures::StreamExt;
    let mut s = js.get_stream(stream).await.context(stream.to_string())?;
    let total = s.info().await?.state.messages as usize;
    if total == 0 {
        return Ok(Vec::new());
    }
    let consumer = s
        .create_consumer(jetstream::consumer::pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let mut msgs = consumer.messages().await?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while out.len() < total {
        match tokio::time::timeout_at(deadline, msgs.next()).await {
            Ok(Some(Ok(m))) => out.push(m),
            Ok(Some(Err(e))) => bail!("reading {stream}: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(out)
}
