//! Publishing: every event goes to JetStream as protobuf in CloudEvents
//! binary mode, with `Nats-Msg-Id` for de-duplication and a W3C
//! `traceparent`, and is only reported as done once the broker stored it.

use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream;
use nisvakt_proto::Event;

use crate::{Clock, Error, TraceContext};

/// Header names of CloudEvents binary mode and W3C trace context.
pub mod headers {
    /// JetStream de-duplication key.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// Always `1.0`.
    pub const CE_SPECVERSION: &str = "ce-specversion";
    /// A unique id per event (ULID).
    pub const CE_ID: &str = "ce-id";
    /// `nisvakt/<service>`.
    pub const CE_SOURCE: &str = "ce-source";
    /// The fully-qualified protobuf message name.
    pub const CE_TYPE: &str = "ce-type";
    /// When the event was published (RFC 3339, UTC).
    pub const CE_TIME: &str = "ce-time";
    /// `application/protobuf`.
    pub const CONTENT_TYPE: &str = "content-type";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// Why a message was dead-lettered.
    pub const DEADLETTER_REASON: &str = "nisvakt-deadletter-reason";
    /// The subject a dead-lettered message came from.
    pub const DEADLETTER_SUBJECT: &str = "nisvakt-deadletter-subject";
}

/// What the broker said about a publish.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    /// The stream sequence of the stored message (the original one for a
    /// duplicate).
    pub sequence: u64,
    /// True when the broker had the same `Nats-Msg-Id` already.
    pub duplicate: bool,
}

/// Publishes events for one service.
#[derive(Clone, Debug)]
pub struct Publisher {
    js: jetstream::Context,
    source: String,
    clock: Arc<dyn Clock>,
}

impl Publisher {
    /// A publisher that stamps `ce-source: nisvakt/<service>`.
    pub fn new(js: jetstream::Context, service: &str, clock: Arc<dyn Clock>) -> Self {
        Publisher {
            js,
            source: format!("nisvakt/{service}"),
            clock,
        }
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The CloudEvents and tracing headers for one event, with its
    /// de-duplication id.
    pub fn headers<E: Event>(&self, msg_id: &str, trace: &TraceContext) -> HeaderMap {
        let mut h = self.event_headers::<E>(trace);
        h.insert(headers::MSG_ID, msg_id);
        h
    }

    /// The CloudEvents and tracing headers without a de-duplication id
    /// (for messages that must replace an earlier one on the same subject).
    pub fn event_headers<E: Event>(&self, trace: &TraceContext) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::CE_SPECVERSION, "1.0");
        h.insert(headers::CE_ID, ulid::Ulid::generate().to_string().as_str());
        h.insert(headers::CE_SOURCE, self.source.as_str());
        h.insert(headers::CE_TYPE, E::TYPE);
        h.insert(
            headers::CE_TIME,
            self.clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .as_str(),
        );
        h.insert(headers::CONTENT_TYPE, "application/protobuf");
        h.insert(headers::TRACEPARENT, trace.next_hop().to_string().as_str());
        h
    }

    /// Publishes one event and waits until the broker stored it.
    pub async fn publish<E: Event>(
        &self,
        subject: impl Into<String>,
        msg_id: &str,
        event: &E,
        trace: &TraceContext,
    ) -> Result<Published, Error> {
        let h = self.headers::<E>(msg_id, trace);
        self.publish_raw(subject.into(), h, event.encode_to_vec().into())
            .await
    }

    /// Publishes prepared headers and payload and waits for the broker.
    pub async fn publish_raw(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<Published, Error> {
        let fail = |reason: String| Error::Publish {
            subject: subject.clone(),
            reason,
        };
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, payload)
            .await
            .map_err(|e| fail(e.to_string()))?
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(Published {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}
