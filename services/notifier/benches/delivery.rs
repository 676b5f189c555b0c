//! How fast the notifier binary turns deadline firings into deliveries,
//! beside the broker's own speed measured in the same run on the same
//! server (DEPENDENCIES.md: figures are reported as ratios to the broker).
//!
//! Run with `cargo bench -p nisvakt-notifier` (nats-server from
//! `NATS_SERVER_BIN`). Bounded: a few thousand messages in all, a couple
//! of minutes at most on two cores. It measures:
//!
//! - the broker: JetStream publish rate to a file stream with up to 1,000
//!   acks in flight, and the publish→ack round trip (p50/p99);
//! - the notifier: alerts delivered per second to a loopback webhook
//!   receiver and to a loopback SMTP server (a burst of firings published
//!   at once, one recipient per alert), and the latency from a firing
//!   published to its delivery received, one at a time (p50/p99).
//!
//! Every wait has a timeout; nothing here is asserted, only printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, stream};
use chrono::{DateTime, Utc};
use nisvakt_bus::{Publisher, SystemClock, TraceContext, subjects, topology};
use nisvakt_domain::incident::{Fact, Incident, IncidentId};
use nisvakt_domain::text::Lexicon;
use nisvakt_domain::ticket::{Ticket, TicketStatus};
use nisvakt_proto::v1 as pb;
use nisvakt_testkit::smtp::SmtpReceiver;
use nisvakt_testkit::webhook::WebhookReceiver;
use nisvakt_testkit::{NatsServer, ServiceProcess, free_port, workspace_root};

const INCIDENT: &str = "inc_bench";
const BROKER_BURST: usize = 20_000;
const BROKER_SEQUENTIAL: usize = 2_000;
const WEBHOOK_BURST: usize = 500;
const SMTP_BURST: usize = 300;
const LATENCY_SAMPLES: usize = 100;
const WAIT: Duration = Duration::from_secs(120);

fn routing(webhook_url: &str) -> String {
    // One recipient per alert: `due` goes to a webhook, `overdue` by mail.
    let mut text = format!(
        r#"
[webhooks.bench]
url = "{webhook_url}"
format = "json"

[roles.security_unit]
name = "Säkerhetsenheten"
webhooks = ["bench"]

[roles.on_call]
name = "Tjänsteman i beredskap"
email = ["beredskap@bench.invalid"]

[roles.nis_assessor]
name = "NIS-bedömare"
email = ["nis@bench.invalid"]

[[escalation.due]]
roles = ["security_unit"]

[[escalation.overdue]]
roles = ["on_call"]
"#
    );
    for reason in [
        "suspected_nis",
        "needs_assessment",
        "reportable",
        "warning",
        "watchdog",
    ] {
        text.push_str(&format!(
            "\n[[escalation.{reason}]]\nroles = [\"nis_assessor\"]\n"
        ));
    }
    text
}

/// The incident every firing belongs to: reportable under the seed routine.
fn incident(now: DateTime<Utc>) -> anyhow::Result<Incident> {
    let rules = vec![nisvakt_domain::rules::load_file(
        workspace_root().join("rules/seed-routine.toml"),
    )?];
    let started = now - chrono::Duration::hours(7);
    let ticket = Ticket {
        source: "intraservice".into(),
        ticket_id: "T-bench".into(),
        revision: 1,
        subject: "Eventuell NIS-incident: Journalsystemet går inte att nå".into(),
        description: None,
        reported_at: started,
        unit: Some("Hemsjukvården Centrum".into()),
        reporter_ref: None,
        system: Some("Journalsystemet".into()),
        category: None,
        disruption_started_at: started,
        disruption_ended_at: None,
        care_blocked: Some(true),
        patient_harm: None,
        status: TicketStatus::Open,
        identifiers_masked: 0,
    };
    let mut inc = Incident::open(IncidentId::parse(INCIDENT)?, now);
    inc.apply(
        &Fact::Ticket {
            receipt_id: "rcpt-bench".into(),
            ticket,
            accepted_at: now,
        },
        &rules,
        &Lexicon::default_sv(),
        now,
    );
    Ok(inc)
}

