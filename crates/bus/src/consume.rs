//! The consumer loop every service runs: a durable pull consumer, one
//! message at a time, explicit acks. A handler says whether a failure is
//! transient (nak with backoff, tried again) or permanent (the message is
//! terminated and copied to `nis.v1.deadletter.<service>.<subject>`). A
//! message that keeps failing goes to the dead-letter subject after
//! `max_deliver` attempts. On shutdown the loop finishes the message in
//! hand and returns; unacked messages come back to the next run.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::publish::headers;
use crate::{Error, Metrics, Publisher, Shutdown, TraceContext};

/// What went wrong in a handler, as the loop must treat it.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth trying again (a store conflict, the broker busy).
    #[error("transient: {0}")]
    Transient(String),
    /// Trying again cannot help (undecodable, invalid): dead-letter now.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<Error> for HandleError {
    fn from(e: Error) -> Self {
        HandleError::Transient(e.to_string())
    }
}

/// One message handed to a handler.
#[derive(Debug)]
pub struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its payload.
    pub payload: bytes::Bytes,
    /// The trace context it carried (a new root when it carried none).
    pub trace: TraceContext,
    /// How many times it has been delivered (1 the first time).
    pub delivered: i64,
    /// Its stream sequence.
    pub stream_sequence: u64,
}

impl Delivery {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.as_str())
    }

    /// Decodes the payload as `E`, checking `ce-type` when present.
    pub fn decode<E: nisvakt_proto::Event>(&self) -> Result<E, HandleError> {
        if let Some(t) = self.header(headers::CE_TYPE)
            && t != E::TYPE
        {
            return Err(HandleError::Permanent(format!(
                "expected ce-type {}, got {t}",
                E::TYPE
            )));
        }
        E::decode(self.payload.as_ref())
            .map_err(|e| HandleError::Permanent(format!("undecodable {}: {e}", E::TYPE)))
    }
}

/// A durable consumer's definition.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The stream it reads.
    pub stream: &'static str,
    /// The durable name (shared by replicas of one service).
    pub durable: String,
    /// Subjects it takes (empty: all of the stream).
    pub filter_subjects: Vec<String>,
    /// Deliveries before a failing message is dead-lettered.
    pub max_deliver: i64,
    /// How long the broker waits for an ack before redelivering.
    pub ack_wait: Duration,
}

