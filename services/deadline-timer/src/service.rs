//! The deadline-timer's shell: three consumers (incident snapshots, timer
//! commands, the broker's firings) and the sweep (`sweep`: reconciler and
//! watchdog) around the pure planning in `plan`. It decodes, asks the core,
//! performs the effects and acks; it decides nothing itself.
//!
//! Records in the `nis_timers` bucket are described in `record`. A firing
//! (from the broker or the watchdog) claims its moment with a revision
//! check before it publishes, and a cancel writes its state the same way,
//! so a cancel racing a firing leaves one consistent record: a claimed
//! moment fired, an unclaimed one never will.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::kv::Store;
use chrono::{DateTime, Utc};
use nisvakt_bus::clock::{from_timestamp, to_timestamp};
use nisvakt_bus::consume::ConsumerSpec;
use nisvakt_bus::kv::{self, Versioned};
use nisvakt_bus::{Delivery, HandleError, Runtime, Shutdown, TraceContext, subjects, topology};
use nisvakt_proto::Event;
use nisvakt_proto::v1::{
    CancelTimer, DeadlineCancelled, DeadlineDue, DeadlineMet, DeadlineOverdue, DeadlineScheduled,
    DeadlineStatus, DeadlineWarning, EscalationDue, Firing, FiringKind, Incident, IncidentAssessed,
    IncidentOpened, IncidentResolved, IncidentUpdated, ScheduleTimer, ThresholdReached, Timer,
    TimerOverdueWatchdog,
};
use prost::Message as _;

use crate::Config;
use crate::plan::{self, Slot};
use crate::record::{IncidentRecord, SlotRecord, TimerRecord, TimerState, claim_key};

/// What every handler of this service shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) rt: Runtime,
    pub(crate) store: Store,
    pub(crate) late_tolerance_ms: i64,
}

