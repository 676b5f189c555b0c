//! The classifier under test: a real nats-server on a free port, the real
//! `nisvakt-classifier` binary (one or more replicas) and, where the clock
//! is needed, the real `nisvakt-deadline-timer`. Facts go in as the bus
//! publishes them (TicketAccepted, commands); results are read from the
//! `nis_incidents` bucket and the `NIS_INCIDENTS` stream. Every wait has a
//! timeout.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer::pull};
use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use nisvakt_bus::clock::to_timestamp;
use nisvakt_bus::{Publisher, SystemClock, TraceContext, convert, topology};
use nisvakt_classifier::service::Stored;
use nisvakt_domain::ticket::{Ticket, TicketInput, validate};
use nisvakt_proto::v1 as pb;
use nisvakt_testkit::{NatsServer, ServiceProcess, free_port, workspace_root};
use prost::Message;

/// The seed routine only: its thresholds are the ones the tests name.
pub fn seed_rules() -> String {
    workspace_root()
        .join("rules/seed-routine.toml")
        .display()
        .to_string()
}

/// A running broker, classifier replicas and optionally the timer.
pub struct Harness {
    pub nats: NatsServer,
    pub classifiers: Vec<ServiceProcess>,
    pub timer: Option<ServiceProcess>,
    pub js: jetstream::Context,
    pub publisher: Publisher,
}

impl Harness {
    /// Starts the broker, creates the topology and starts `replicas`
    /// classifiers (and the deadline-timer when `timer`).
    pub async fn start(replicas: usize, timer: bool) -> anyhow::Result<Harness> {
        let nats = NatsServer::start().await?;
        let client = nats.client().await?;
        let js = jetstream::new(client);
        topology::ensure(&js).await?;
        let mut classifiers = Vec::new();
        for _ in 0..replicas {
            classifiers.push(start_classifier(&nats.url())?);
        }
        let timer = if timer {
            Some(ServiceProcess::start(
                "nisvakt-deadline-timer",
                &[
                    ("NATS_URL", nats.url()),
                    ("NISVAKT_ADMIN_ADDR", format!("127.0.0.1:{}", free_port())),
                ],
            )?)
        } else {
            None
        };
        let publisher = Publisher::new(js.clone(), "classifier-test", Arc::new(SystemClock));
        Ok(Harness {
            nats,
            classifiers,
            timer,
            js,
            publisher,
        })
    }

    /// Publishes a ticket as intake would, with `msg_id` as `Nats-Msg-Id`.
    pub async fn ticket(
        &self,
        ticket: &Ticket,
        receipt_id: &str,
        accepted_at: DateTime<Utc>,
        msg_id: &str,
    ) -> anyhow::Result<nisvakt_bus::Published> {
        let event = accepted(ticket, receipt_id, accepted_at);
        Ok(self
            .publisher
            .publish(
                nisvakt_bus::subjects::TICKET_ACCEPTED,
                msg_id,
                &event,
                &TraceContext::new_root(),
            )
            .await?)
    }

    /// Publishes an operator command on `nis.v1.command.incident.<id>.<verb>`.
    pub async fn command<E: nisvakt_proto::Event>(
        &self,
        incident_id: &str,
        verb: &str,
        command_id: &str,
        command: &E,
    ) -> anyhow::Result<()> {
        self.publisher
            .publish(
                nisvakt_bus::subjects::incident_command(incident_id, verb),
                command_id,
                command,
                &TraceContext::new_root(),
            )
            .await?;
        Ok(())
    }

