//! What the deadline-timer writes to the `nis_timers` bucket, as plain data.
//!
//! - `t.<timer>`: one [`TimerRecord`] per timer: its plan, its state, the
//!   slots scheduled for the current generation and every slot claimed for
//!   firing. The claim is the single place that decides "this moment
//!   fired": a firing, the watchdog and a cancel all write it with a
//!   revision check, so whichever comes first wins and the record says so.
//! - `i.<incident>`: one [`IncidentRecord`] per incident: the last snapshot
//!   revision applied and the timers it planned.
//!
//! No I/O here: the shell reads and writes these with `nisvakt_bus::kv`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use nisvakt_proto::v1::{FiringKind, Timer};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::plan::Slot;

/// Where a timer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerState {
    /// Its slots are scheduled.
    Pending,
    /// The duty was met: no more firings.
    Met,
    /// It no longer applies.
    Cancelled,
}

/// One scheduled moment of the current generation, kept in the record so
/// the watchdog and the reconciler can tell what should exist without
/// asking the broker for every timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// The slot's name within the generation (`w0`, `due`, `od3`, …).
    pub name: String,
    /// The `FiringKind` as its protobuf number.
    pub kind: i32,
    /// Order among warnings or overdue reminders.
    pub sequence: u32,
    /// The intended instant.
    pub at: DateTime<Utc>,
}

impl From<&Slot> for SlotRecord {
    fn from(s: &Slot) -> Self {
        SlotRecord {
            name: s.name.clone(),
            kind: s.kind as i32,
            sequence: s.sequence,
            at: s.at,
        }
    }
}

impl SlotRecord {
    /// Back to the planning type.
    pub fn slot(&self) -> Slot {
        Slot {
            name: self.name.clone(),
            kind: FiringKind::try_from(self.kind).unwrap_or(FiringKind::Unspecified),
            sequence: self.sequence,
            at: self.at,
        }
    }

    /// The claim key of this slot (see [`claim_key`]).
    pub fn claim_key(&self) -> String {
        claim_key(
            FiringKind::try_from(self.kind).unwrap_or(FiringKind::Unspecified),
            self.sequence,
            self.at,
        )
    }
}

/// The identity of one firing of a timer, independent of the generation:
/// `<kind>:<sequence>:<intended unix seconds>`. A re-plan that keeps a
/// moment keeps its key, so a moment that already fired never fires again;
/// the published `Nats-Msg-Id` is `fire:<timer_id>:<claim key>`, as the
/// contract in `deadline.proto` says.
pub fn claim_key(kind: FiringKind, sequence: u32, at: DateTime<Utc>) -> String {
    let k = match kind {
        FiringKind::Warning => "warning",
        FiringKind::Due => "due",
        FiringKind::Overdue => "overdue",
        FiringKind::ThresholdReached => "threshold_reached",
        FiringKind::EscalationDue => "escalation_due",
        FiringKind::Unspecified => "unspecified",
    };
    format!("{k}:{sequence}:{}", at.timestamp())
}

/// `t.<timer>` in the `nis_timers` bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimerRecord {
    /// Incremented whenever the plan of the timer changes.
    pub generation: u64,
    /// The plan's fingerprint at this generation.
    pub fingerprint: String,
    /// Pending, met or cancelled.
    pub state: TimerState,
    /// Why it is not pending any more.
    #[serde(default)]
    pub reason: Option<String>,
    /// Moments that fired (or are firing), as claim keys.
    #[serde(default)]
    pub claimed: BTreeSet<String>,
    /// The claim keys the watchdog fired because the broker did not.
    #[serde(default)]
    pub watchdog: BTreeSet<String>,
    /// The slots scheduled for this generation that have not fired yet
    /// (fired ones are dropped as reminders chain, to keep it small).
    #[serde(default)]
    pub slots: Vec<SlotRecord>,
    /// The incident the timer belongs to (empty for escalations).
    #[serde(default)]
    pub incident_id: String,
    /// The timer itself, protobuf as hex.
    pub timer: String,
}

impl TimerRecord {
    /// The timer as planned (with its generation), if the stored bytes decode.
    pub fn timer(&self) -> Option<Timer> {
        hex::decode(&self.timer)
            .ok()
            .and_then(|b| Timer::decode(b.as_slice()).ok())
    }

    /// Encodes a timer for [`TimerRecord::timer`].
    pub fn encode_timer(t: &Timer) -> String {
        hex::encode(t.encode_to_vec())
    }

    /// The slots of this generation not yet claimed.
    pub fn unclaimed(&self) -> impl Iterator<Item = &SlotRecord> {
        self.slots
            .iter()
            .filter(|s| !self.claimed.contains(&s.claim_key()))
    }
}

/// `i.<incident>` in the `nis_timers` bucket.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// The last incident revision applied.
    pub revision: u64,
    /// The timers that revision planned.
    pub timers: BTreeSet<String>,
}
