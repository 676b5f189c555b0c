//! The broker's own speed, measured in the same run as a benchmark, so a
//! benchmark of nisvakt can print its figures beside the physical limit of
//! this machine as ratios (DEPENDENCIES.md, "The broker's own speed").
//!
//! Four figures with 256-byte messages on loopback, a few seconds each:
//! core publish + subscribe, JetStream publish to a file stream with 1000
//! acks in flight, the JetStream publish→ack round trip, and a durable pull
//! consumer with explicit acks.
//!
//! Core pub/sub and pull consumption speak the NATS text protocol over TCP
//! directly (this crate carries no `futures` to poll async-nats's streams,
//! and a bare protocol client adds the least of its own cost); JetStream
//! publishing uses async-nats, as the services do. It must never be used by
//! anything but tests and benchmarks: it floods the server it is given.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::NatsServer;

/// Payload size of every measurement.
pub const MESSAGE_BYTES: usize = 256;
/// How long each throughput measurement runs.
pub const WINDOW: Duration = Duration::from_secs(3);
const STREAM: &str = "NISVAKT_BASELINE";
static PAYLOAD: [u8; MESSAGE_BYTES] = [b'x'; MESSAGE_BYTES];

/// The broker's figures from one run. A figure that could not be measured
/// is `NaN`, and `problems` says why.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    /// Core publish + subscribe, messages per second received.
    pub core_msgs_per_s: f64,
    /// JetStream publish to a file stream, 1000 acks in flight, msg/s.
    pub js_publish_msgs_per_s: f64,
    /// JetStream publish→ack round trip, median.
    pub js_rtt_p50: Duration,
    /// JetStream publish→ack round trip, 99th percentile.
    pub js_rtt_p99: Duration,
    /// Durable pull consume with explicit ack, msg/s.
    pub pull_consume_msgs_per_s: f64,
    /// What went wrong, per figure that is missing.
    pub problems: Vec<String>,
}

impl Baseline {
    /// The figures as a Markdown table.
    pub fn table(&self) -> String {
        format!(
            "| broker, same run | figure |\n|---|---|\n\
             | core publish + subscribe | {:.0} msg/s |\n\
             | JetStream publish, file stream, 1000 acks in flight | {:.0} msg/s |\n\
             | JetStream publish→ack round trip | p50 {} µs, p99 {} µs |\n\
             | durable pull consume with ack | {:.0} msg/s |\n",
            self.core_msgs_per_s,
            self.js_publish_msgs_per_s,
            self.js_rtt_p50.as_micros(),
            self.js_rtt_p99.as_micros(),
            self.pull_consume_msgs_per_s,
        )
    }
}

