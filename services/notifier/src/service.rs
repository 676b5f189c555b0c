//! The notifier's shell: turns incident snapshots and deadline firings into
//! alerts, delivers them, escalates the unacknowledged and stops on an
//! acknowledgement.
//!
//! Grouping and "never twice" come from one idea: an alert's id is a hash
//! of what makes it meaningful (the incident and reason, or the timer and
//! firing), so a storm of tickets or a redelivered event maps to the alert
//! that already exists. Each alert's state lives in the `nis_alerts`
//! bucket (`a.<alert_id>`) and doubles as the delivery ledger: a delivery
//! is written there, with a revision check, as soon as the receiver took
//! it, and is never sent again once written. E-mails carry a Message-ID and
//! webhooks an `Idempotency-Key` derived from the alert, recipient and
//! level, so a receiver can drop the one duplicate a crash in the instant
//! between "sent" and "written" could cause.
//!
//! The state, not the message in hand, says what is left to do: `drive`
//! brings one alert up to date (announce its level, deliver to whoever at
//! that level has not had it, set the escalation clock) and then marks the
//! level settled. Every path ends there: a new snapshot, a redelivery, an
//! escalation firing, and the sweep at start-up that finishes what a
//! killed process left half done, so recovery does not wait for the
//! broker's ack timeout. Escalation clocks live in the deadline-timer and
//! are computed from stored instants only, so asking for one again changes
//! nothing there.
//!
//! This module must not build texts (that is `render`), choose recipients
//! (`routing`) or talk to a receiver directly (`deliver`).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_nats::jetstream::kv::Store;
use chrono::{DateTime, Utc};
use nisvakt_bus::clock::to_timestamp;
use nisvakt_bus::consume::ConsumerSpec;
use nisvakt_bus::kv::{self, Versioned};
use nisvakt_bus::{
    Delivery, HandleError, Runtime, Shutdown, TraceContext, convert, subjects, topology,
};
use nisvakt_proto::Event;
use nisvakt_proto::v1 as pb;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Config;
use crate::deliver::retry::{AttemptOutcome, RetryPolicy, deliver_with_retry};
use crate::deliver::{Channel, Deliverer, Target};
use crate::render::{AlertReason, Lang, render};
use crate::routing::Routing;

/// `a.<alert_id>`: an alert, where it stands, and what was delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertState {
    /// The escalation level reached (0 first).
    pub level: u32,
    /// When the current level began: the alert's `raised_at` for level 0,
    /// the escalation's due moment after that. The next escalation is due
    /// `ack_within` after it, so the clock never drifts on a retry.
    #[serde(default)]
    pub level_since: Option<DateTime<Utc>>,
    /// The incident's units when the alert was raised: every level routes
    /// to their own managers, not only to the default.
    #[serde(default)]
    pub units: Vec<String>,
    /// Who acknowledged it, when someone did.
    #[serde(default)]
    pub acked_by: Option<String>,
    /// When.
    #[serde(default)]
    pub acked_at: Option<DateTime<Utc>>,
    /// `<level>:<channel>:<address>` of every delivery the receiver took.
    #[serde(default)]
    pub delivered: BTreeSet<String>,
    /// The level whose work is done (announced, delivered, clock set):
    /// nothing is left to do until its escalation clock fires.
    #[serde(default)]
    pub settled: Option<u32>,
    /// The alert as raised (level 0), protobuf as hex.
    pub alert: String,
}

impl AlertState {
    fn alert(&self) -> Option<pb::Alert> {
        hex::decode(&self.alert)
            .ok()
            .and_then(|b| pb::Alert::decode(b.as_slice()).ok())
    }

    /// Whether anything is left to do for this alert.
    fn pending(&self) -> bool {
        self.acked_by.is_none() && self.settled != Some(self.level)
    }
}