struct Bench {
    publisher: Publisher,
    deadline: pb::Deadline,
    next: usize,
}

impl Bench {
    /// Publishes one firing of a fresh timer: a new alert every time.
    async fn fire(&mut self, kind: pb::FiringKind) -> anyhow::Result<()> {
        self.next += 1;
        let timer_id = format!("dl-bench-{}", self.next);
        let now = nisvakt_bus::clock::to_timestamp(Utc::now());
        let firing = pb::Firing {
            timer: Some(pb::Timer {
                id: timer_id.clone(),
                kind: pb::TimerKind::Deadline as i32,
                incident_id: INCIDENT.into(),
                rule_set: self.deadline.rule_set.clone(),
                deadline: Some(self.deadline.clone()),
                due_at: self.deadline.due_at,
                generation: 1,
                ..Default::default()
            }),
            kind: kind as i32,
            intended_at: Some(now),
            fired_at: Some(now),
            ..Default::default()
        };
        let trace = TraceContext::new_root();
        let msg_id = format!("fire:{timer_id}");
        match kind {
            pb::FiringKind::Due => {
                self.publisher
                    .publish(
                        subjects::deadline(&timer_id, "due"),
                        &msg_id,
                        &pb::DeadlineDue {
                            firing: Some(firing),
                        },
                        &trace,
                    )
                    .await?
            }
            _ => {
                self.publisher
                    .publish(
                        subjects::deadline(&timer_id, "overdue"),
                        &msg_id,
                        &pb::DeadlineOverdue {
                            firing: Some(firing),
                        },
                        &trace,
                    )
                    .await?
            }
        };
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn p50_p99(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (percentile(&samples, 50.0), percentile(&samples, 99.0))
}

/// The broker alone: publish rate with 1,000 acks in flight, and the
/// publish→ack round trip one at a time, 256-byte messages, file storage.
async fn broker(js: &jetstream::Context) -> anyhow::Result<(f64, Duration, Duration)> {
    js.create_stream(stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; 256]);
    let start = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    for i in 0..BROKER_BURST {
        let ack = js
            .publish(format!("bench.burst.{}", i % 16), payload.clone())
            .await?;
        in_flight.push_back(ack);
        if in_flight.len() >= 1000
            && let Some(ack) = in_flight.pop_front()
        {
            ack.await?;
        }
    }
    while let Some(ack) = in_flight.pop_front() {
        ack.await?;
    }
    let rate = BROKER_BURST as f64 / start.elapsed().as_secs_f64();
    let mut samples = Vec::with_capacity(BROKER_SEQUENTIAL);
    for _ in 0..BROKER_SEQUENTIAL {
        let t = Instant::now();
        js.publish("bench.seq", payload.clone()).await?.await?;
        samples.push(t.elapsed());
    }
    let (p50, p99) = p50_p99(samples);
    Ok((rate, p50, p99))
}

async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats = NatsServer::start().await?;
    let js = jetstream::new(nats.client().await?);
    topology::ensure(&js).await?;
    let incidents = topology::bucket_or_create(&js, topology::BUCKET_INCIDENTS).await?;
    let smtp = SmtpReceiver::start().await?;
    let webhook = WebhookReceiver::start().await?;
    let dir = tempfile::tempdir()?;
    let routing_file = dir.path().join("routing.toml");
    std::fs::write(&routing_file, routing(&webhook.url("/bench")))?;

    let now = Utc::now();
    let inc = incident(now)?;
    incidents
        .put(INCIDENT, serde_json::to_vec(&inc)?.into())
        .await
        .context("storing the incident")?;
    let wire = nisvakt_bus::convert::incident_to_pb(&inc);
    let deadline = wire
        .deadlines
        .iter()
        .find(|d| d.duty == "nis" && d.stage == "1")
        .cloned()
        .context("the bench incident has no stage 1 deadline")?;

    eprintln!("measuring the broker ...");
    let (broker_rate, broker_p50, broker_p99) = broker(&js).await?;

