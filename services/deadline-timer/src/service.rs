//! The deadline-timer's shell: three consumers (incident snapshots, timer
//! commands, the broker's firings) around the pure planning in `plan`.
//!
//! Records in the `nis_timers` bucket:
//! - `i.<incident>`: the last snapshot revision applied and the timers it
//!   planned, so a removed timer is cancelled and a stale snapshot ignored;
//! - `t.<timer>`: the timer, its generation, its state and every slot
//!   claimed. A firing claims its slot with a revision check before it
//!   publishes, and a cancel writes its state the same way, so a cancel
//!   racing a firing leaves one consistent record: claimed slots fired.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::kv::Store;
use chrono::{DateTime, Utc};
use nisvakt_bus::clock::{from_timestamp, to_timestamp};
use nisvakt_bus::consume::{self, ConsumerSpec};
use nisvakt_bus::kv::{self, Versioned};
use nisvakt_bus::{Delivery, HandleError, Runtime, Shutdown, TraceContext, subjects, topology};
use nisvakt_proto::Event;
use nisvakt_proto::v1::{
    CancelTimer, DeadlineCancelled, DeadlineDue, DeadlineMet, DeadlineOverdue, DeadlineScheduled,
    DeadlineStatus, DeadlineWarning, EscalationDue, Firing, FiringKind, Incident, IncidentAssessed,
    IncidentOpened, IncidentResolved, IncidentUpdated, ScheduleTimer, ThresholdReached, Timer,
};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::Config;
use crate::plan::{self, Slot};

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
    /// Slots claimed for firing, as `<generation>:<slot>`.
    #[serde(default)]
    pub claimed: BTreeSet<String>,
    /// The timer itself, protobuf as hex.
    pub timer: String,
}

impl TimerRecord {
    fn timer(&self) -> Option<Timer> {
        hex::decode(&self.timer)
            .ok()
            .and_then(|b| Timer::decode(b.as_slice()).ok())
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

#[derive(Clone)]
struct Ctx {
    rt: Runtime,
    store: Store,
    late_tolerance_ms: i64,
}

/// Runs the deadline-timer until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let rt = Runtime::start(
        "deadline-timer",
        &config.common,
        crate::DEFAULT_ADMIN,
        shutdown.clone(),
    )
    .await?;
    let store = topology::bucket_or_create(&rt.js, topology::BUCKET_TIMERS).await?;
    let ctx = Arc::new(Ctx {
        rt: rt.clone(),
        store,
        late_tolerance_ms: config.late_tolerance_ms,
    });

    let snapshots = {
        let ctx = ctx.clone();
        consume::run(
            rt.publisher.clone(),
            "deadline-timer",
            ConsumerSpec::new(topology::INCIDENTS, "deadline-timer-incidents", &[]),
            rt.metrics.clone(),
            shutdown.clone(),
            move |d| {
                let ctx = ctx.clone();
                async move { on_snapshot(&ctx, d).await }
            },
        )
    };
    let commands = {
        let ctx = ctx.clone();
        consume::run(
            rt.publisher.clone(),
            "deadline-timer",
            ConsumerSpec::new(
                topology::COMMANDS,
                "deadline-timer-commands",
                &["nis.v1.command.timer.>"],
            ),
            rt.metrics.clone(),
            shutdown.clone(),
            move |d| {
                let ctx = ctx.clone();
                async move { on_command(&ctx, d).await }
            },
        )
    };
    let firings = {
        let ctx = ctx.clone();
        consume::run(
            rt.publisher.clone(),
            "deadline-timer",
            ConsumerSpec::new(
                topology::TIMERS,
                "deadline-timer-firings",
                &["nis.v1.timer.fire.>"],
            ),
            rt.metrics.clone(),
            shutdown.clone(),
            move |d| {
                let ctx = ctx.clone();
                async move { on_firing(&ctx, d).await }
            },
        )
    };
    let (a, b, c) = tokio::join!(snapshots, commands, firings);
    rt.close().await;
    a?;
    b?;
    c?;
    Ok(())
}

