//! Accept throughput and latency at the HTTP door with real persistence:
//! a real nats-server (file storage), intake in-process with
//! authentication on, several concurrent clients posting distinct tickets.
//! Printed beside the broker's own JetStream publish rate and publish→ack
//! latency measured in the same run, on the same machine, so the figures
//! read as ratios of the physical limit.
//!
//! `cargo bench -p nisvakt-intake` (about a minute; `NISVAKT_BENCH_SECS`
//! and `NISVAKT_BENCH_CLIENTS` change the run).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use nisvakt_testkit::{NatsServer, free_port};

const TOKEN: &str = "bench-ticketing-token";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn ticket(client: usize, n: u64) -> serde_json::Value {
    let now = chrono::Utc::now().to_rfc3339();
    serde_json::json!({
        "source": "bench",
        "ticket_id": format!("B-{client}-{n}"),
        "revision": 1,
        "subject": "Eventuell NIS-incident: journalsystemet svarar långsamt, patient 850712-1234",
        "description": "Flera på enheten kan inte öppna journalen sedan klockan åtta.",
        "reported_at": now,
        "unit": "Hemsjukvården Centrum",
        "system": "Journalsystemet",
        "care_blocked": true,
    })
}

async fn door(secs: u64, clients: usize) -> anyhow::Result<(f64, Duration, Duration, u64, u64)> {
    let nats = NatsServer::start().await?;
    let http_port = free_port();
    let config: nisvakt_intake::Config = nisvakt_bus::config::try_parse_from([
        "nisvakt-intake".to_string(),
        "--nats-url".into(),
        nats.url(),
        "--http-addr".into(),
        format!("127.0.0.1:{http_port}"),
        "--grpc-addr".into(),
        format!("127.0.0.1:{}", free_port()),
        "--admin-addr".into(),
        format!("127.0.0.1:{}", free_port()),
        "--tokens".into(),
        format!("ticketing={TOKEN}"),
        "--log".into(),
        "warn".into(),
    ])?;
    let shutdown = nisvakt_bus::Shutdown::new();
    let task = tokio::spawn(nisvakt_intake::run(config, shutdown.clone()));
    let url = format!("http://127.0.0.1:{http_port}/v1/tickets");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(clients)
        .build()?;
    // Ready when a ticket is accepted.
    let ready = Instant::now();
    loop {
        let r = http
            .post(&url)
            .bearer_auth(TOKEN)
            .json(&ticket(999, 0))
            .send()
            .await;
        if r.as_ref().is_ok_and(|r| r.status().as_u16() == 202) {
            break;
        }
        anyhow::ensure!(
            ready.elapsed() < Duration::from_secs(30),
            "intake not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = Instant::now() + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for c in 0..clients {
        let http = http.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0u64;
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let body = ticket(c, n);
                let t = Instant::now();
                match http.post(&url).bearer_auth(TOKEN).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 202 => lat.push(t.elapsed()),
                    _ => failed += 1,
                }
            }
            (lat, failed)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut failed = 0;
    for w in workers {
        let (l, f) = w.await?;
        all.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    Ok((
        all.len() as f64 / elapsed,
        pct(&all, 0.5),
        pct(&all, 0.99),
        all.len() as u64,
        failed,
    ))
}

async fn broker(messages: usize) -> anyhow::Result<(f64, Duration, Duration)> {
    let nats = NatsServer::start().await?;
    let client = nats.client().await?;
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; 512]);
    // Throughput: up to 1000 acks in flight.
    let started = Instant::now();
    let mut inflight = std::collections::VecDeque::new();
    for i in 0..messages {
        inflight.push_back(
            js.publish(format!("bench.{}", i % 16), payload.clone())
                .await?,
        );
        if inflight.len() >= 1000
            && let Some(f) = inflight.pop_front()
        {
            f.await?;
        }
    }
    for f in inflight {
        f.await?;
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    // Round trip: one at a time.
    let mut lat = Vec::new();
    for i in 0..3000 {
        let t = Instant::now();
        js.publish(format!("bench.rt.{}", i % 16), payload.clone())
            .await?
            .await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok((rate, pct(&lat, 0.5), pct(&lat, 0.99)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs = env_or("NISVAKT_BENCH_SECS", 15);
    let clients = env_or("NISVAKT_BENCH_CLIENTS", 16) as usize;
    println!(
        "intake accept benchmark: {clients} clients for {secs} s, authentication on, file storage"
    );
    let (b_rate, b_p50, b_p99) = broker(100_000).await?;
    let (rate, p50, p99, ok, failed) = door(secs, clients).await?;
    println!();
    println!("| what | figure |");
    println!("|---|---|");
    println!("| JetStream publish, 512 B, 1000 acks in flight | {b_rate:.0} msg/s |");
    println!(
        "| JetStream publish→ack, one at a time | p50 {} · p99 {} |",
        us(b_p50),
        us(b_p99)
    );
    println!(
        "| intake POST /v1/tickets accepted ({clients} clients) | {rate:.0} tickets/s ({:.1} % of the broker's rate) |",
        100.0 * rate / b_rate
    );
    println!(
        "| intake accept latency | p50 {} · p99 {} ({:.1}× / {:.1}× the broker's round trip) |",
        us(p50),
        us(p99),
        p50.as_secs_f64() / b_p50.as_secs_f64().max(1e-9),
        p99.as_secs_f64() / b_p99.as_secs_f64().max(1e-9)
    );
    println!("| tickets accepted / failed | {ok} / {failed} |");
    Ok(())
}