impl ConsumerSpec {
    /// A spec with the house defaults: 8 deliveries, 30 s ack wait.
    pub fn new(stream: &'static str, durable: &str, filters: &[&str]) -> Self {
        ConsumerSpec {
            stream,
            durable: durable.to_string(),
            filter_subjects: filters.iter().map(|s| s.to_string()).collect(),
            max_deliver: 8,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// Creates (or opens) the durable consumer.
pub async fn consumer(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
) -> Result<jetstream::consumer::Consumer<pull::Config>, Error> {
    let stream = js
        .get_stream(spec.stream)
        .await
        .map_err(|e| Error::Topology(format!("stream {}: {e}", spec.stream)))?;
    stream
        .get_or_create_consumer(
            &spec.durable,
            pull::Config {
                durable_name: Some(spec.durable.clone()),
                filter_subjects: spec.filter_subjects.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                // The loop itself dead-letters at max_deliver; the broker's
                // limit is one more so a message is never silently dropped.
                max_deliver: spec.max_deliver + 1,
                ack_wait: spec.ack_wait,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| Error::Topology(format!("consumer {}: {e}", spec.durable)))
}

/// Backoff before the n-th redelivery: 200 ms doubling, capped at 30 s.
pub fn backoff(delivered: i64) -> Duration {
    let exp = delivered.clamp(1, 10) as u32 - 1;
    Duration::from_millis(200u64.saturating_mul(1 << exp)).min(Duration::from_secs(30))
}

/// Runs `handler` over the consumer until shutdown. Returns when the
/// shutdown flag is set (after finishing the message in hand) or when the
/// consumer cannot be read any more.
pub async fn run<H, Fut>(
    publisher: Publisher,
    service: &'static str,
    spec: ConsumerSpec,
    metrics: Metrics,
    shutdown: Shutdown,
    handler: H,
) -> Result<(), Error>
where
    H: Fn(Delivery) -> Fut,
    Fut: std::future::Future<Output = Result<(), HandleError>>,
{
    let consumer = consumer(publisher.jetstream(), &spec).await?;
    let mut messages = consumer
        .stream()
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(Error::nats)?;
    tracing::info!(consumer = %spec.durable, stream = spec.stream, "consuming");
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => break,
            next = messages.next() => next,
        };
        let msg = match next {
            None => return Err(Error::Nats("consumer stream ended".into())),
            Some(Err(e)) => {
                tracing::warn!(error = %e, consumer = %spec.durable, "consumer read failed; continuing");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Some(Ok(m)) => m,
        };
        let (delivered, stream_sequence) = match msg.info() {
            Ok(i) => (i.delivered, i.stream_sequence),
            Err(_) => (1, 0),
        };
        let headers = msg.headers.clone().unwrap_or_default();
        let trace = headers
            .get(headers::TRACEPARENT)
            .and_then(|v| TraceContext::parse(v.as_str()))
            .unwrap_or_else(TraceContext::new_root);
        let delivery = Delivery {
            subject: msg.subject.to_string(),
            headers,
            payload: msg.payload.clone(),
            trace,
            delivered,
            stream_sequence,
        };
        let span = tracing::info_span!(
            "handle",
            service,
            subject = %delivery.subject,
            trace_id = %trace.trace_id_hex(),
            delivered
        );
        let _ = span.set_parent(trace.to_otel());
        let subject = delivery.subject.clone();
        let hdrs = delivery.headers.clone();
        let payload = delivery.payload.clone();
        let result = handler(delivery).instrument(span.clone()).await;
        let _enter = span.enter();
        match result {
            Ok(()) => {
                metrics.inc(
                    "nisvakt_messages_handled_total",
                    &[("consumer", &spec.durable)],
                );
                if let Err(e) = msg.double_ack().await {
                    // The broker will redeliver; the handler is idempotent.
                    tracing::warn!(error = %e, "ack not confirmed; message may be redelivered");
                }
            }
            Err(HandleError::Transient(reason)) if delivered < spec.max_deliver => {
                metrics.inc(
                    "nisvakt_messages_retried_total",
                    &[("consumer", &spec.durable)],
                );
                let wait = backoff(delivered);
                tracing::warn!(%reason, ?wait, "transient failure; will retry");
                let _ = msg.ack_with(AckKind::Nak(Some(wait))).await;
            }
            Err(e) => {
                metrics.inc(
                    "nisvakt_messages_deadlettered_total",
                    &[("consumer", &spec.durable)],
                );
                tracing::error!(error = %e, "dead-lettering message");
                let mut h = hdrs;
                h.insert(headers::DEADLETTER_REASON, e.to_string().as_str());
                h.insert(headers::DEADLETTER_SUBJECT, subject.as_str());
                // A fresh id: the original's id is already in the dedup window.
                h.insert(
                    headers::MSG_ID,
                    format!("dlq:{}:{}:{}", spec.stream, stream_sequence, delivered).as_str(),
                );
                let dl = crate::subjects::deadletter(service, &subject);
                match publisher.publish_raw(dl, h, payload).await {
                    Ok(_) => {
                        let _ = msg.ack_with(AckKind::Term).await;
                    }
                    Err(e) => {
                        // Not stored: leave it to redelivery rather than lose it.
                        tracing::error!(error = %e, "dead-letter publish failed; will retry");
                        let _ = msg.ack_with(AckKind::Nak(Some(backoff(delivered)))).await;
                    }
                }
            }
        }
    }
    tracing::info!(consumer = %spec.durable, "consumer drained");
    Ok(())
}
