//! Benchmark of the deadline-timer over a real nats-server and the real
//! (release) binary, printed beside the broker's own figures from the same
//! run (`nisvakt_testkit::baseline`), as ratios.
//!
//! 1. `NISVAKT_BENCH_TIMERS` (default 100,000) pending timers, scheduled by
//!    `ScheduleTimer` commands: schedule rate (commands handled per second,
//!    each one KV read + KV write + broker schedule + `scheduled` event),
//!    then resident memory of nats-server and of the service.
//! 2. `NISVAKT_BENCH_BURST` (default 10,000) more timers due in the same
//!    second, with the others still pending: firing lateness p50/p99/max
//!    (`fired_at − intended_at` as the service stamps it).
//!
//! Run: `cargo bench -p nisvakt-deadline-timer` (a few minutes on 2 cores).
//! It measures; it asserts nothing about speed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push};
use futures::StreamExt;
use nisvakt_bus::clock::to_timestamp;
use nisvakt_bus::{Publisher, SystemClock, TraceContext, subjects, topology};
use nisvakt_proto::v1::{DeadlineDue, ScheduleTimer, Timer, TimerKind};
use nisvakt_testkit::{NatsServer, ServiceProcess, baseline, free_port};
use prost::Message as _;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let n = env_usize("NISVAKT_BENCH_TIMERS", 100_000);
    let burst = env_usize("NISVAKT_BENCH_BURST", 10_000);
    let server = NatsServer::start().await?;
    eprintln!("measuring the broker's own figures …");
    let base = baseline::measure(&server).await;
    for p in &base.problems {
        eprintln!("baseline problem: {p}");
    }

    let js = jetstream::new(server.client().await?);
    topology::ensure(&js).await?;
    let publisher = Publisher::new(js.clone(), "bench", std::sync::Arc::new(SystemClock));
    let admin = free_port();
    let _svc = ServiceProcess::start(
        "nisvakt-deadline-timer",
        &[
            ("NATS_URL", server.url()),
            ("NISVAKT_ADMIN_ADDR", format!("127.0.0.1:{admin}")),
            ("NISVAKT_LOG", "warn".into()),
        ],
    )?;
    // Once the admin port answers, the child has exec'd and is the service.
    let until = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .is_err()
    {
        if Instant::now() > until {
            bail!("the service's admin port did not open");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nats_pid =
        find_pid(&format!("-p\0{}\0", server.port()), None).context("nats-server pid")?;
    let svc_pid = find_pid(
        "nisvakt-deadline-timer",
        Some(&format!("NISVAKT_ADMIN_ADDR=127.0.0.1:{admin}")),
    )
    .context("service pid")?;
    let rss_idle = (rss_kib(nats_pid), rss_kib(svc_pid));

    // 1. n pending timers, far in the future.
    eprintln!("scheduling {n} timers …");
    let far = chrono::Utc::now() + chrono::Duration::days(30);
    let start = Instant::now();
    publish_timers(&js, &publisher, "p", n, |i| {
        far + chrono::Duration::seconds(i as i64)
    })
    .await?;
    let published_in = start.elapsed();
    wait_commands_done(&js, Duration::from_secs(1800)).await?;
    let scheduled_in = start.elapsed();
    let rate = n as f64 / scheduled_in.as_secs_f64();
    let scheduled = count(&js, "nis.v1.deadline.*.scheduled").await?;
    if scheduled != n as u64 {
        bail!("{scheduled} scheduled events for {n} timers");
    }
    // Let one watchdog sweep over all of them pass before reading memory.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let rss_loaded = (rss_kib(nats_pid), rss_kib(svc_pid));

    // 2. A burst due in the same second, with the n still pending.
    let lead = Duration::from_secs_f64(burst as f64 / rate * 1.5 + 5.0);
    let due_at = chrono::Utc::now() + chrono::Duration::from_std(lead)?;
    let due_at = chrono::DateTime::from_timestamp(due_at.timestamp() + 1, 0).unwrap_or(due_at);
    eprintln!("scheduling {burst} timers due at {due_at} …");
    publish_timers(&js, &publisher, "b", burst, |_| due_at).await?;
    wait_commands_done(&js, lead + Duration::from_secs(600)).await?;
    if chrono::Utc::now() >= due_at {
        eprintln!("warning: the burst was not fully scheduled before its second");
    }
    let lateness = collect_lateness(&js, burst, Duration::from_secs(600)).await?;
    let rss_after = (rss_kib(nats_pid), rss_kib(svc_pid));

    let pct = |q: f64| lateness[((lateness.len() - 1) as f64 * q) as usize];
    let (p50, p99, max) = (pct(0.50), pct(0.99), pct(1.0));
    let burst_secs = max as f64 / 1000.0;
    let firing_rate = if burst_secs > 0.0 {
        burst as f64 / burst_secs
    } else {
        f64::NAN
    };

    println!("\n## deadline-timer benchmark ({n} pending timers, burst of {burst})\n");
    println!("{}", base.table());
    println!("| deadline-timer | figure | beside the broker |\n|---|---|---|");
    println!(
        "| schedule rate ({n} ScheduleTimer commands, published in {:.1} s) | {rate:.0} timers/s | {:.3} × JetStream publish with 1000 in flight |",
        published_in.as_secs_f64(),
        rate / base.js_publish_msgs_per_s
    );
    println!(
        "| firing lateness, {burst} due in the same second | p50 {p50} ms, p99 {p99} ms, max {max} ms | p50 = {:.0} × publish→ack p50 |",
        p50 as f64 * 1000.0 / base.js_rtt_p50.as_micros().max(1) as f64
    );
    println!(
        "| firing throughput in that burst | {firing_rate:.0} firings/s | {:.3} × durable pull consume with ack |",
        firing_rate / base.pull_consume_msgs_per_s
    );
    for (label, (nats, svc)) in [
        ("before any timer", rss_idle),
        (&*format!("{n} pending") as &str, rss_loaded),
        (&*format!("{n} pending + {burst} fired") as &str, rss_after),
    ]
    .iter()
    .map(|(l, v)| (l.to_string(), *v))
    .collect::<Vec<_>>()
    {
        println!(
            "| resident memory, {label} | nats-server {} MiB, service {} MiB | |",
            nats / 1024,
            svc / 1024
        );
    }
    Ok(())
}

/// Publishes `count` `ScheduleTimer` commands with 1000 acks in flight.
async fn publish_timers(
    js: &jetstream::Context,
    publisher: &Publisher,
    prefix: &str,
    count: usize,
    due: impl Fn(usize) -> chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let trace = TraceContext::new_root();
    let mut in_flight = VecDeque::with_capacity(1000);
    for i in 0..count {
        let id = format!("{prefix}{i}");
        let timer = Timer {
            id: id.clone(),
            kind: TimerKind::Deadline as i32,
            incident_id: format!("inc_bench_{prefix}{}", i / 4),
            due_at: Some(to_timestamp(due(i))),
            ..Default::default()
        };
        let headers = publisher.headers::<ScheduleTimer>(&format!("bench:{id}"), &trace);
        let payload = ScheduleTimer { timer: Some(timer) }.encode_to_vec();
        if in_flight.len() == 1000
            && let Some(ack) = in_flight.pop_front()
        {
            let _: async_nats::jetstream::publish::PublishAck = ack_of(ack).await?;
        }
        in_flight.push_back(
            js.publish_with_headers(
                subjects::timer_command(&id, "schedule"),
                headers,
                payload.into(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    for ack in in_flight {
        ack_of(ack).await?;
    }
    Ok(())
}

async fn ack_of(
    ack: async_nats::jetstream::context::PublishAckFuture,
) -> anyhow::Result<async_nats::jetstream::publish::PublishAck> {
    ack.await.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Waits until the service's command consumer has nothing left.
async fn wait_commands_done(js: &jetstream::Context, timeout: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + timeout;
    let mut stream = js.get_stream(topology::COMMANDS).await?;
    loop {
        if let Ok(info) = stream.consumer_info("deadline-timer-commands").await
            && info.num_pending == 0
            && info.num_ack_pending == 0
        {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("the service did not handle every command within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = stream.info().await;
    }
}

/// How many messages a subject filter holds in the deadline stream.
async fn count(js: &jetstream::Context, filter: &str) -> anyhow::Result<u64> {
    let stream = js.get_stream(topology::DEADLINES).await?;
    let c = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subject: filter.to_string(),
            deliver_policy: DeliverPolicy::All,
            headers_only: true,
            ..Default::default()
        })
        .await?;
    Ok(c.cached_info().num_pending)
}

/// Reads the burst's `due` events as they arrive; lateness in ms, sorted.
async fn collect_lateness(
    js: &jetstream::Context,
    burst: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<i64>> {
    let stream = js.get_stream(topology::DEADLINES).await?;
    let c = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subject: "nis.v1.deadline.*.due".into(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut msgs = c.messages().await?;
    let mut out = Vec::with_capacity(burst);
    let until = tokio::time::Instant::now() + timeout;
    while out.len() < burst {
        let m = tokio::time::timeout_at(until, msgs.next())
            .await
            .with_context(|| format!("only {} of {burst} firings arrived", out.len()))?
            .context("stream ended")??;
        let f = DeadlineDue::decode(m.payload.as_ref())?
            .firing
            .context("due without firing")?;
        out.push(f.lateness_ms);
    }
    out.sort_unstable();
    Ok(out)
}

/// The pid of a process whose command line contains `needle` (NUL
/// separates arguments) and, if given, whose environment contains `env`.
fn find_pid(needle: &str, env: Option<&str>) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let mut cmd = String::from_utf8_lossy(&cmd).to_string();
        cmd.push('\0');
        if !cmd.contains(needle) {
            continue;
        }
        if let Some(e) = env {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if !String::from_utf8_lossy(&environ)
                .split('\0')
                .any(|v| v == e)
            {
                continue;
            }
        }
        return Some(pid);
    }
    None
}

/// VmRSS of a process in KiB (0 when unreadable).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
