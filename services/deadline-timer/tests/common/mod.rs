//! Shared harness of the deadline-timer's tests over a real nats-server and
//! the real binary: start both, feed timers in as the classifier and other
//! services would (protobuf through the bus `Publisher`), and read back
//! what was published on `nis.v1.deadline.>` from the stream itself.
//!
//! Every wait has a timeout; nothing here mocks the broker or the service.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use nisvakt_bus::clock::to_timestamp;
use nisvakt_bus::{Publisher, SystemClock, TraceContext, subjects, topology};
use nisvakt_deadline_timer::record::TimerRecord;
use nisvakt_proto::v1::{
    CancelTimer, DeadlineDue, Firing, Incident, IncidentAssessed, ScheduleTimer, Timer, TimerKind,
};
use nisvakt_testkit::{NatsServer, ServiceProcess, free_port};
use prost::Message as _;

pub const BIN: &str = "nisvakt-deadline-timer";

/// A server with the topology in place and a publisher for the test.
pub struct Bus {
    pub server: NatsServer,
    pub js: jetstream::Context,
    pub publisher: Publisher,
}

pub async fn bus() -> anyhow::Result<Bus> {
    let server = NatsServer::start().await?;
    let js = jetstream::new(server.client().await?);
    topology::ensure(&js).await?;
    let publisher = Publisher::new(js.clone(), "test", Arc::new(SystemClock));
    Ok(Bus {
        server,
        js,
        publisher,
    })
}

impl Bus {
    /// Reconnects after a server restart.
    pub async fn reconnect(&mut self) -> anyhow::Result<()> {
        self.js = jetstream::new(self.server.client().await?);
        self.publisher = Publisher::new(self.js.clone(), "test", Arc::new(SystemClock));
        Ok(())
    }
}

/// The service with short sweep intervals, its admin port for `/metrics`.
pub fn service(bus: &Bus, extra: &[(&str, &str)]) -> anyhow::Result<(ServiceProcess, u16)> {
    let admin = free_port();
    let mut env: Vec<(&str, String)> = vec![
        ("NATS_URL", bus.server.url()),
        ("NISVAKT_ADMIN_ADDR", format!("127.0.0.1:{admin}")),
        ("NISVAKT_LATE_TOLERANCE_MS", "2000".into()),
        ("NISVAKT_WATCHDOG_EVERY", "1s".into()),
        ("NISVAKT_WATCHDOG_TOLERANCE", "3s".into()),
        ("NISVAKT_RECONCILE_EVERY", "2s".into()),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, v.to_string()));
    }
    Ok((ServiceProcess::start(BIN, &env)?, admin))
}

/// A deadline timer with only a due moment.
pub fn deadline_timer(id: &str, due: DateTime<Utc>) -> Timer {
    Timer {
        id: id.to_string(),
        kind: TimerKind::Deadline as i32,
        incident_id: format!("inc_{id}"),
        due_at: Some(to_timestamp(due)),
        ..Default::default()
    }
}

pub async fn schedule(bus: &Bus, timer: Timer) -> anyhow::Result<()> {
    let id = timer.id.clone();
    bus.publisher
        .publish(
            subjects::timer_command(&id, "schedule"),
            &format!("test-schedule:{id}:{}", ulid::Ulid::generate()),
            &ScheduleTimer { timer: Some(timer) },
            &TraceContext::new_root(),
        )
        .await?;
    Ok(())
}

pub async fn cancel(bus: &Bus, id: &str) -> anyhow::Result<()> {
    bus.publisher
        .publish(
            subjects::timer_command(id, "cancel"),
            &format!("test-cancel:{id}"),
            &CancelTimer {
                timer_id: id.to_string(),
                reason: "test".into(),
            },
            &TraceContext::new_root(),
        )
        .await?;
    Ok(())
}

pub async fn publish_incident(bus: &Bus, incident: Incident) -> anyhow::Result<()> {
    let subject = subjects::incident(&incident.id, "assessed");
    let msg_id = format!("assessed:{}:{}", incident.id, incident.revision);
    bus.publisher
        .publish(
            subject,
            &msg_id,
            &IncidentAssessed {
                incident: Some(incident),
                ..Default::default()
            },
            &TraceContext::new_root(),
        )
        .await?;
    Ok(())
}