fn incident_of(d: &Delivery) -> Result<Incident, HandleError> {
    let t = d
        .header(nisvakt_bus::publish::headers::CE_TYPE)
        .unwrap_or("");
    let inc = match t {
        x if x == IncidentOpened::TYPE => d.decode::<IncidentOpened>()?.incident,
        x if x == IncidentUpdated::TYPE => d.decode::<IncidentUpdated>()?.incident,
        x if x == IncidentAssessed::TYPE => d.decode::<IncidentAssessed>()?.incident,
        x if x == IncidentResolved::TYPE => d.decode::<IncidentResolved>()?.incident,
        other => {
            return Err(HandleError::Permanent(format!(
                "not an incident event: ce-type {other:?}"
            )));
        }
    };
    inc.ok_or_else(|| HandleError::Permanent("incident event without incident".into()))
}

async fn on_snapshot(ctx: &Ctx, d: Delivery) -> Result<(), HandleError> {
    let incident = incident_of(&d)?;
    let key = format!("i.{}", subjects::token(&incident.id));
    let current: Versioned<IncidentRecord> = kv::read(&ctx.store, &key).await?;
    let mut record = current.value.clone().unwrap_or_default();
    if current.value.is_some() && incident.revision <= record.revision {
        return Ok(()); // a redelivery or an older snapshot
    }
    let now = ctx.rt.clock.now();
    let desired = plan::timers_for(&incident);
    let desired_ids: BTreeSet<String> = desired.iter().map(|t| t.id.clone()).collect();
    for timer in &desired {
        schedule(ctx, timer.clone(), now, &d.trace).await?;
    }
    for gone in record.timers.difference(&desired_ids) {
        let met = incident.deadlines.iter().find(|dl| {
            plan::deadline_timer_id(&dl.id) == *gone && dl.status() == DeadlineStatus::Met
        });
        match met {
            Some(dl) => {
                let at = dl.met_at.as_ref().and_then(from_timestamp).unwrap_or(now);
                finish(ctx, gone, TimerState::Met, "met", Some(at), &d.trace).await?
            }
            None => {
                finish(
                    ctx,
                    gone,
                    TimerState::Cancelled,
                    "no_longer_planned",
                    None,
                    &d.trace,
                )
                .await?
            }
        }
    }
    record.revision = incident.revision;
    record.timers = desired_ids;
    kv::write(&ctx.store, &key, &record, current.revision).await?;
    Ok(())
}

async fn on_command(ctx: &Ctx, d: Delivery) -> Result<(), HandleError> {
    let now = ctx.rt.clock.now();
    if d.subject.ends_with(".schedule") {
        let cmd = d.decode::<ScheduleTimer>()?;
        let timer = cmd
            .timer
            .filter(|t| !t.id.is_empty())
            .ok_or_else(|| HandleError::Permanent("ScheduleTimer without timer id".into()))?;
        schedule(ctx, timer, now, &d.trace).await
    } else if d.subject.ends_with(".cancel") {
        let cmd = d.decode::<CancelTimer>()?;
        let reason = if cmd.reason.is_empty() {
            "cancelled".to_string()
        } else {
            cmd.reason
        };
        finish(
            ctx,
            &subjects::token(&cmd.timer_id),
            TimerState::Cancelled,
            &reason,
            None,
            &d.trace,
        )
        .await
    } else {
        Err(HandleError::Permanent(format!(
            "unknown timer command {}",
            d.subject
        )))
    }
}

/// Brings one timer's schedules in line with `timer`: nothing when the
/// plan is unchanged, else a new generation with every slot scheduled.
async fn schedule(
    ctx: &Ctx,
    mut timer: Timer,
    now: DateTime<Utc>,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let key = format!("t.{}", timer.id);
    let current: Versioned<TimerRecord> = kv::read(&ctx.store, &key).await?;
    let fp = plan::fingerprint(&timer);
    if let Some(r) = &current.value
        && r.fingerprint == fp
        && r.state == TimerState::Pending
    {
        return Ok(());
    }
    let generation = current
        .value
        .as_ref()
        .map(|r| r.generation + 1)
        .unwrap_or(1);
    timer.generation = generation;
    // Old slots go first, so only this generation's schedules remain.
    purge_schedules(ctx, &timer.id).await?;
    for slot in plan::slots(&timer, now) {
        put_schedule(ctx, &timer, &slot, trace).await?;
    }
    let record = TimerRecord {
        generation,
        fingerprint: fp,
        state: TimerState::Pending,
        reason: None,
        claimed: current.value.map(|r| r.claimed).unwrap_or_default(),
        timer: hex::encode(timer.encode_to_vec()),
    };
    kv::write(&ctx.store, &key, &record, current.revision).await?;
    let msg_id = format!("scheduled:{}:{generation}", timer.id);
    ctx.rt
        .publisher
        .publish(
            subjects::deadline(&timer.id, "scheduled"),
            &msg_id,
            &DeadlineScheduled { timer: Some(timer) },
            trace,
        )
        .await?;
    Ok(())
}

