//! Throughput of the classifier, beside the broker's own in the same run.
//!
//! `cargo bench -p nisvakt-classifier` prints, in about two minutes:
//! - the pure core: assessments per second through `Incident::apply`,
//!   single-threaded, for tickets that each open an incident and for one
//!   1,000-ticket storm (whose projection grows with every ticket);
//! - the broker: JetStream publish rate with 1,000 acks in flight, the
//!   publish→ack round trip (p50, p99) and a durable pull consumer's rate
//!   with acks, 256-byte messages to a file stream;
//! - the service: one real `nisvakt-classifier` replica, TicketAccepted in
//!   to incident events out, per second, for distinct disruptions and for
//!   a 500-ticket storm, and as a share of the broker's rates.
//!
//! Figures, not assertions: nothing here fails on speed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer::pull, stream};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use nisvakt_bus::clock::to_timestamp;
use nisvakt_bus::{Publisher, SystemClock, TraceContext, convert, topology};
use nisvakt_domain::incident::{Fact, Incident, IncidentId};
use nisvakt_domain::text::Lexicon;
use nisvakt_domain::ticket::{Ticket, TicketInput, validate};
use nisvakt_proto::v1 as pb;
use nisvakt_testkit::{NatsServer, ServiceProcess, free_port, workspace_root};

fn ticket(id: &str, system: &str, unit: &str, started: DateTime<Utc>) -> Ticket {
    validate(TicketInput {
        source: Some("intraservice".into()),
        ticket_id: Some(id.to_string()),
        revision: Some(1),
        subject: Some(format!("Eventuell NIS-incident: {system} går inte att nå")),
        description: Some("Ingen på enheten kommer åt systemet.".into()),
        reported_at: Some(started.to_rfc3339()),
        unit: Some(unit.to_string()),
        system: Some(system.to_string()),
        disruption_started_at: Some(started.to_rfc3339()),
        care_blocked: Some(true),
        status: Some("open".into()),
        ..Default::default()
    })
    .expect("a valid bench ticket")
    .into_masked()
}

fn fact(t: Ticket, i: usize, at: DateTime<Utc>) -> Fact {
    Fact::Ticket {
        receipt_id: format!("rcp_{i}"),
        ticket: t,
        accepted_at: at,
    }
}

/// Assessments per second through `Incident::apply`.
fn core() -> anyhow::Result<()> {
    let rules =
        nisvakt_domain::rules::load_spec(&workspace_root().join("rules").display().to_string())?;
    let lexicon = Lexicon::default_sv();
    let now = Utc::now();
    let start = now - chrono::Duration::minutes(30);

    // Each ticket opens its own incident: one full assessment per apply.
    let n = 20_000;
    let facts: Vec<Fact> = (0..n)
        .map(|i| {
            fact(
                ticket(
                    &format!("C-{i}"),
                    &format!("System {}", i % 50),
                    "Enhet 1",
                    start,
                ),
                i,
                now,
            )
        })
        .collect();
    let t = Instant::now();
    let mut reportable = 0usize;
    for (i, f) in facts.iter().enumerate() {
        let mut inc = Incident::open(IncidentId::parse(format!("inc_{i}"))?, now);
        let out = inc.apply(f, &rules, &lexicon, now);
        reportable += out.became_reportable.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "core  single-ticket incidents ({} rule sets): {:>9.0} assessments/s ({n} in {secs:.2} s; {reportable} became reportable)",
        rules.len(),
        n as f64 / secs
    );

    // One storm: 1,000 tickets into one incident.
    let storm: Vec<Fact> = (0..1000)
        .map(|i| {
            fact(
                ticket(
                    &format!("S-{i}"),
                    "Journalsystemet",
                    &format!("Enhet {:02}", i % 20),
                    start,
                ),
                i,
                now,
            )
        })
        .collect();
    let t = Instant::now();
    let mut inc = Incident::open(IncidentId::parse("inc_storm")?, now);
    for f in &storm {
        inc.apply(f, &rules, &lexicon, now);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "core  1,000-ticket storm into one incident:      {:>9.0} assessments/s (all 1,000 in {secs:.2} s)",
        1000.0 / secs
    );
    Ok(())
}

/// The broker's own figures, this run.
struct Broker {
    publish_rate: f64,
    p50: Duration,
    p99: Duration,
    consume_rate: f64,
}