/// Measures the broker. Creates and deletes its own stream
/// (`NISVAKT_BASELINE`, subjects `baseline.>`), so run it on a server
/// whose other streams do not capture `baseline.>`.
pub async fn measure(server: &NatsServer) -> Baseline {
    let mut b = Baseline {
        core_msgs_per_s: f64::NAN,
        js_publish_msgs_per_s: f64::NAN,
        pull_consume_msgs_per_s: f64::NAN,
        ..Default::default()
    };
    match core_pub_sub(server.port()).await {
        Ok(r) => b.core_msgs_per_s = r,
        Err(e) => b.problems.push(format!("core pub/sub: {e}")),
    }
    let js = match server.client().await {
        Ok(c) => jetstream::new(c),
        Err(e) => {
            b.problems.push(format!("connect: {e}"));
            return b;
        }
    };
    let _ = js.delete_stream(STREAM).await;
    if let Err(e) = js
        .create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec!["baseline.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
    {
        b.problems.push(format!("create stream: {e}"));
        return b;
    }
    match js_publish(&js).await {
        Ok(r) => b.js_publish_msgs_per_s = r,
        Err(e) => b.problems.push(format!("js publish: {e}")),
    }
    match js_round_trip(&js).await {
        Ok((p50, p99)) => (b.js_rtt_p50, b.js_rtt_p99) = (p50, p99),
        Err(e) => b.problems.push(format!("js round trip: {e}")),
    }
    match pull_consume(&js, server.port()).await {
        Ok(r) => b.pull_consume_msgs_per_s = r,
        Err(e) => b.problems.push(format!("pull consume: {e}")),
    }
    let _ = js.delete_stream(STREAM).await;
    b
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One message frame of the text protocol.
struct Frame {
    reply: Option<String>,
    /// The status code of a header-only status message (404, 408, …).
    status: Option<u16>,
}

/// A bare NATS protocol connection.
struct Raw {
    rd: BufReader<OwnedReadHalf>,
    wr: BufWriter<OwnedWriteHalf>,
    line: String,
    body: Vec<u8>,
}

impl Raw {
    async fn connect(port: u16) -> Result<Raw> {
        let (rd, wr) = TcpStream::connect(("127.0.0.1", port)).await?.into_split();
        let mut raw = Raw {
            rd: BufReader::with_capacity(1 << 20, rd),
            wr: BufWriter::with_capacity(1 << 20, wr),
            line: String::new(),
            body: Vec::new(),
        };
        raw.rd.read_line(&mut raw.line).await?; // INFO
        raw.wr
            .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}\r\n")
            .await?;
        raw.ping().await?;
        Ok(raw)
    }

    /// Round trip to the server: everything written before is processed.
    async fn ping(&mut self) -> Result<()> {
        self.wr.write_all(b"PING\r\n").await?;
        self.wr.flush().await?;
        loop {
            self.line.clear();
            if self.rd.read_line(&mut self.line).await? == 0 {
                return Err("connection closed".into());
            }
            if self.line.starts_with("PONG") {
                return Ok(());
            }
            if self.line.starts_with("-ERR") {
                return Err(self.line.trim().to_string().into());
            }
        }
    }

    async fn publish(&mut self, subject: &str, reply: Option<&str>, payload: &[u8]) -> Result<()> {
        let head = match reply {
            Some(r) => format!("PUB {subject} {r} {}\r\n", payload.len()),
            None => format!("PUB {subject} {}\r\n", payload.len()),
        };
        self.wr.write_all(head.as_bytes()).await?;
        self.wr.write_all(payload).await?;
        self.wr.write_all(b"\r\n").await?;
        Ok(())
    }

    /// The next message, answering server pings on the way.
    async fn next(&mut self) -> Result<Frame> {
        loop {
            if self.rd.buffer().is_empty() {
                self.wr.flush().await?;
            }
            self.line.clear();
            if self.rd.read_line(&mut self.line).await? == 0 {
                return Err("connection closed".into());
            }
            let parts: Vec<&str> = self.line.split_whitespace().collect();
            match parts.first().copied() {
                Some("MSG") => {
                    let (reply, size) = match parts.len() {
                        5 => (Some(parts[3].to_string()), parts[4]),
                        _ => (None, *parts.get(3).ok_or("bad MSG")?),
                    };
                    let size: usize = size.parse()?;
                    self.body.resize(size + 2, 0);
                    self.rd.read_exact(&mut self.body).await?;
                    return Ok(Frame {
                        reply,
                        status: None,
                    });
                }
                Some("HMSG") => {
                    let (reply, hdr, total) = match parts.len() {
                        6 => (Some(parts[3].to_string()), parts[4], parts[5]),
                        _ => (
                            None,
                            *parts.get(3).ok_or("bad HMSG")?,
                            *parts.get(4).ok_or("bad HMSG")?,
                        ),
                    };
                    let (hdr, total): (usize, usize) = (hdr.parse()?, total.parse()?);
                    self.body.resize(total + 2, 0);
                    self.rd.read_exact(&mut self.body).await?;
                    let head = String::from_utf8_lossy(&self.body[..hdr.min(self.body.len())]);
                    let status = head
                        .strip_prefix("NATS/1.0 ")
                        .and_then(|s| s.get(..3))
                        .and_then(|s| s.parse().ok());
                    return Ok(Frame { reply, status });
                }
                Some("PING") => self.wr.write_all(b"PONG\r\n").await?,
                Some("-ERR") => return Err(self.line.trim().to_string().into()),
                _ => {}
            }
        }
    }
}

async fn core_pub_sub(port: u16) -> Result<f64> {
    let mut sub = Raw::connect(port).await?;
    sub.wr.write_all(b"SUB baseline.core 1\r\n").await?;
    sub.ping().await?;
    let reader = tokio::spawn(async move {
        let mut n = 0u64;
        let mut first = None;
        let mut last = Instant::now();
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
            n += 1;
            last = Instant::now();
            first.get_or_insert(last);
        }
        (n, first.map(|f| last - f))
    });
    let mut publisher = Raw::connect(port).await?;
    let start = Instant::now();
    'outer: loop {
        for _ in 0..1000 {
            publisher.publish("baseline.core", None, &PAYLOAD).await?;
        }
        if start.elapsed() > WINDOW {
            break 'outer;
        }
    }
    publisher.ping().await?;
    let (n, span) = reader.await?;
    let secs = span.map(|d| d.as_secs_f64()).unwrap_or(0.0);
    if n == 0 || secs == 0.0 {
        return Err("nothing received".into());
    }
    Ok(n as f64 / secs)
}