    let _notifier = ServiceProcess::start(
        "nisvakt-notifier",
        &[
            ("NATS_URL", nats.url()),
            ("NISVAKT_ADMIN_ADDR", format!("127.0.0.1:{}", free_port())),
            ("NISVAKT_ROUTING", routing_file.display().to_string()),
            ("NISVAKT_SMTP_URL", smtp.url()),
            (
                "NISVAKT_SMTP_FROM",
                "nisvakt <nisvakt@bench.invalid>".into(),
            ),
        ],
    )?;
    let mut bench = Bench {
        publisher: Publisher::new(js.clone(), "bench", Arc::new(SystemClock)),
        deadline,
        next: 0,
    };

    // Warm up: the notifier is up and both channels are open.
    bench.fire(pb::FiringKind::Due).await?;
    bench.fire(pb::FiringKind::Overdue).await?;
    webhook.wait_for(1, WAIT).await?;
    smtp.wait_for(1, WAIT).await?;

    eprintln!("measuring webhook deliveries ...");
    let base = webhook.requests().len();
    let start = Instant::now();
    for _ in 0..WEBHOOK_BURST {
        bench.fire(pb::FiringKind::Due).await?;
    }
    webhook.wait_for(base + WEBHOOK_BURST, WAIT).await?;
    let webhook_rate = WEBHOOK_BURST as f64 / start.elapsed().as_secs_f64();

    eprintln!("measuring e-mail deliveries ...");
    let base = smtp.messages().len();
    let start = Instant::now();
    for _ in 0..SMTP_BURST {
        bench.fire(pb::FiringKind::Overdue).await?;
    }
    smtp.wait_for(base + SMTP_BURST, WAIT).await?;
    let smtp_rate = SMTP_BURST as f64 / start.elapsed().as_secs_f64();

    eprintln!("measuring latency ...");
    let mut webhook_lat = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let n = webhook.requests().len();
        let t = Instant::now();
        bench.fire(pb::FiringKind::Due).await?;
        webhook.wait_for(n + 1, WAIT).await?;
        webhook_lat.push(t.elapsed());
    }
    let mut smtp_lat = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let n = smtp.messages().len();
        let t = Instant::now();
        bench.fire(pb::FiringKind::Overdue).await?;
        smtp.wait_for(n + 1, WAIT).await?;
        smtp_lat.push(t.elapsed());
    }
    let (wh50, wh99) = p50_p99(webhook_lat);
    let (sm50, sm99) = p50_p99(smtp_lat);
    if webhook.successes().len() != webhook.requests().len() {
        bail!("the webhook receiver refused requests; figures are void");
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!("nisvakt-notifier delivery benchmark (loopback, one recipient per alert)");
    println!();
    println!("| what | figure | ratio to the broker |");
    println!("|---|---|---|");
    println!(
        "| broker: JetStream publish, file stream, 1000 acks in flight | {broker_rate:.0} msg/s | 1 |"
    );
    println!(
        "| broker: publish→ack round trip | p50 {:.3} ms, p99 {:.3} ms | 1 |",
        ms(broker_p50),
        ms(broker_p99)
    );
    println!(
        "| notifier: alerts delivered to a webhook ({WEBHOOK_BURST} at once) | {webhook_rate:.0} alerts/s | {:.4} of the publish rate |",
        webhook_rate / broker_rate
    );
    println!(
        "| notifier: alerts delivered by SMTP ({SMTP_BURST} at once) | {smtp_rate:.0} alerts/s | {:.4} of the publish rate |",
        smtp_rate / broker_rate
    );
    println!(
        "| notifier: firing published → webhook received | p50 {:.2} ms, p99 {:.2} ms | {:.0}× / {:.0}× the round trip |",
        ms(wh50),
        ms(wh99),
        ms(wh50) / ms(broker_p50),
        ms(wh99) / ms(broker_p99)
    );
    println!(
        "| notifier: firing published → mail received | p50 {:.2} ms, p99 {:.2} ms | {:.0}× / {:.0}× the round trip |",
        ms(sm50),
        ms(sm99),
        ms(sm50) / ms(broker_p50),
        ms(sm99) / ms(broker_p99)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs this with `--bench` absent: skip quietly.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