/// Upper bounds (seconds) of the firing-lateness histogram.
const LATENESS_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

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
    let sweep = crate::sweep::run(
        ctx.clone(),
        crate::sweep::Settings::from(&config),
        shutdown.clone(),
    );

    let snapshots = rt.consume(
        ConsumerSpec::new(topology::INCIDENTS, "deadline-timer-incidents", &[]),
        ctx.clone(),
        |ctx, d| async move { on_snapshot(&ctx, d).await },
    );
    let commands = rt.consume(
        ConsumerSpec::new(
            topology::COMMANDS,
            "deadline-timer-commands",
            &["nis.v1.command.timer.>"],
        ),
        ctx.clone(),
        |ctx, d| async move { on_command(&ctx, d).await },
    );
    // Firings of different timers are independent (each claim is a
    // revision check on its own timer record), so several pull loops share
    // the durable firing consumer, as replicas would. Commands and
    // snapshots stay one at a time: their order per timer matters.
    let firings = futures::future::join_all((0..config.firing_concurrency.max(1)).map(|_| {
        rt.consume(
            ConsumerSpec::new(
                topology::TIMERS,
                "deadline-timer-firings",
                &["nis.v1.timer.fire.>"],
            ),
            ctx.clone(),
            |ctx, d| async move { on_firing(&ctx, d).await },
        )
    }));
    let (a, b, c, ()) = tokio::join!(snapshots, commands, firings, sweep);
    rt.close().await;
    a?;
    b?;
    c.into_iter().collect::<Result<Vec<()>, _>>()?;
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
/// plan is unchanged, else a new generation with every slot still to fire
/// scheduled. The record is written first, so a crash half-way leaves a
/// record whose missing schedules the reconciler and the watchdog repair.
pub(crate) async fn schedule(
    ctx: &Ctx,
    mut timer: Timer,
    now: DateTime<Utc>,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    timer.id = subjects::token(&timer.id);
    let key = format!("t.{}", timer.id);
    let fp = plan::fingerprint(&timer);
    let (record, existed) = loop {
        let current: Versioned<TimerRecord> = kv::read(&ctx.store, &key).await?;
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
        let claimed = current
            .value
            .as_ref()
            .map(|r| r.claimed.clone())
            .unwrap_or_default();
        let watchdog = current
            .value
            .as_ref()
            .map(|r| r.watchdog.clone())
            .unwrap_or_default();
        let slots = plan::slots_to_schedule(&timer, now, &claimed);
        let record = TimerRecord {
            generation,
            fingerprint: fp.clone(),
            state: TimerState::Pending,
            reason: None,
            claimed,
            watchdog,
            slots: slots.iter().map(SlotRecord::from).collect(),
            incident_id: timer.incident_id.clone(),
            timer: TimerRecord::encode_timer(&timer),
        };
        match kv::write(&ctx.store, &key, &record, current.revision).await {
            Ok(_) => break (record, current.value.is_some()),
            Err(kv::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // Old generations' schedules go; firings of them would be ignored anyway.
    if existed {
        purge_schedules(ctx, &timer.id).await?;
    }
    for slot in record.slots.iter().map(SlotRecord::slot) {
        put_schedule(ctx, &timer, &slot, trace).await?;
    }
    let msg_id = format!("scheduled:{}:{}", timer.id, record.generation);
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

/// Puts (or replaces) the broker-held schedule of one slot.
pub(crate) async fn put_schedule(
    ctx: &Ctx,
    timer: &Timer,
    slot: &Slot,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let slot_id = plan::slot_id(timer.generation, &slot.name);
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

/// Ends a timer: records the state (with a revision check, so it orders
/// against any firing's claim), purges its schedules and tells
/// subscribers. Idempotent.
pub(crate) async fn finish(
    ctx: &Ctx,
    timer_id: &str,
    state: TimerState,
    reason: &str,
    met_at: Option<DateTime<Utc>>,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let key = format!("t.{timer_id}");
    let record = loop {
        let current: Versioned<TimerRecord> = kv::read(&ctx.store, &key).await?;
        let Some(mut record) = current.value else {
            return Ok(());
        };
        if record.state != TimerState::Pending {
            return Ok(());
        }
        record.state = state;
        record.reason = Some(reason.to_string());
        match kv::write(&ctx.store, &key, &record, current.revision).await {
            Ok(_) => break record,
            Err(kv::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    purge_schedules(ctx, timer_id).await?;
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
    let firing = Firing::decode(d.payload.as_ref())
        .map_err(|e| HandleError::Permanent(format!("undecodable firing: {e}")))?;
    fire(ctx, firing, Source::Broker, &d.trace).await?;
    // Handled and recorded: the broker's copy is no longer needed, and
    // removing it keeps the timer stream from growing with every firing.
    // Best effort: a copy left behind is harmless (its slot is claimed).
    if d.stream_sequence > 0 {
        let request = format!(r#"{{"seq":{},"no_erase":true}}"#, d.stream_sequence);
        let subject = format!("$JS.API.STREAM.MSG.DELETE.{}", topology::TIMERS);
        if let Err(e) = ctx.rt.client.request(subject, request.into()).await {
            tracing::debug!(error = %e, "processed firing not removed from the timer stream");
        }
    }
    Ok(())
}

/// Who asks for a firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The broker's schedule produced it (possibly redelivered).
    Broker,
    /// The watchdog found the moment missed and fires it itself.
    Watchdog,
}

/// What came of a request to fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    /// This call claimed the moment and published it.
    Published,
    /// Claimed before by a delivery that may have died before publishing;
    /// published again under the same `Nats-Msg-Id` (the broker drops it
    /// if the first got through).
    Republished,
    /// Claimed by someone else (the watchdog lost a race), or the timer was
    /// cancelled, met or re-planned: nothing published.
    Skipped,
}

/// Claims one moment of a timer in its record and publishes it: the one
/// path by which anything fires, so "once" holds whoever asks.
pub(crate) async fn fire(
    ctx: &Ctx,
    mut firing: Firing,
    source: Source,
    trace: &TraceContext,
) -> Result<Fired, HandleError> {
    let timer = firing
        .timer
        .clone()
        .ok_or_else(|| HandleError::Permanent("firing without timer".into()))?;
    let now = ctx.rt.clock.now();
    let intended = firing
        .intended_at
        .as_ref()
        .and_then(from_timestamp)
        .unwrap_or(now);
    let claim = claim_key(firing.kind(), firing.sequence, intended);
    let key = format!("t.{}", timer.id);
    let next = (firing.kind() == FiringKind::Overdue)
        .then(|| plan::overdue_slot(&timer, firing.sequence + 1))
        .flatten();

    // Claim the moment (or find it claimed by an earlier delivery).
    let (record, outcome) = loop {
        let current: Versioned<TimerRecord> = kv::read(&ctx.store, &key).await?;
        let Some(mut record) = current.value else {
            tracing::warn!(timer = %timer.id, "firing for an unknown timer; ignored");
            return Ok(Fired::Skipped);
        };
        if record.claimed.contains(&claim) {
            if source == Source::Watchdog {
                return Ok(Fired::Skipped);
            }
            break (record, Fired::Republished);
        }
        if record.state != TimerState::Pending || record.generation != timer.generation {
            tracing::info!(timer = %timer.id, %claim, state = ?record.state,
                "firing of a cancelled or superseded plan; not published");
            return Ok(Fired::Skipped);
        }
        record.claimed.insert(claim.clone());
        if source == Source::Watchdog {
            record.watchdog.insert(claim.clone());
        }
        if let Some(n) = &next {
            record.slots.push(SlotRecord::from(n));
        }
        let claimed = record.claimed.clone();
        record.slots.retain(|s| !claimed.contains(&s.claim_key()));
        match kv::write(&ctx.store, &key, &record, current.revision).await {
            Ok(_) => break (record, Fired::Published),
            Err(kv::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    };

    firing.fired_at = Some(to_timestamp(now));
    firing.lateness_ms = plan::lateness_ms(intended, now);
    firing.late = firing.lateness_ms > ctx.late_tolerance_ms;
    if source == Source::Watchdog {
        ctx.rt
            .publisher
            .publish(
                subjects::deadline(&timer.id, "watchdog"),
                &format!("watchdog:{}:{claim}", timer.id),
                &TimerOverdueWatchdog {
                    timer: Some(timer.clone()),
                    intended_at: firing.intended_at,
                    noticed_at: Some(to_timestamp(now)),
                },
                trace,
            )
            .await?;
    }
    let msg_id = format!("fire:{}:{claim}", timer.id);
    let p = &ctx.rt.publisher;
    let id = &timer.id;
    let f = Some(firing.clone());
    let kind = firing.kind();
    match kind {
        FiringKind::Warning => {
            p.publish(
                subjects::deadline(id, "warning"),
                &msg_id,
                &DeadlineWarning { firing: f },
                trace,
            )
            .await?
        }
        FiringKind::Due => {
            p.publish(
                subjects::deadline(id, "due"),
                &msg_id,
                &DeadlineDue { firing: f },
                trace,
            )
            .await?
        }
        FiringKind::Overdue => {
            p.publish(
                subjects::deadline(id, "overdue"),
                &msg_id,
                &DeadlineOverdue { firing: f },
                trace,
            )
            .await?
        }
        FiringKind::ThresholdReached => {
            p.publish(
                subjects::deadline(id, "threshold_reached"),
                &msg_id,
                &ThresholdReached { firing: f },
                trace,
            )
            .await?
        }
        FiringKind::EscalationDue => {
            p.publish(
                subjects::deadline(id, "escalation_due"),
                &msg_id,
                &EscalationDue { firing: f },
                trace,
            )
            .await?
        }
        FiringKind::Unspecified => {
            return Err(HandleError::Permanent("firing without kind".into()));
        }
    };
    if outcome == Fired::Published {
        record_firing_metrics(ctx, &firing, source);
    }
    // Reminders chain: each overdue schedules the next while still pending.
    if let Some(next) = next
        && record.state == TimerState::Pending
    {
        put_schedule(ctx, &timer, &next, trace).await?;
    }
    Ok(outcome)
}

fn record_firing_metrics(ctx: &Ctx, firing: &Firing, source: Source) {
    let m = &ctx.rt.metrics;
    m.inc(
        "nisvakt_timer_firings_total",
        &[("kind", firing.kind().as_str_name())],
    );
    if firing.late {
        m.inc("nisvakt_timer_firings_late_total", &[]);
        tracing::warn!(timer = ?firing.timer.as_ref().map(|t| &t.id),
            lateness_ms = firing.lateness_ms, "late firing");
    }
    if source == Source::Watchdog {
        m.inc("nisvakt_timer_watchdog_repairs_total", &[]);
    }
    let secs = firing.lateness_ms as f64 / 1000.0;
    for le in LATENESS_BUCKETS {
        if secs <= *le {
            m.inc(
                "nisvakt_timer_firing_lateness_seconds_bucket",
                &[("le", &le.to_string())],
            );
        }
    }
    m.inc(
        "nisvakt_timer_firing_lateness_seconds_bucket",
        &[("le", "+Inf")],
    );
    m.add("nisvakt_timer_firing_lateness_seconds_sum", &[], secs);
    m.inc("nisvakt_timer_firing_lateness_seconds_count", &[]);
}