async fn purge_schedules(ctx: &Ctx, timer_id: &str) -> Result<(), HandleError> {
    let stream = ctx
        .rt
        .js
        .get_stream(topology::TIMERS)
        .await
        .map_err(|e| HandleError::Transient(e.to_string()))?;
    stream
        .purge()
        .filter(format!(
            "nis.v1.timer.sched.{}.>",
            subjects::token(timer_id)
        ))
        .await
        .map_err(|e| HandleError::Transient(e.to_string()))?;
    Ok(())
}

async fn put_schedule(
    ctx: &Ctx,
    timer: &Timer,
    slot: &Slot,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let slot_id = format!("g{}-{}", timer.generation, slot.name);
    let firing = Firing {
        timer: Some(timer.clone()),
        kind: slot.kind as i32,
        sequence: slot.sequence,
        intended_at: Some(to_timestamp(slot.at)),
        ..Default::default()
    };
    // No Nats-Msg-Id: a re-plan of the same slot must replace the schedule.
    let mut h: HeaderMap = ctx.rt.publisher.event_headers::<Firing>(trace);
    // The broker fires at whole seconds; round up so nothing fires early.
    let second = if slot.at.timestamp_subsec_nanos() > 0 {
        slot.at.timestamp() + 1
    } else {
        slot.at.timestamp()
    };
    let at = DateTime::from_timestamp(second, 0).unwrap_or(slot.at);
    h.insert(
        "Nats-Schedule",
        format!(
            "@at {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
        .as_str(),
    );
    h.insert(
        "Nats-Schedule-Target",
        subjects::timer_fire(&timer.id, &slot_id).as_str(),
    );
    ctx.rt
        .publisher
        .publish_raw(
            subjects::timer_schedule(&timer.id, &slot_id),
            h,
            firing.encode_to_vec().into(),
        )
        .await?;
    Ok(())
}

/// Ends a timer: purges its schedules, records the state and tells
/// subscribers. Idempotent.
async fn finish(
    ctx: &Ctx,
    timer_id: &str,
    state: TimerState,
    reason: &str,
    met_at: Option<DateTime<Utc>>,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let key = format!("t.{timer_id}");
    let current: Versioned<TimerRecord> = kv::read(&ctx.store, &key).await?;
    let Some(mut record) = current.value else {
        return Ok(());
    };
    if record.state != TimerState::Pending {
        return Ok(());
    }
    purge_schedules(ctx, timer_id).await?;
    record.state = state;
    record.reason = Some(reason.to_string());
    kv::write(&ctx.store, &key, &record, current.revision).await?;
    let timer = record.timer();
    let g = record.generation;
    match state {
        TimerState::Met => {
            ctx.rt
                .publisher
                .publish(
                    subjects::deadline(timer_id, "met"),
                    &format!("met:{timer_id}:{g}"),
                    &DeadlineMet {
                        timer,
                        met_at: met_at.map(to_timestamp),
                    },
                    trace,
                )
                .await?;
        }
        _ => {
            ctx.rt
                .publisher
                .publish(
                    subjects::deadline(timer_id, "cancelled"),
                    &format!("cancelled:{timer_id}:{g}"),
                    &DeadlineCancelled {
                        timer,
                        reason: reason.to_string(),
                    },
                    trace,
                )
                .await?;
        }
    }
    Ok(())
}

async fn on_firing(ctx: &Ctx, d: Delivery) -> Result<(), HandleError> {
    let mut firing = Firing::decode(d.payload.as_ref())
        .map_err(|e| HandleError::Permanent(format!("undecodable firing: {e}")))?;
    let timer = firing
        .timer
        .clone()
        .ok_or_else(|| HandleError::Permanent("firing without timer".into()))?;
    let slot_id = d.subject.rsplit('.').next().unwrap_or_default().to_string();
    let claim = format!("{}:{slot_id}", timer.generation);
    let key = format!("t.{}", timer.id);

    // Claim the slot (or find it claimed by an earlier delivery).
    let record = loop {
        let current: Versioned<TimerRecord> = kv::read(&ctx.store, &key).await?;
        let Some(mut record) = current.value else {
            tracing::warn!(timer = %timer.id, "firing for an unknown timer; ignored");
            return Ok(());
        };
        if record.claimed.contains(&claim) {
            break record; // claimed before: publish again (de-duplicated)
        }
        if record.state != TimerState::Pending || record.generation != timer.generation {
            tracing::info!(timer = %timer.id, slot = %slot_id, state = ?record.state,
                "firing of a cancelled or superseded plan; not published");
            return Ok(());
        }
        record.claimed.insert(claim.clone());
        match kv::write(&ctx.store, &key, &record, current.revision).await {
            Ok(_) => break record,
            Err(kv::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    };

    let now = ctx.rt.clock.now();
    let intended = firing
        .intended_at
        .as_ref()
        .and_then(from_timestamp)
        .unwrap_or(now);
    firing.fired_at = Some(to_timestamp(now));
    firing.lateness_ms = plan::lateness_ms(intended, now);
    firing.late = firing.lateness_ms > ctx.late_tolerance_ms;
    ctx.rt.metrics.inc(
        "nisvakt_timer_firings_total",
        &[("kind", firing.kind().as_str_name())],
    );
    if firing.late {
        ctx.rt.metrics.inc("nisvakt_timer_firings_late_total", &[]);
        tracing::warn!(timer = %timer.id, lateness_ms = firing.lateness_ms, "late firing");
    }
    let msg_id = format!("fire:{}:{claim}", timer.id);
    let p = &ctx.rt.publisher;
    let id = &timer.id;
    let f = Some(firing.clone());
    match firing.kind() {
        FiringKind::Warning => {
            p.publish(
                subjects::deadline(id, "warning"),
                &msg_id,
                &DeadlineWarning { firing: f },
                &d.trace,
            )
            .await?
        }
        FiringKind::Due => {
            p.publish(
                subjects::deadline(id, "due"),
                &msg_id,
                &DeadlineDue { firing: f },
                &d.trace,
            )
            .await?
        }
        FiringKind::Overdue => {
            p.publish(
                subjects::deadline(id, "overdue"),
                &msg_id,
                &DeadlineOverdue { firing: f },
                &d.trace,
            )
            .await?
        }
        FiringKind::ThresholdReached => {
            p.publish(
                subjects::deadline(id, "threshold_reached"),
                &msg_id,
                &ThresholdReached { firing: f },
                &d.trace,
            )
            .await?
        }
        FiringKind::EscalationDue => {
            p.publish(
                subjects::deadline(id, "escalation_due"),
                &msg_id,
                &EscalationDue { firing: f },
                &d.trace,
            )
            .await?
        }
        FiringKind::Unspecified => {
            return Err(HandleError::Permanent("firing without kind".into()));
        }
    };
    // Reminders chain: each overdue schedules the next while still pending.
    if firing.kind() == FiringKind::Overdue
        && record.state == TimerState::Pending
        && let Some(next) = plan::overdue_slot(&timer, firing.sequence + 1)
    {
        put_schedule(ctx, &timer, &next, &d.trace).await?;
    }
    Ok(())
}

/// Reads every timer record (for tests and the reconciler).
pub async fn timer_records(store: &Store) -> Result<BTreeMap<String, TimerRecord>, HandleError> {
    use futures::StreamExt;
    let mut out = BTreeMap::new();
    let mut keys = store
        .keys()
        .await
        .map_err(|e| HandleError::Transient(e.to_string()))?;
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| HandleError::Transient(e.to_string()))?;
        if let Some(id) = k.strip_prefix("t.")
            && let Some(r) = kv::read::<TimerRecord>(store, &k).await?.value
        {
            out.insert(id.to_string(), r);
        }
    }
    Ok(out)
}