/// Serialises the work on one alert inside this process: a sweep, a
/// redelivery and an escalation of the same alert take turns, so the
/// ledger is read before, and written after, each of them.
struct AlertLocks(Vec<tokio::sync::Mutex<()>>);

impl AlertLocks {
    fn new(stripes: usize) -> AlertLocks {
        AlertLocks((0..stripes.max(1)).map(|_| Default::default()).collect())
    }

    async fn lock(&self, alert_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let hash = alert_id.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        self.0[hash % self.0.len()].lock().await
    }
}

struct Ctx {
    rt: Runtime,
    routing: Routing,
    deliverer: Deliverer,
    policy: RetryPolicy,
    alerts: Store,
    incidents: Store,
    locks: AlertLocks,
}

/// Loads routing, connects and runs until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    crate::deliver::webhook::install_crypto_provider();
    let routing =
        Routing::load(&config.routing).map_err(|e| anyhow::anyhow!("NISVAKT_ROUTING: {e}"))?;
    let placeholders = routing.placeholder_addresses();
    if !placeholders.is_empty() {
        tracing::warn!(
            ?placeholders,
            "routing still has placeholder addresses (.invalid)"
        );
    }
    let timeout = std::time::Duration::from_secs(config.delivery_timeout_secs);
    let email = match config.smtp_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => Some(
            crate::deliver::email::EmailChannel::new(url, &config.smtp_from, timeout)
                .map_err(|e| anyhow::anyhow!("NISVAKT_SMTP_URL: {e}"))?,
        ),
        None => {
            tracing::warn!("NISVAKT_SMTP_URL not set: e-mail recipients cannot be reached");
            None
        }
    };
    let webhook = crate::deliver::webhook::WebhookChannel::new(&routing, timeout)
        .map_err(|e| anyhow::anyhow!("webhooks in NISVAKT_ROUTING: {e}"))?;
    let policy = RetryPolicy {
        max_attempts: config.delivery_attempts.max(1),
        base_delay: std::time::Duration::from_millis(config.delivery_base_delay_ms),
        ..RetryPolicy::default()
    };

    let rt = Runtime::start(
        "notifier",
        &config.common,
        crate::DEFAULT_ADMIN,
        shutdown.clone(),
    )
    .await?;
    let ctx = Arc::new(Ctx {
        alerts: topology::bucket_or_create(&rt.js, topology::BUCKET_ALERTS).await?,
        incidents: topology::bucket_or_create(&rt.js, topology::BUCKET_INCIDENTS).await?,
        rt: rt.clone(),
        routing,
        deliverer: Deliverer::new(email, Some(webhook)),
        policy,
        locks: AlertLocks::new(64),
    });

    // Finish what a previous process left half done, beside the consumers.
    let sweep = {
        let ctx = ctx.clone();
        tokio::spawn(async move { sweep(&ctx).await })
    };

    let mut firings = ConsumerSpec::new(
        topology::DEADLINES,
        "notifier-firings",
        &[
            "nis.v1.deadline.*.warning",
            "nis.v1.deadline.*.due",
            "nis.v1.deadline.*.overdue",
            "nis.v1.deadline.*.watchdog",
            "nis.v1.deadline.*.escalation_due",
        ],
    );
    // Deliveries retry inside the handler; give them room before redelivery.
    // A killed process does not wait for this: the sweep at start-up
    // finishes its alerts from the stored state.
    firings.ack_wait = std::time::Duration::from_secs(300);
    let mut incidents = ConsumerSpec::new(topology::INCIDENTS, "notifier-incidents", &[]);
    incidents.ack_wait = std::time::Duration::from_secs(300);
    let acks = ConsumerSpec::new(
        topology::COMMANDS,
        "notifier-acks",
        &["nis.v1.command.alert.*.ack"],
    );
    let (a, b, c) = tokio::join!(
        rt.consume(incidents, ctx.clone(), |ctx, d| async move {
            on_incident(&ctx, d).await
        }),
        rt.consume(firings, ctx.clone(), |ctx, d| async move {
            on_firing(&ctx, d).await
        }),
        rt.consume(
            acks,
            ctx.clone(),
            |ctx, d| async move { on_ack(&ctx, d).await }
        ),
    );
    sweep.abort();
    rt.close().await;
    a?;
    b?;
    c?;
    Ok(())
}

