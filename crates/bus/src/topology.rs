//! The JetStream topology: every stream and KV bucket nisvakt uses, created
//! idempotently at start-up by whichever service comes first. File storage
//! everywhere: nothing accepted may be lost when the broker restarts.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::Error;

/// One stream of the contract.
#[derive(Debug, Clone, Copy)]
pub struct StreamDef {
    /// Stream name.
    pub name: &'static str,
    /// Subjects it captures.
    pub subjects: &'static [&'static str],
    /// Whether it holds JetStream message schedules (the timer stream).
    pub schedules: bool,
    /// How long `Nats-Msg-Id` de-duplication remembers an id.
    pub duplicate_window: Duration,
}

/// Ticket events.
pub const TICKETS: &str = "NIS_TICKETS";
/// Operator and timer commands.
pub const COMMANDS: &str = "NIS_COMMANDS";
/// Incident events.
pub const INCIDENTS: &str = "NIS_INCIDENTS";
/// Deadline, threshold and escalation firings.
pub const DEADLINES: &str = "NIS_DEADLINES";
/// The deadline-timer's schedules and the broker's firings of them.
pub const TIMERS: &str = "NIS_TIMERS";
/// Alerts.
pub const ALERTS: &str = "NIS_ALERTS";
/// Delivery records.
pub const DELIVERIES: &str = "NIS_DELIVERIES";
/// Messages that could not be processed.
pub const DEADLETTER: &str = "NIS_DEADLETTER";

const MIN: Duration = Duration::from_secs(60);

/// Every stream, in the order they are created.
pub const STREAMS: &[StreamDef] = &[
    StreamDef {
        name: TICKETS,
        subjects: &["nis.v1.ticket.accepted"],
        schedules: false,
        duplicate_window: Duration::from_secs(3600),
    },
    StreamDef {
        name: COMMANDS,
        subjects: &["nis.v1.command.>"],
        schedules: false,
        duplicate_window: Duration::from_secs(3600),
    },
    StreamDef {
        name: INCIDENTS,
        subjects: &["nis.v1.incident.>"],
        schedules: false,
        duplicate_window: Duration::from_secs(600),
    },
    StreamDef {
        name: DEADLINES,
        subjects: &["nis.v1.deadline.>"],
        schedules: false,
        duplicate_window: Duration::from_secs(3600),
    },
    StreamDef {
        name: TIMERS,
        subjects: &["nis.v1.timer.>"],
        schedules: true,
        duplicate_window: Duration::from_secs(120),
    },
    StreamDef {
        name: ALERTS,
        subjects: &["nis.v1.alert.>"],
        schedules: false,
        duplicate_window: Duration::from_secs(3600),
    },
    StreamDef {
        name: DELIVERIES,
        subjects: &["nis.v1.delivery.>"],
        schedules: false,
        duplicate_window: Duration::from_secs(600),
    },
    StreamDef {
        name: DEADLETTER,
        subjects: &["nis.v1.deadletter.>"],
        schedules: false,
        duplicate_window: MIN,
    },
];

/// The incident projections, keyed by incident id (JSON documents).
pub const BUCKET_INCIDENTS: &str = "nis_incidents";
/// Correlation index: ticket keys and disruption keys → incident id.
pub const BUCKET_CORRELATION: &str = "nis_correlation";
/// Intake's receipts, keyed by (source, ticket_id, revision).
pub const BUCKET_RECEIPTS: &str = "nis_receipts";
/// The deadline-timer's record of each timer and firing.
pub const BUCKET_TIMERS: &str = "nis_timers";
/// The notifier's delivery ledger and alert states.
pub const BUCKET_ALERTS: &str = "nis_alerts";

/// Every bucket.
pub const BUCKETS: &[&str] = &[
    BUCKET_INCIDENTS,
    BUCKET_CORRELATION,
    BUCKET_RECEIPTS,
    BUCKET_TIMERS,
    BUCKET_ALERTS,
];

/// Creates every stream and bucket that does not exist yet. Safe to call
/// from several services at once.
pub async fn ensure(js: &jetstream::Context) -> Result<(), Error> {
    for def in STREAMS {
        let config = stream::Config {
            name: def.name.to_string(),
            subjects: def.subjects.iter().map(|s| s.to_string()).collect(),
            storage: stream::StorageType::File,
            duplicate_window: def.duplicate_window,
            allow_message_schedules: def.schedules,
            allow_message_ttl: def.schedules,
            allow_rollup: def.schedules,
            deny_delete: false,
            ..Default::default()
        };
        js.get_or_create_stream(config)
            .await
            .map_err(|e| Error::Topology(format!("stream {}: {e}", def.name)))?;
    }
    for bucket in BUCKETS {
        bucket_or_create(js, bucket).await?;
    }
    Ok(())
}

/// Opens a bucket, creating it if needed.
pub async fn bucket_or_create(js: &jetstream::Context, name: &str) -> Result<kv::Store, Error> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    match js
        .create_key_value(kv::Config {
            bucket: name.to_string(),
            history: 5,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
    {
        Ok(store) => Ok(store),
        // Another service created it between our two calls.
        Err(_) => js
            .get_key_value(name)
            .await
            .map_err(|e| Error::Topology(format!("bucket {name}: {e}"))),
    }
}

/// Whether every stream exists (for `/readyz`).
pub async fn exists(js: &jetstream::Context) -> bool {
    for def in STREAMS {
        if js.get_stream(def.name).await.is_err() {
            return false;
        }
    }
    true
}