    /// Every stored incident.
    pub async fn incidents(&self) -> anyhow::Result<Vec<(Stored, u64)>> {
        let store = self.js.get_key_value(topology::BUCKET_INCIDENTS).await?;
        let mut keys = store.keys().await?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k?;
            if let Some(e) = store.entry(&k).await? {
                let s: Stored = serde_json::from_slice(&e.value)
                    .with_context(|| format!("incident {k} is not a stored projection"))?;
                out.push((s, e.revision));
            }
        }
        Ok(out)
    }

    /// Polls until `check` accepts the stored incidents or `timeout` passes.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&[(Stored, u64)]) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last;
        loop {
            match self.incidents().await {
                Ok(all) => {
                    if let Some(t) = check(&all) {
                        return Ok(t);
                    }
                    last = all
                        .iter()
                        .map(|(s, r)| {
                            format!(
                                "{} rev {r}: {} tickets",
                                s.incident.id, s.incident.ticket_count
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                }
                Err(e) => last = e.to_string(),
            }
            if tokio::time::Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the durable `consumer` has nothing pending and nothing
    /// unacknowledged: every message published so far was handled.
    pub async fn wait_drained(
        &self,
        stream: &str,
        consumer: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let info = async {
                let s = self.js.get_stream(stream).await?;
                let mut c: jetstream::consumer::PullConsumer = s
                    .get_consumer(consumer)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                anyhow::Ok(c.info().await?.clone())
            }
            .await;
            if let Ok(i) = &info
                && i.num_pending == 0
                && i.num_ack_pending == 0
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("consumer {consumer} not drained in {timeout:?}: {info:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every message on `filter` in `stream` right now.
    pub async fn messages(
        &self,
        stream: &str,
        filter: &str,
    ) -> anyhow::Result<Vec<jetstream::Message>> {
        let s = self.js.get_stream(stream).await?;
        let consumer = s
            .create_consumer(pull::Config {
                filter_subject: filter.to_string(),
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await?;
        let pending = consumer.clone().info().await?.num_pending as usize;
        let mut out = Vec::new();
        if pending == 0 {
            return Ok(out);
        }
        let mut msgs = consumer.messages().await?;
        while out.len() < pending {
            match tokio::time::timeout(Duration::from_secs(10), msgs.next()).await {
                Ok(Some(Ok(m))) => out.push(m),
                Ok(Some(Err(e))) => bail!("reading {stream}: {e}"),
                Ok(None) | Err(_) => bail!("{stream}: got {} of {pending} messages", out.len()),
            }
        }
        Ok(out)
    }

    /// Waits for the first `IncidentAssessed` of `incident_id` that `check`
    /// accepts.
    pub async fn wait_assessed(
        &self,
        incident_id: &str,
        timeout: Duration,
        check: impl Fn(&pb::Incident) -> bool,
    ) -> anyhow::Result<pb::IncidentAssessed> {
        let s = self.js.get_stream(topology::INCIDENTS).await?;
        let consumer = s
            .create_consumer(pull::Config {
                filter_subject: nisvakt_bus::subjects::incident(incident_id, "assessed"),
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await?;
        let mut msgs = consumer.messages().await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, msgs.next()).await {
                Ok(Some(Ok(m))) => {
                    let e = pb::IncidentAssessed::decode(m.payload.as_ref())?;
                    if e.incident.as_ref().is_some_and(&check) {
                        return Ok(e);
                    }
                }
                Ok(Some(Err(e))) => bail!("reading assessed events: {e}"),
                Ok(None) | Err(_) => {
                    bail!("no matching assessed event for {incident_id} in {timeout:?}")
                }
            }
        }
    }
}

/// Starts one classifier replica on the seed routine.
pub fn start_classifier(nats_url: &str) -> anyhow::Result<ServiceProcess> {
    ServiceProcess::start(
        "nisvakt-classifier",
        &[
            ("NATS_URL", nats_url.to_string()),
            ("NISVAKT_ADMIN_ADDR", format!("127.0.0.1:{}", free_port())),
            ("NISVAKT_RULES", seed_rules()),
        ],
    )
}

/// The TicketAccepted intake would publish.
pub fn accepted(
    ticket: &Ticket,
    receipt_id: &str,
    accepted_at: DateTime<Utc>,
) -> pb::TicketAccepted {
    pb::TicketAccepted {
        receipt_id: receipt_id.to_string(),
        ticket: Some(convert::ticket_to_pb(ticket)),
        accepted_at: Some(to_timestamp(accepted_at)),
        channel: "nats".into(),
    }
}

/// A validated, masked ticket about `system` from `unit`, ongoing since
/// `started`.
pub fn ticket(
    id: &str,
    system: &str,
    unit: &str,
    started: DateTime<Utc>,
    care_blocked: bool,
) -> Ticket {
    validate(TicketInput {
        source: Some("intraservice".into()),
        ticket_id: Some(id.to_string()),
        revision: Some(1),
        subject: Some(format!("{system} går inte att nå")),
        description: Some("Ingen på enheten kommer åt systemet.".into()),
        reported_at: Some(Utc::now().to_rfc3339()),
        unit: Some(unit.to_string()),
        system: Some(system.to_string()),
        disruption_started_at: Some(started.to_rfc3339()),
        care_blocked: Some(care_blocked),
        status: Some("open".into()),
        ..Default::default()
    })
    .expect("the test's ticket is valid")
    .into_masked()
}

/// Now, to the whole second (the broker schedules by the second).
pub fn now_s() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// A time from the wire.
pub fn ts(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref().and_then(nisvakt_bus::clock::from_timestamp)
}