async fn js_publish(js: &jetstream::Context) -> Result<f64> {
    let mut in_flight = VecDeque::with_capacity(1000);
    let mut acked = 0u64;
    let start = Instant::now();
    while start.elapsed() < WINDOW {
        if in_flight.len() == 1000
            && let Some(ack) = in_flight.pop_front()
        {
            ack.await?;
            acked += 1;
        }
        in_flight.push_back(js.publish("baseline.js", (&PAYLOAD[..]).into()).await?);
    }
    for ack in in_flight {
        ack.await?;
        acked += 1;
    }
    Ok(acked as f64 / start.elapsed().as_secs_f64())
}

async fn js_round_trip(js: &jetstream::Context) -> Result<(Duration, Duration)> {
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        js.publish("baseline.rtt", (&PAYLOAD[..]).into())
            .await?
            .await?;
        samples.push(t.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Ok((at(0.50), at(0.99)))
}

/// Consumes what `js_publish` stored with a durable pull consumer and
/// explicit acks, pulling in batches with one request always ahead.
async fn pull_consume(js: &jetstream::Context, port: u16) -> Result<f64> {
    let stream = js.get_stream(STREAM).await?;
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("baseline".into()),
            filter_subject: "baseline.js".into(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let available = js.get_stream(STREAM).await?.cached_info().state.messages;
    let mut raw = Raw::connect(port).await?;
    raw.wr.write_all(b"SUB _BASELINE.pull 1\r\n").await?;
    const BATCH: u64 = 1000;
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM}.baseline");
    let request = format!("{{\"batch\":{BATCH},\"expires\":2000000000}}");
    let start = Instant::now();
    let mut requested = 0u64;
    for _ in 0..2 {
        raw.publish(&next, Some("_BASELINE.pull"), request.as_bytes())
            .await?;
        requested += BATCH;
    }
    let mut got = 0u64;
    while start.elapsed() < WINDOW && got < available {
        let frame = match tokio::time::timeout(Duration::from_secs(3), raw.next()).await {
            Ok(f) => f?,
            Err(_) => break,
        };
        if frame.status.is_some() {
            continue; // a request expired or ran dry; the next one is out
        }
        if let Some(reply) = frame.reply {
            raw.publish(&reply, None, b"").await?;
            got += 1;
            if requested - got < BATCH {
                raw.publish(&next, Some("_BASELINE.pull"), request.as_bytes())
                    .await?;
                requested += BATCH;
            }
        }
    }
    raw.ping().await?;
    if got == 0 {
        return Err("nothing consumed".into());
    }
    Ok(got as f64 / start.elapsed().as_secs_f64())
}