/// One message stored on `nis.v1.deadline.>`.
#[derive(Debug, Clone)]
pub struct Event {
    pub subject: String,
    pub msg_id: String,
    pub payload: bytes::Bytes,
}

impl Event {
    /// The timer id and event name from the subject.
    pub fn timer_and_kind(&self) -> (&str, &str) {
        let mut parts = self.subject.rsplitn(2, '.');
        let kind = parts.next().unwrap_or_default();
        let timer = parts
            .next()
            .and_then(|p| p.strip_prefix("nis.v1.deadline."))
            .unwrap_or_default();
        (timer, kind)
    }

    /// The firing of a warning/due/overdue/threshold/escalation event
    /// (each wraps its `Firing` as field 1).
    pub fn firing(&self) -> anyhow::Result<Firing> {
        DeadlineDue::decode(self.payload.as_ref())?
            .firing
            .context("event without firing")
    }
}

/// Everything stored on `nis.v1.deadline.>` so far, in order.
pub async fn deadline_events(js: &jetstream::Context) -> anyhow::Result<Vec<Event>> {
    read_all(js, topology::DEADLINES, "nis.v1.deadline.>").await
}

/// Every message of a stream's subject filter, read with a fresh ordered
/// consumer (survives server restarts, sees everything stored).
pub async fn read_all(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> anyhow::Result<Vec<Event>> {
    let stream = js.get_stream(stream).await?;
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subject: filter.to_string(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(out);
    }
    let mut msgs = consumer.messages().await?;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
            .await
            .context("reading the stream timed out")?
            .context("stream ended")??;
        let pending = m.info().map(|i| i.pending).unwrap_or(0);
        out.push(Event {
            subject: m.subject.to_string(),
            msg_id: m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
                .unwrap_or_default(),
            payload: m.payload.clone(),
        });
        if pending == 0 {
            return Ok(out);
        }
    }
}

/// Polls the deadline events until `done` holds, or fails after `timeout`
/// showing what was there.
pub async fn wait_for_events(
    js: &jetstream::Context,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[Event]) -> bool,
) -> anyhow::Result<Vec<Event>> {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let events = deadline_events(js).await.unwrap_or_default();
        if done(&events) {
            return Ok(events);
        }
        if tokio::time::Instant::now() > until {
            let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
            bail!("timed out after {timeout:?} waiting for {what}; events: {subjects:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many events there are per subject.
pub fn count_by_subject(events: &[Event]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        *out.entry(e.subject.clone()).or_default() += 1;
    }
    out
}

pub fn count_kind(events: &[Event], kind: &str) -> usize {
    events
        .iter()
        .filter(|e| e.timer_and_kind().1 == kind)
        .count()
}

/// The timer record `t.<id>`.
pub async fn timer_record(
    js: &jetstream::Context,
    id: &str,
) -> anyhow::Result<Option<TimerRecord>> {
    let store = js.get_key_value(topology::BUCKET_TIMERS).await?;
    Ok(match store.get(format!("t.{id}")).await? {
        Some(v) => Some(serde_json::from_slice(&v)?),
        None => None,
    })
}

/// A metric's value summed over its label sets, from `/metrics`.
pub async fn metric(admin_port: u16, name: &str) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(("127.0.0.1", admin_port)),
    )
    .await??;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body)).await??;
    Ok(body
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Waits until the admin server answers (the service is up).
pub async fn wait_admin(admin_port: u16) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(admin_port, "nisvakt_up").await.unwrap_or(0.0) < 1.0 {
        if tokio::time::Instant::now() > until {
            bail!("service admin on {admin_port} did not come up");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The next whole second at least `ahead` from now (the broker fires at
/// whole seconds; tests use them so intended moments are exact).
pub fn whole_second_in(ahead: Duration) -> DateTime<Utc> {
    let t = Utc::now() + chrono::Duration::from_std(ahead).unwrap_or_default();
    DateTime::from_timestamp(t.timestamp() + 1, 0).unwrap_or(t)
}

/// Sleeps until `t` (wall clock).
pub async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}
