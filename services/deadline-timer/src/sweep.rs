//! The sweep: the reconciler and the watchdog, as a thin I/O shell around
//! `plan::reconcile`, `plan::missed_slots` and `plan::should_repair`.
//!
//! At start and then every `watchdog_every` it reads every timer record
//! and fires, late, any moment the broker did not fire (raising
//! `nis.v1.deadline.<timer>.watchdog` once per moment); every
//! `reconcile_every` it also reads every incident projection and the
//! schedule subjects in the stream and repairs drift. Every repair goes
//! through the same revision-checked paths as the consumers, so replicas
//! sweeping at once cannot fire a moment twice.
//!
//! It must not decide anything the core does not say, and it must not stop
//! the service: a failed sweep is logged and tried again next time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push};
use futures::{StreamExt, TryStreamExt};
use nisvakt_bus::clock::to_timestamp;
use nisvakt_bus::{Shutdown, TraceContext, subjects, topology};
use nisvakt_proto::v1::Firing;

use crate::plan::{self, Projection, Repair};
use crate::record::{IncidentRecord, TimerRecord};
use crate::service::{self, Ctx, Fired, Source};

/// Why a sweep failed (it is tried again at the next tick).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker did not answer as expected.
    #[error("broker: {0}")]
    Broker(String),
    /// Scanning a bucket stalled.
    #[error("scanning bucket {0} timed out")]
    Timeout(String),
    /// A repair failed.
    #[error("repair of {timer}: {reason}")]
    Repair {
        /// The timer.
        timer: String,
        /// What went wrong.
        reason: String,
    },
}

fn broker(e: impl std::fmt::Display) -> Error {
    Error::Broker(e.to_string())
}

/// How often and how strictly to sweep.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How often the reconciler compares incidents with timers.
    pub reconcile_every: Duration,
    /// How often the watchdog looks for missed moments.
    pub watchdog_every: Duration,
    /// A moment unclaimed this long after it passed is missed.
    pub tolerance: chrono::Duration,
    /// A firing waiting in the stream this long is fired by the watchdog too.
    pub stuck_after: chrono::Duration,
}

impl From<&crate::Config> for Settings {
    fn from(c: &crate::Config) -> Self {
        let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Settings {
            reconcile_every: c.reconcile_every,
            watchdog_every: c.watchdog_every,
            tolerance: chrono(c.watchdog_tolerance),
            stuck_after: chrono(c.watchdog_stuck_after),
        }
    }
}

/// What one reconciliation did, for the log and the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReconcileReport {
    /// Timers scheduled (new or re-planned).
    pub scheduled: usize,
    /// Timers finished (met or cancelled).
    pub finished: usize,
    /// Schedule messages put back.
    pub republished: usize,
}

/// Runs the sweep until shutdown.
pub(crate) async fn run(ctx: Arc<Ctx>, s: Settings, shutdown: Shutdown) {
    let mut last_reconcile: Option<tokio::time::Instant> = None;
    loop {
        if last_reconcile.is_none_or(|t| t.elapsed() >= s.reconcile_every) {
            match reconcile_once(&ctx).await {
                Ok(r) => tracing::info!(?r, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconciliation failed; next time again"),
            }
            last_reconcile = Some(tokio::time::Instant::now());
        }
        match watchdog_once(&ctx, &s).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(repaired = n, "watchdog fired missed moments"),
            Err(e) => tracing::warn!(error = %e, "watchdog sweep failed; next time again"),
        }
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(s.watchdog_every) => {}
        }
    }
}

/// One reconciliation: read, diff (pure), repair.
pub(crate) async fn reconcile_once(ctx: &Ctx) -> Result<ReconcileReport, Error> {
    let js = &ctx.rt.js;
    // Schedules first, then `now`: see `plan::reconcile`.
    let present = schedule_subjects(js).await?;
    let records = timer_records(js).await?;
    let applied: BTreeMap<String, IncidentRecord> = scan(js, topology::BUCKET_TIMERS, "i.")
        .await?
        .into_iter()
        .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
        .collect();
    let mut projections = Vec::new();
    for (key, value) in scan(js, topology::BUCKET_INCIDENTS, "").await? {
        match crate::projection::parse(&value) {
            Ok(incident) => {
                let applied_revision = applied
                    .get(&format!("i.{}", subjects::token(&incident.id)))
                    .map(|r| r.revision);
                projections.push(Projection {
                    incident,
                    applied_revision,
                });
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "incident projection not understood; its timers left alone")
            }
        }
    }
    let now = ctx.rt.clock.now();
    let repairs = plan::reconcile(&projections, &records, &present, now);
    let trace = TraceContext::new_root();
    let mut report = ReconcileReport::default();
    for r in repairs {
        let (id, result, action) = match r {
            Repair::Schedule(t) => {
                report.scheduled += 1;
                let id = t.id.clone();
                (id, service::schedule(ctx, t, now, &trace).await, "schedule")
            }
            Repair::Finish {
                timer_id,
                state,
                reason,
                met_at,
            } => {
                report.finished += 1;
                let res = service::finish(ctx, &timer_id, state, &reason, met_at, &trace).await;
                (timer_id, res, "finish")
            }
            Repair::Republish { timer, slot } => {
                report.republished += 1;
                let id = timer.id.clone();
                (id, republish(ctx, &timer, &slot, &trace).await, "republish")
            }
        };
        ctx.rt.metrics.inc(
            "nisvakt_timer_reconcile_repairs_total",
            &[("action", action)],
        );
        if let Err(e) = result {
            return Err(Error::Repair {
                timer: id,
                reason: e.to_string(),
            });
        }
    }
    Ok(report)
}

