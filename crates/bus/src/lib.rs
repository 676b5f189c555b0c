//! NATS JetStream plumbing shared by every nisvakt service, in one place:
//! connecting with backoff, creating the topology idempotently, publishing
//! CloudEvents-framed protobuf with `Nats-Msg-Id` and `traceparent`, the
//! consumer loop (explicit ack, nak with backoff, dead-letter), the admin
//! server, telemetry, configuration layering and shutdown.
//!
//! It knows nothing about incidents or rules: services bring their own
//! handlers and this crate runs them.

pub mod admin;
pub mod clock;
pub mod config;
pub mod connect;
pub mod consume;
pub mod convert;
pub mod kv;
pub mod metrics;
pub mod publish;
pub mod runtime;
pub mod shutdown;
pub mod subjects;
pub mod telemetry;
pub mod topology;
pub mod trace;

pub use clock::{Clock, SystemClock};
pub use consume::{Delivery, HandleError};
pub use metrics::Metrics;
pub use publish::{Published, Publisher};
pub use runtime::Runtime;
pub use shutdown::Shutdown;
pub use trace::TraceContext;

/// Errors of the plumbing that a caller must tell apart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker could not be reached or the request failed in transit.
    #[error("nats: {0}")]
    Nats(String),
    /// A stream, consumer or bucket could not be created or found.
    #[error("topology: {0}")]
    Topology(String),
    /// The server refused a publish or did not confirm it.
    #[error("publish to {subject}: {reason}")]
    Publish {
        /// Where it was going.
        subject: String,
        /// What the broker said.
        reason: String,
    },
    /// Shutting down: no new work is taken.
    #[error("shutting down")]
    ShuttingDown,
}

impl Error {
    pub(crate) fn nats(e: impl std::fmt::Display) -> Self {
        Error::Nats(e.to_string())
    }
}