/// Drives every alert the store says is unfinished: delivered to nobody
/// yet, or to some, or without its escalation clock. Errors are logged;
/// the alert is driven again by its next event.
async fn sweep(ctx: &Ctx) {
    use futures::StreamExt;
    let keys = match ctx.alerts.keys().await {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list alerts; unfinished ones wait for redelivery");
            return;
        }
    };
    let keys: Vec<String> = keys
        .filter_map(|k| async move { k.ok() })
        .filter(|k| std::future::ready(k.starts_with("a.")))
        .collect()
        .await;
    let mut resumed = 0usize;
    for key in keys {
        let Some(id) = key.strip_prefix("a.") else {
            continue;
        };
        match kv::read::<AlertState>(&ctx.alerts, &key).await {
            Ok(Versioned {
                value: Some(state), ..
            }) if state.pending() => {
                resumed += 1;
                if let Err(e) = drive(ctx, id, &TraceContext::new_root()).await {
                    tracing::warn!(alert = %id, error = %e, "unfinished alert not finished yet");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(alert = %id, error = %e, "cannot read alert state"),
        }
    }
    if resumed > 0 {
        tracing::info!(resumed, "finished alerts a previous run left unfinished");
    }
}

/// The alert id of a de-duplication key.
pub fn alert_id(dedup_key: &str) -> String {
    format!(
        "alt_{}",
        hex::encode(&Sha256::digest(dedup_key.as_bytes())[..10])
    )
}

/// The alerts an incident snapshot calls for, as (reason, dedup key). One
/// per meaningful state, never per ticket.
pub fn intents(incident: &pb::Incident) -> Vec<(AlertReason, String)> {
    let mut out = Vec::new();
    let flags = incident.flags.unwrap_or_default();
    if flags.suspected_nis {
        out.push((
            AlertReason::SuspectedNis,
            format!("{}:suspected_nis", incident.id),
        ));
    }
    if flags.needs_assessment {
        out.push((
            AlertReason::NeedsAssessment,
            format!("{}:needs_assessment", incident.id),
        ));
    }
    for a in &incident.assessments {
        if a.reportable {
            out.push((
                AlertReason::Reportable,
                format!("{}:reportable:{}", incident.id, a.rule_set),
            ));
        }
    }
    out
}

fn incident_of(d: &Delivery) -> Result<Option<pb::Incident>, HandleError> {
    let t = d
        .header(nisvakt_bus::publish::headers::CE_TYPE)
        .unwrap_or("");
    Ok(match t {
        x if x == pb::IncidentOpened::TYPE => d.decode::<pb::IncidentOpened>()?.incident,
        x if x == pb::IncidentUpdated::TYPE => d.decode::<pb::IncidentUpdated>()?.incident,
        x if x == pb::IncidentAssessed::TYPE => d.decode::<pb::IncidentAssessed>()?.incident,
        x if x == pb::IncidentResolved::TYPE => d.decode::<pb::IncidentResolved>()?.incident,
        other => {
            return Err(HandleError::Permanent(format!(
                "not an incident event: {other:?}"
            )));
        }
    })
}

async fn on_incident(ctx: &Ctx, d: Delivery) -> Result<(), HandleError> {
    let Some(incident) = incident_of(&d)? else {
        return Err(HandleError::Permanent(
            "incident event without incident".into(),
        ));
    };
    // One alert's failing receiver must not hold back the others: try
    // every alert, then hand the first failure back for a redelivery.
    let mut first_error = None;
    for (reason, key) in intents(&incident) {
        if let Err(e) = raise(ctx, reason, &key, &incident, None, &d.trace).await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The incident as the classifier stored it. A deadline alert must go out
/// even when that copy is missing, so after a few tries the incident is
/// rebuilt from what the firing carries (its deadline).
async fn incident_for_firing(
    ctx: &Ctx,
    timer: &pb::Timer,
    delivered: i64,
) -> Result<pb::Incident, HandleError> {
    let id = &timer.incident_id;
    let raw = ctx
        .incidents
        .get(subjects::token(id))
        .await
        .map_err(|e| HandleError::Transient(e.to_string()))?;
    let Some(raw) = raw else {
        if delivered < 3 {
            return Err(HandleError::Transient(format!(
                "incident {id} not stored yet"
            )));
        }
        tracing::warn!(incident = %id, "incident not stored; alerting from the firing alone");
        return Ok(pb::Incident {
            id: id.clone(),
            deadlines: timer.deadline.iter().cloned().collect(),
            ..Default::default()
        });
    };
    let v: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| HandleError::Permanent(e.to_string()))?;
    convert::incident_json_to_pb(&v).map_err(|e| HandleError::Permanent(e.to_string()))
}

async fn on_firing(ctx: &Ctx, d: Delivery) -> Result<(), HandleError> {
    let kind = d.subject.rsplit('.').next().unwrap_or_default().to_string();
    let firing = match kind.as_str() {
        "warning" => d.decode::<pb::DeadlineWarning>()?.firing,
        "due" => d.decode::<pb::DeadlineDue>()?.firing,
        "overdue" => d.decode::<pb::DeadlineOverdue>()?.firing,
        "escalation_due" => d.decode::<pb::EscalationDue>()?.firing,
        "watchdog" => {
            let w = d.decode::<pb::TimerOverdueWatchdog>()?;
            Some(crate::render::watchdog_firing(&w))
        }
        other => {
            return Err(HandleError::Permanent(format!(
                "unexpected firing `{other}`"
            )));
        }
    }
    .ok_or_else(|| HandleError::Permanent("firing without body".into()))?;
    let timer = firing
        .timer
        .clone()
        .ok_or_else(|| HandleError::Permanent("firing without timer".into()))?;
    if kind == "escalation_due" {
        return escalate(ctx, &timer, &firing, &d.trace).await;
    }
    let reason = match kind.as_str() {
        "warning" => AlertReason::Warning,
        "due" => AlertReason::Due,
        "overdue" => AlertReason::Overdue,
        _ => AlertReason::Watchdog,
    };
    let intended = firing.intended_at.map(|t| t.seconds).unwrap_or_default();
    let key = format!(
        "{}:{kind}:{}:{}:{intended}",
        timer.id, timer.generation, firing.sequence
    );
    let incident = incident_for_firing(ctx, &timer, d.delivered).await?;
    raise(ctx, reason, &key, &incident, Some(&firing), &d.trace).await
}

fn build_alert(
    reason: AlertReason,
    key: &str,
    incident: &pb::Incident,
    firing: Option<&pb::Firing>,
    recipients: Vec<pb::Recipient>,
    now: DateTime<Utc>,
) -> pb::Alert {
    let sv = render(reason, incident, firing, Lang::Sv);
    let en = render(reason, incident, firing, Lang::En);
    pb::Alert {
        id: alert_id(key),
        incident_id: incident.id.clone(),
        reason: reason.as_str().to_string(),
        severity: reason.severity() as i32,
        level: 0,
        recipients,
        title_sv: sv.title,
        body_sv: sv.body,
        title_en: en.title,
        body_en: en.body,
        raised_at: Some(to_timestamp(now)),
        dedup_key: key.to_string(),
    }
}

fn reason_of(alert: &pb::Alert) -> AlertReason {
    alert.reason.parse().unwrap_or(AlertReason::Reportable)
}

/// Raises an alert once: creates its state (unless it exists) and drives
/// it. A snapshot that changes nothing the alert is about finds the alert
/// settled and costs one read.
async fn raise(
    ctx: &Ctx,
    reason: AlertReason,
    key: &str,
    incident: &pb::Incident,
    firing: Option<&pb::Firing>,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let id = alert_id(key);
    let skey = format!("a.{id}");
    let current: Versioned<AlertState> = kv::read(&ctx.alerts, &skey).await?;
    match current.value {
        Some(s) if s.acked_by.is_some() => return Ok(()),
        Some(mut s) => {
            let new_units: Vec<String> = incident
                .units
                .iter()
                .filter(|u| !s.units.contains(u))
                .cloned()
                .collect();
            if new_units.is_empty() && !s.pending() {
                return Ok(());
            }
            if !new_units.is_empty() {
                // Another unit reports the same disruption: its manager is
                // alerted too (the ledger spares everyone already served).
                s.units.extend(new_units);
                s.settled = None;
                match kv::write(&ctx.alerts, &skey, &s, current.revision).await {
                    Ok(_) | Err(kv::Error::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        None => {
            let recipients = ctx.routing.recipients_for_units(
                reason,
                incident.units.iter().map(String::as_str),
                0,
            );
            let now = ctx.rt.clock.now();
            let alert = build_alert(reason, key, incident, firing, recipients, now);
            let s = AlertState {
                level: 0,
                level_since: Some(now),
                units: incident.units.clone(),
                acked_by: None,
                acked_at: None,
                delivered: BTreeSet::new(),
                settled: None,
                alert: hex::encode(alert.encode_to_vec()),
            };
            match kv::write(&ctx.alerts, &skey, &s, current.revision).await {
                Ok(_) => ctx.rt.metrics.inc(
                    "nisvakt_alerts_raised_total",
                    &[("reason", reason.as_str())],
                ),
                // Raised in the meantime (a replica, the sweep): drive that.
                Err(kv::Error::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    drive(ctx, &id, trace).await
}

/// The alert as it goes out at the state's level: that level's
/// recipients (with every unit that reported it), and for a level above 0 a
/// title and a first paragraph that say it was escalated and to which
/// level.
fn alert_at_level(ctx: &Ctx, state: &AlertState, raised: &pb::Alert) -> pb::Alert {
    let level = state.level;
    let reason = reason_of(raised);
    let mut alert = raised.clone();
    alert.level = level;
    alert.recipients =
        ctx.routing
            .recipients_for_units(reason, state.units.iter().map(String::as_str), level);
    if level == 0 {
        return alert;
    }
    let levels = ctx.routing.levels(reason).len();
    let waited = ctx.routing.escalation(reason, level - 1);
    for lang in Lang::ALL {
        let (title, body) = match lang {
            Lang::Sv => (&mut alert.title_sv, &mut alert.body_sv),
            Lang::En => (&mut alert.title_en, &mut alert.body_en),
        };
        let text = crate::render::Rendered {
            title: std::mem::take(title),
            body: std::mem::take(body),
        };
        let escalated = crate::render::escalated(&text, level, levels, waited, lang);
        *title = escalated.title;
        *body = escalated.body;
    }
    alert
}

/// Brings one alert up to date with its stored state: announces its
/// level, delivers to every recipient of that level not yet served, sets
/// the clock to the next level, and marks the level settled. Safe to
/// repeat at any point; a transient delivery failure leaves the level
/// unsettled for the next try.
async fn drive(ctx: &Ctx, id: &str, trace: &TraceContext) -> Result<(), HandleError> {
    let _turn = ctx.locks.lock(id).await;
    let skey = format!("a.{id}");
    let Some(state) = kv::read::<AlertState>(&ctx.alerts, &skey).await?.value else {
        tracing::warn!(alert = %id, "no state for alert; nothing to drive");
        return Ok(());
    };
    if !state.pending() {
        return Ok(());
    }
    let raised = state
        .alert()
        .ok_or_else(|| HandleError::Permanent(format!("alert state {id} unreadable")))?;
    let alert = alert_at_level(ctx, &state, &raised);
    announce(ctx, &alert, trace).await?;
    deliver(ctx, &skey, &alert, &state.delivered, trace).await?;
    // An acknowledgement may have come in while delivering: then no clock,
    // and one set in the meantime is cancelled again (the acknowledgement's
    // own cancel may have gone out before it).
    let mut scheduled = false;
    loop {
        let current: Versioned<AlertState> = kv::read(&ctx.alerts, &skey).await?;
        let Some(mut s) = current.value else {
            return Ok(());
        };
        if s.acked_by.is_some() && scheduled {
            cancel_escalation(ctx, id, alert.level, "acknowledged-late", trace).await?;
        }
        if !s.pending() || s.level != alert.level {
            return Ok(());
        }
        schedule_escalation(ctx, &alert, s.level_since, trace).await?;
        scheduled = true;
        s.settled = Some(s.level);
        match kv::write(&ctx.alerts, &skey, &s, current.revision).await {
            Ok(_) => return Ok(()),
            Err(kv::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Publishes the alert at its level for integrators and the console:
/// `raised` at level 0, `escalated` above; de-duplicated by id and level.
async fn announce(ctx: &Ctx, alert: &pb::Alert, trace: &TraceContext) -> Result<(), HandleError> {
    let id = &alert.id;
    if alert.level == 0 {
        ctx.rt
            .publisher
            .publish(
                subjects::alert(id, "raised"),
                &format!("alert:{id}:raised"),
                &pb::AlertRaised {
                    alert: Some(alert.clone()),
                },
                trace,
            )
            .await?;
    } else {
        ctx.rt
            .publisher
            .publish(
                subjects::alert(id, "escalated"),
                &format!("alert:{id}:escalated:{}", alert.level),
                &pb::AlertEscalated {
                    alert: Some(alert.clone()),
                },
                trace,
            )
            .await?;
    }
    Ok(())
}

/// Delivers the alert to every recipient of its level not in `done`,
/// writing each success to the ledger before the next, and publishing a
/// record of every attempt.
async fn deliver(
    ctx: &Ctx,
    skey: &str,
    alert: &pb::Alert,
    done: &BTreeSet<String>,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let level = alert.level;
    let mut transient = None;
    for r in &alert.recipients {
        let target = match Target::of(r) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "recipient cannot be reached");
                continue;
            }
        };
        let entry = format!("{level}:{}:{}", target.channel(), target.address());
        if done.contains(&entry) {
            continue;
        }
        let publisher = ctx.rt.publisher.clone();
        let record = |attempt: crate::deliver::retry::Attempt| {
            let publisher = publisher.clone();
            let result = attempt.delivery_result(alert, &target, to_timestamp(ctx.rt.clock.now()));
            let subject = subjects::delivery(&alert.id, target.channel());
            let msg_id = format!("delivery:{}:{entry}:{}", alert.id, attempt.number);
            let outcome = attempt.outcome.clone();
            async move {
                if let AttemptOutcome::Retrying { after } = outcome {
                    tracing::warn!(?after, "delivery failed; retrying");
                }
                if let Err(e) = publisher.publish(subject, &msg_id, &result, trace).await {
                    tracing::warn!(error = %e, "delivery record not published");
                }
            }
        };
        match deliver_with_retry(
            &ctx.deliverer as &dyn Channel,
            alert,
            r,
            &ctx.policy,
            record,
        )
        .await
        {
            Ok(_) => {
                ctx.rt.metrics.inc(
                    "nisvakt_deliveries_total",
                    &[("channel", target.channel()), ("result", "delivered")],
                );
                mark_delivered(ctx, skey, &entry).await?;
            }
            Err(e) if e.is_permanent() => {
                ctx.rt.metrics.inc(
                    "nisvakt_deliveries_total",
                    &[("channel", target.channel()), ("result", "failed")],
                );
                tracing::error!(error = %e, target = %target.address(), "delivery failed for good");
            }
            Err(e) => {
                ctx.rt.metrics.inc(
                    "nisvakt_deliveries_total",
                    &[("channel", target.channel()), ("result", "retry_later")],
                );
                transient = Some(e.to_string());
            }
        }
    }
    match transient {
        // Try again on redelivery; what was delivered is in the ledger.
        Some(e) => Err(HandleError::Transient(format!(
            "delivery to be retried: {e}"
        ))),
        None => Ok(()),
    }
}

async fn mark_delivered(ctx: &Ctx, skey: &str, entry: &str) -> Result<(), HandleError> {
    loop {
        let current: Versioned<AlertState> = kv::read(&ctx.alerts, skey).await?;
        let Some(mut s) = current.value else {
            return Err(HandleError::Transient("alert state vanished".into()));
        };
        if !s.delivered.insert(entry.to_string()) {
            return Ok(());
        }
        match kv::write(&ctx.alerts, skey, &s, current.revision).await {
            Ok(_) => return Ok(()),
            Err(kv::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn escalation_timer_id(alert_id: &str, level: u32) -> String {
    format!("esc-{alert_id}-l{level}")
}

/// Asks the deadline-timer for the clock that moves the alert from its
/// level to the next, if the routing has a next level. The due moment is
/// `since + ack_within`, from stored instants only, so asking again (a
/// redelivery, the sweep) leaves the timer's plan unchanged.
async fn schedule_escalation(
    ctx: &Ctx,
    alert: &pb::Alert,
    since: Option<DateTime<Utc>>,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let level = alert.level;
    let Some(within) = ctx.routing.escalation(reason_of(alert), level) else {
        return Ok(());
    };
    let since = since
        .or_else(|| {
            alert
                .raised_at
                .as_ref()
                .and_then(nisvakt_bus::clock::from_timestamp)
        })
        .unwrap_or_else(|| ctx.rt.clock.now());
    let timer_id = escalation_timer_id(&alert.id, level);
    let cmd = pb::ScheduleTimer {
        timer: Some(pb::Timer {
            id: timer_id.clone(),
            kind: pb::TimerKind::Escalation as i32,
            incident_id: alert.incident_id.clone(),
            due_at: Some(to_timestamp(since + within)),
            alert_id: alert.id.clone(),
            escalation_level: level + 1,
            ..Default::default()
        }),
    };
    ctx.rt
        .publisher
        .publish(
            subjects::timer_command(&timer_id, "schedule"),
            &format!("cmd:esc:{timer_id}"),
            &cmd,
            trace,
        )
        .await?;
    Ok(())
}

/// Asks the deadline-timer to drop the clock of `level`; `why` is part of
/// the message id, so a second cancel for another reason is not taken for
/// a duplicate of the first.
async fn cancel_escalation(
    ctx: &Ctx,
    alert_id: &str,
    level: u32,
    why: &str,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let timer_id = escalation_timer_id(alert_id, level);
    ctx.rt
        .publisher
        .publish(
            subjects::timer_command(&timer_id, "cancel"),
            &format!("cmd:esc-cancel:{timer_id}:{why}"),
            &pb::CancelTimer {
                timer_id: timer_id.clone(),
                reason: "acknowledged".into(),
            },
            trace,
        )
        .await?;
    Ok(())
}

/// An escalation clock fired: unless someone acknowledged, the alert moves
/// to the timer's level (once) and is driven there.
async fn escalate(
    ctx: &Ctx,
    timer: &pb::Timer,
    firing: &pb::Firing,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let skey = format!("a.{}", timer.alert_id);
    let next = timer.escalation_level;
    loop {
        let current: Versioned<AlertState> = kv::read(&ctx.alerts, &skey).await?;
        let Some(mut s) = current.value else {
            tracing::warn!(alert = %timer.alert_id, "escalation for an unknown alert; ignored");
            return Ok(());
        };
        if s.acked_by.is_some() {
            return Ok(()); // someone acted
        }
        if s.level >= next {
            break; // already escalated: drive finishes what is left
        }
        s.level = next;
        s.settled = None;
        s.level_since = Some(
            firing
                .intended_at
                .as_ref()
                .and_then(nisvakt_bus::clock::from_timestamp)
                .unwrap_or_else(|| ctx.rt.clock.now()),
        );
        match kv::write(&ctx.alerts, &skey, &s, current.revision).await {
            Ok(_) => {
                ctx.rt.metrics.inc("nisvakt_alerts_escalated_total", &[]);
                break;
            }
            Err(kv::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    drive(ctx, &timer.alert_id, trace).await
}

async fn on_ack(ctx: &Ctx, d: Delivery) -> Result<(), HandleError> {
    let cmd = d.decode::<pb::AcknowledgeAlert>()?;
    let skey = format!("a.{}", cmd.alert_id);
    let (state, first) = loop {
        let current: Versioned<AlertState> = kv::read(&ctx.alerts, &skey).await?;
        let Some(mut s) = current.value else {
            tracing::warn!(alert = %cmd.alert_id, "acknowledgement of an unknown alert; ignored");
            return Ok(());
        };
        if s.acked_by.is_some() {
            break (s, false);
        }
        s.acked_by = Some(cmd.acked_by.clone());
        s.acked_at = cmd
            .issued_at
            .as_ref()
            .and_then(nisvakt_bus::clock::from_timestamp)
            .or_else(|| Some(ctx.rt.clock.now()));
        match kv::write(&ctx.alerts, &skey, &s, current.revision).await {
            Ok(_) => break (s, true),
            Err(kv::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let incident_id = state.alert().map(|a| a.incident_id).unwrap_or_default();
    if first {
        ctx.rt.metrics.inc("nisvakt_alerts_acknowledged_total", &[]);
    }
    // Stop the clock of the current level (and any earlier one still there).
    for level in 0..=state.level {
        cancel_escalation(ctx, &cmd.alert_id, level, "acknowledged", &d.trace).await?;
    }
    // The note is an operator's free text: it goes on the bus masked.
    let note = nisvakt_domain::mask::mask_identifiers(&cmd.note).text;
    ctx.rt
        .publisher
        .publish(
            subjects::alert(&cmd.alert_id, "acknowledged"),
            &format!("ack:{}", cmd.alert_id),
            &pb::AlertAcknowledged {
                alert_id: cmd.alert_id.clone(),
                incident_id,
                acked_by: state.acked_by.clone().unwrap_or_default(),
                note,
                acked_at: state.acked_at.map(to_timestamp),
            },
            &d.trace,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_of_snapshots_of_one_incident_asks_for_the_same_alerts() {
        let mut inc = pb::Incident {
            id: "inc_1".into(),
            flags: Some(pb::IncidentFlags {
                suspected_nis: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let first = intents(&inc);
        inc.ticket_count = 999;
        inc.revision = 999;
        assert_eq!(intents(&inc), first);
        assert_eq!(alert_id(&first[0].1), alert_id("inc_1:suspected_nis"));
    }

    #[test]
    fn reportable_under_each_rule_set_is_its_own_alert() {
        let inc = pb::Incident {
            id: "inc_1".into(),
            assessments: vec![
                pb::Assessment {
                    rule_set: "seed-routine".into(),
                    reportable: true,
                    ..Default::default()
                },
                pb::Assessment {
                    rule_set: "cybersecurity-act-2025".into(),
                    reportable: false,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let keys: Vec<String> = intents(&inc).into_iter().map(|(_, k)| k).collect();
        assert_eq!(keys, ["inc_1:reportable:seed-routine"]);
    }
}