/// Puts a schedule back only if the record still wants it: same
/// generation, pending, unclaimed (a firing may have come in between).
async fn republish(
    ctx: &Ctx,
    timer: &nisvakt_proto::v1::Timer,
    slot: &plan::Slot,
    trace: &TraceContext,
) -> Result<(), nisvakt_bus::HandleError> {
    let key = format!("t.{}", timer.id);
    let current = nisvakt_bus::kv::read::<TimerRecord>(&ctx.store, &key).await?;
    let Some(r) = current.value else {
        return Ok(());
    };
    let wanted = r.state == crate::record::TimerState::Pending
        && r.generation == timer.generation
        && r.unclaimed().any(|s| s.name == slot.name);
    if wanted {
        tracing::warn!(timer = %timer.id, slot = %slot.name, "schedule missing from the stream; put back");
        service::put_schedule(ctx, timer, slot, trace).await?;
    }
    Ok(())
}

/// One watchdog pass: fire every missed moment whose firing is not on its
/// way. Returns how many it fired.
pub(crate) async fn watchdog_once(ctx: &Ctx, s: &Settings) -> Result<usize, Error> {
    let js = &ctx.rt.js;
    let records = timer_records(js).await?;
    let pending = records
        .values()
        .filter(|r| r.state == crate::record::TimerState::Pending)
        .count();
    ctx.rt
        .metrics
        .set("nisvakt_timer_pending", &[], pending as f64);
    let now = ctx.rt.clock.now();
    let stream = js.get_stream(topology::TIMERS).await.map_err(broker)?;
    let mut fired = 0;
    for m in plan::missed_slots(&records, now, s.tolerance) {
        let fire_subject = subjects::timer_fire(
            &m.timer.id,
            &plan::slot_id(m.timer.generation, &m.slot.name),
        );
        let fire_present = match stream.get_last_raw_message_by_subject(&fire_subject).await {
            Ok(_) => true,
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                false
            }
            Err(e) => return Err(broker(e)),
        };
        if !plan::should_repair(&m, fire_present, s.stuck_after) {
            continue;
        }
        tracing::error!(timer = %m.timer.id, slot = %m.slot.name, overdue_by = ?m.overdue_by,
            fire_present, "moment missed; the watchdog fires it");
        let firing = Firing {
            timer: Some(m.timer.clone()),
            kind: m.slot.kind as i32,
            sequence: m.slot.sequence,
            intended_at: Some(to_timestamp(m.slot.at)),
            ..Default::default()
        };
        let trace = TraceContext::new_root();
        match service::fire(ctx, firing, Source::Watchdog, &trace).await {
            Ok(Fired::Published) => fired += 1,
            Ok(_) => {}
            Err(e) => {
                return Err(Error::Repair {
                    timer: m.timer.id.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(fired)
}

/// Every `t.<timer>` record, keyed by timer id.
pub async fn timer_records(
    js: &jetstream::Context,
) -> Result<BTreeMap<String, TimerRecord>, Error> {
    let mut out = BTreeMap::new();
    for (k, v) in scan(js, topology::BUCKET_TIMERS, "t.").await? {
        match serde_json::from_slice::<TimerRecord>(&v) {
            Ok(r) => {
                out.insert(k.trim_start_matches("t.").to_string(), r);
            }
            Err(e) => tracing::warn!(key = %k, error = %e, "unreadable timer record skipped"),
        }
    }
    Ok(out)
}

/// The schedule subjects present in the timer stream.
async fn schedule_subjects(js: &jetstream::Context) -> Result<BTreeSet<String>, Error> {
    let stream = js.get_stream(topology::TIMERS).await.map_err(broker)?;
    let info = stream
        .info_with_subjects("nis.v1.timer.sched.>")
        .await
        .map_err(broker)?;
    info.map_ok(|(subject, _count)| subject)
        .try_collect()
        .await
        .map_err(broker)
}

/// The latest value of every key under `prefix` in a bucket, in one
/// streamed pass (an ordered consumer, last message per subject) rather
/// than one request per key: the sweep must stay cheap at 100,000 timers.
pub async fn scan(
    js: &jetstream::Context,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, bytes::Bytes)>, Error> {
    let stream = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .map_err(broker)?;
    let subject_prefix = format!("$KV.{bucket}.");
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: js_inbox(js),
            filter_subject: format!("{subject_prefix}{prefix}>"),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(broker)?;
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await.map_err(broker)?;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .map_err(|_| Error::Timeout(bucket.to_string()))?;
        let Some(msg) = next else { break };
        let msg = msg.map_err(broker)?;
        let pending = msg.info().map(|i| i.pending).unwrap_or(0);
        let deleted = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some();
        if !deleted && let Some(key) = msg.subject.as_str().strip_prefix(&subject_prefix) {
            out.push((key.to_string(), msg.payload.clone()));
        }
        if pending == 0 {
            break;
        }
    }
    Ok(out)
}

fn js_inbox(js: &jetstream::Context) -> String {
    js.client().new_inbox()
}
