//! The system under test: a real nats-server and the four real binaries on
//! free loopback ports, stopped on drop.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use nisvakt_testkit::{NatsServer, ServiceProcess, Services, workspace_root};

/// Everything running.
pub struct System {
    pub nats: NatsServer,
    pub intake: ServiceProcess,
    pub classifier: ServiceProcess,
    pub timer: ServiceProcess,
    pub notifier: ServiceProcess,
    pub http: String,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub http_client: reqwest::Client,
    /// Admin addresses: intake, classifier, deadline-timer, notifier.
    pub admin: Vec<String>,
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl System {
    pub async fn start() -> anyhow::Result<System> {
        install_crypto();
        let nats = NatsServer::start().await?;
        let Services {
            intake,
            classifier,
            timer,
            notifier,
            http,
            admin,
            ..
        } = Services::start(&nats.url(), &[])?;
        let client = nats.client().await?;
        let js = jetstream::new(client.clone());
        let http_client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let sys = System {
            nats,
            intake,
            classifier,
            timer,
            notifier,
            http,
            client,
            js,
            http_client,
            admin,
        };
        sys.wait_ready().await?;
        Ok(sys)
    }

    /// Waits until intake answers `/v1/incidents` (it is connected and the
    /// streams exist).
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .http_client
                .get(format!("{}/v1/incidents", self.http))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("intake not ready in 30 s:\n{}", self.intake.output());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts a ticket; returns status and body.
    pub async fn post_ticket(
        &self,
        body: &serde_json::Value,
        traceparent: Option<&str>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut req = self
            .http_client
            .post(format!("{}/v1/tickets", self.http))
            .json(body);
        if let Some(t) = traceparent {
            req = req.header("traceparent", t);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let r = self
            .http_client
            .get(format!("{}{path}", self.http))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// Every message in `stream` whose subject matches `filter`, read with
    /// an ephemeral consumer from the start, until `want` of them or the
    /// timeout.
    pub async fn collect(
        &self,
        stream: &str,
        filter: &str,
        want: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<jetstream::Message>> {
        let s = self
            .js
            .get_stream(stream)
            .await
            .with_context(|| format!("stream {stream}"))?;
        let consumer = s
            .create_consumer(pull::Config {
                filter_subject: filter.to_string(),
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await?;
        let mut msgs = consumer.messages().await?;
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < want {
            match tokio::time::timeout_at(deadline, msgs.next()).await {
                Ok(Some(Ok(m))) => out.push(m),
                Ok(Some(Err(e))) => bail!("reading {stream}: {e}"),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(out)
    }

    /// How many messages `stream` holds on `filter` right now.
    pub async fn count(&self, stream: &str, filter: &str) -> anyhow::Result<usize> {
        let s = self.js.get_stream(stream).await?;
        let info = s.info_with_subjects(filter).await?;
        let mut n = 0;
        let mut info = info;
        while let Some(Ok((_, c))) = info.next().await {
            n += c;
        }
        Ok(n)
    }
}

pub fn header<'a>(m: &'a jetstream::Message, name: &str) -> Option<&'a str> {
    m.headers.as_ref()?.get(name).map(|v| v.as_str())
}

pub fn trace_id(m: &jetstream::Message) -> Option<String> {
    header(m, "traceparent").and_then(|t| t.split('-').nth(1).map(str::to_string))
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

pub fn root_dir() -> std::path::PathBuf {
    workspace_root()
}