async fn broker(nats: &NatsServer) -> anyhow::Result<Broker> {
    let client = nats.client().await?;
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; 256]);

    // Publish with up to 1,000 acks in flight.
    let n = 50_000;
    let t = Instant::now();
    let mut in_flight = futures::stream::FuturesUnordered::new();
    for _ in 0..n {
        if in_flight.len() >= 1000
            && let Some(r) = in_flight.next().await
        {
            let _: async_nats::jetstream::publish::PublishAck = r?;
        }
        in_flight.push(
            js.publish("bench.rate", payload.clone())
                .await?
                .into_future(),
        );
    }
    while let Some(r) = in_flight.next().await {
        r?;
    }
    let publish_rate = n as f64 / t.elapsed().as_secs_f64();

    // Publish → ack round trip, one at a time.
    let mut rtts = Vec::with_capacity(5000);
    for _ in 0..5000 {
        let t = Instant::now();
        js.publish("bench.rtt", payload.clone()).await?.await?;
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let p50 = rtts[rtts.len() / 2];
    let p99 = rtts[rtts.len() * 99 / 100];

    // A durable pull consumer with explicit acks over the publish-rate messages.
    let s = js.get_stream("BENCH").await?;
    let consumer = s
        .create_consumer(pull::Config {
            durable_name: Some("bench".into()),
            filter_subject: "bench.rate".into(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let mut msgs = consumer.messages().await?;
    let t = Instant::now();
    for _ in 0..n {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
            .await
            .context("consumer stalled")?
            .context("consumer ended")?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let consume_rate = n as f64 / t.elapsed().as_secs_f64();
    js.delete_stream("BENCH").await?;
    Ok(Broker {
        publish_rate,
        p50,
        p99,
        consume_rate,
    })
}

/// Waits until the classifier's ticket consumer has handled everything.
async fn drained(js: &jetstream::Context, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = js.get_stream(topology::TICKETS).await?;
        if let Ok(mut c) = s.get_consumer::<pull::Config>("classifier-tickets").await
            && let Ok(i) = c.info().await
            && i.num_pending == 0
            && i.num_ack_pending == 0
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the classifier did not drain in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn incident_events(js: &jetstream::Context) -> anyhow::Result<u64> {
    Ok(js
        .get_stream(topology::INCIDENTS)
        .await?
        .info()
        .await?
        .state
        .messages)
}

/// One service workload.
struct Case {
    /// What it shows.
    name: &'static str,
    /// Tickets sent.
    n: usize,
    /// The system named by ticket `i`.
    system: fn(usize) -> String,
}

/// One replica: tickets in, events out, per second.
async fn service(nats: &NatsServer, broker: &Broker) -> anyhow::Result<()> {
    let client = nats.client().await?;
    let js = jetstream::new(client);
    topology::ensure(&js).await?;
    let mut classifier = ServiceProcess::start(
        "nisvakt-classifier",
        &[
            ("NATS_URL", nats.url()),
            ("NISVAKT_ADMIN_ADDR", format!("127.0.0.1:{}", free_port())),
            (
                "NISVAKT_RULES",
                workspace_root().join("rules").display().to_string(),
            ),
        ],
    )?;
    let publisher = Publisher::new(js.clone(), "bench", Arc::new(SystemClock));
    let now = Utc::now();
    let start = now - chrono::Duration::minutes(30);
    let send = |t: Ticket, receipt: String| {
        let publisher = publisher.clone();
        async move {
            let e = pb::TicketAccepted {
                receipt_id: receipt.clone(),
                ticket: Some(convert::ticket_to_pb(&t)),
                accepted_at: Some(to_timestamp(now)),
                channel: "nats".into(),
            };
            publisher
                .publish(
                    nisvakt_bus::subjects::TICKET_ACCEPTED,
                    &receipt,
                    &e,
                    &TraceContext::new_root(),
                )
                .await
        }
    };
    // Warm-up: the replica is consuming once its first ticket is handled.
    send(
        ticket("W-0", "Uppvärmning", "Enhet 0", start),
        "rcp_w0".into(),
    )
    .await?;
    drained(&js, Duration::from_secs(60)).await?;

    let cases = [
        Case {
            name: "distinct disruptions (one new incident per ticket)",
            n: 1000,
            system: |i| format!("System {i}"),
        },
        Case {
            name: "one storm (every ticket updates one incident)",
            n: 500,
            system: |_| "Journalsystemet".to_string(),
        },
    ];
    for Case { name, n, system } in cases {
        let before = incident_events(&js).await?;
        let tickets: Vec<_> = (0..n)
            .map(|i| {
                ticket(
                    &format!("{}-{i}", &name[..3]),
                    &system(i),
                    &format!("Enhet {:02}", i % 20),
                    start,
                )
            })
            .collect();
        let t = Instant::now();
        let mut in_flight = futures::stream::FuturesUnordered::new();
        for (i, tk) in tickets.into_iter().enumerate() {
            in_flight.push(send(tk, format!("rcp_{}_{i}", &name[..3])));
            if in_flight.len() >= 256 {
                in_flight.next().await.transpose()?;
            }
        }
        while in_flight.next().await.transpose()?.is_some() {}
        drained(&js, Duration::from_secs(240)).await?;
        let secs = t.elapsed().as_secs_f64();
        let events = incident_events(&js).await? - before;
        let rate = n as f64 / secs;
        println!(
            "svc   {name}: {rate:>7.0} tickets/s in, {:>7.0} events/s out ({n} tickets, {events} events, {secs:.2} s); \
             {:.2} % of broker publish, {:.2} % of broker consume",
            events as f64 / secs,
            rate * 100.0 / broker.publish_rate,
            rate * 100.0 / broker.consume_rate,
        );
    }
    classifier.terminate()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    core()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let nats = NatsServer::start().await?;
        let b = broker(&nats).await?;
        println!(
            "nats  JetStream publish, 1,000 acks in flight: {:>9.0} msg/s; publish→ack p50 {:?} p99 {:?}; durable pull consume with ack {:>9.0} msg/s (256 B, file stream)",
            b.publish_rate, b.p50, b.p99, b.consume_rate
        );
        service(&nats, &b).await
    })
}
