//! The classifier's shell: three consumers (tickets, operator commands,
//! thresholds reached) that each turn a message into a domain `Fact`, fold
//! it into the incident with `Incident::apply`, store the projection with a
//! revision check, and publish the change. It decides nothing itself: the
//! verdicts are the core's; this module routes, stores and publishes.
//!
//! Routing: a ticket's incident is claimed in the `nis_correlation` bucket
//! (`t.<ticket>` → incident, with `create`) before the ticket is folded, so
//! every later revision and every redelivery goes to the same incident. A
//! new ticket finds its incident through the disruption key (`d.<system or
//! category>` → the open incident), claimed with create/update revision
//! checks so two replicas cannot open two incidents for one disruption.
//!
//! Crash safety: the projection is written first, then the event is
//! published with the id `inc:<incident>:<revision>:<kind>`. When a crash
//! falls in between, the redelivered fact folds to `Unchanged`, and the
//! event of the stored revision (kept beside the projection as
//! `last_event`) is published again; the broker drops it if it was
//! already stored. Two replicas never lose an update: every write checks
//! the revision it read, and a loser folds the fact again on fresh state.
//!
//! Size: the stored document must fit in one NATS message; storm timelines
//! are summarised ([`compact_timeline`]) and an oversized document is
//! refused with a message that says so rather than retried forever.

use std::sync::Arc;

use async_nats::jetstream::kv::Store;
use chrono::{DateTime, Duration, Utc};
use nisvakt_bus::clock::from_timestamp;
use nisvakt_bus::consume::ConsumerSpec;
use nisvakt_bus::kv::{self, Versioned};
use nisvakt_bus::{
    Delivery, HandleError, Runtime, Shutdown, TraceContext, convert, subjects, topology,
};
use nisvakt_domain::correlate;
use nisvakt_domain::incident::{
    Fact, Incident, IncidentId, OutcomeKind, ReportChannel, TimelineEntry,
};
use nisvakt_domain::rules::RuleSet;
use nisvakt_domain::text::Lexicon;
use nisvakt_domain::ticket::Ticket;
use nisvakt_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Config;

/// The event last published for the stored revision, kept so a crash
/// between store and publish can be repaired on redelivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastEvent {
    /// `opened`, `updated`, `assessed` or `resolved`.
    pub kind: String,
    /// The revision it describes.
    pub revision: u64,
    /// Rule sets that became reportable with it.
    #[serde(default)]
    pub became_reportable: Vec<String>,
    /// What changed.
    #[serde(default)]
    pub changes: Vec<String>,
    /// What caused it.
    #[serde(default)]
    pub cause: String,
    /// The receipt of the ticket that caused it (for `opened`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub receipt_id: String,
}

/// What the `nis_incidents` bucket holds: the projection, plus the last
/// event (an extra field of the served JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The incident projection.
    #[serde(flatten)]
    pub incident: Incident,
    /// The event of this revision.
    #[serde(default)]
    pub last_event: Option<LastEvent>,
    /// Ticket lines folded out of the timeline to keep a storm's
    /// projection under the broker's message size (see [`compact_timeline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline_compacted: Option<Compacted>,
}

/// How many ticket lines of the timeline were folded into one summary line.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Compacted {
    /// Ticket lines removed (each ticket is still listed under `tickets`).
    pub lines: u64,
    /// The earliest removed line's time.
    pub from: DateTime<Utc>,
    /// The latest removed line's time.
    pub to: DateTime<Utc>,
}

/// Ticket lines (`ticket`, `ticket_updated`) kept in the timeline before
/// further ones are summarised: enough to read how a storm began.
pub const TIMELINE_TICKET_LINES: usize = 25;

/// The timeline kind of the summary line.
pub const SUMMARY_KIND: &str = "tickets_summarised";

/// Keeps the first [`TIMELINE_TICKET_LINES`] ticket lines of the timeline
/// and folds every later one into a single summary line, so a storm of
/// hundreds of tickets does not add hundreds of lines (about 220 bytes
/// each) to a document that must fit in one NATS message. Every ticket stays
/// listed, with its unit and times, under `tickets`; assessment, deadline,
/// operator and threshold lines are never removed. Idempotent.
pub fn compact_timeline(stored: &mut Stored) {
    let is_ticket_line = |kind: &str| kind == "ticket" || kind == "ticket_updated";
    let mut seen = 0usize;
    let mut removed: Option<Compacted> = None;
    stored.incident.timeline.retain(|e| {
        if !is_ticket_line(&e.kind) {
            return true;
        }
        seen += 1;
        if seen <= TIMELINE_TICKET_LINES {
            return true;
        }
        removed = Some(match removed {
            None => Compacted {
                lines: 1,
                from: e.at,
                to: e.at,
            },
            Some(c) => Compacted {
                lines: c.lines + 1,
                from: c.from.min(e.at),
                to: c.to.max(e.at),
            },
        });
        false
    });
    let Some(new) = removed else {
        return;
    };
    let total = match stored.timeline_compacted {
        None => new,
        Some(old) => Compacted {
            lines: old.lines + new.lines,
            from: old.from.min(new.from),
            to: old.to.max(new.to),
        },
    };
    stored.timeline_compacted = Some(total);
    let text = format!(
        "{} further ticket lines (new tickets and updates) received {} to {} are summarised here; \
         every ticket is listed under tickets",
        total.lines,
        nisvakt_domain::time::local(total.from),
        nisvakt_domain::time::local(total.to),
    );
    let summary = TimelineEntry {
        at: total.from,
        kind: SUMMARY_KIND.to_string(),
        text,
    };
    let timeline = &mut stored.incident.timeline;
    match timeline.iter().position(|e| e.kind == SUMMARY_KIND) {
        Some(i) => timeline[i] = summary,
        None => {
            // Right after the last ticket line kept.
            let after = timeline
                .iter()
                .rposition(|e| is_ticket_line(&e.kind))
                .map_or(timeline.len(), |i| i + 1);
            timeline.insert(after, summary);
        }
    }
}

struct Ctx {
    rt: Runtime,
    rules: Vec<RuleSet>,
    lexicon: Lexicon,
    window: Duration,
    incidents: Store,
    correlation: Store,
}

/// Loads rules, connects and runs until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    // Everything that can be wrong in configuration fails before connecting.
    let rules = nisvakt_domain::rules::load_spec(&config.rules)
        .map_err(|e| anyhow::anyhow!("NISVAKT_RULES={}: {e}", config.rules))?;
    if rules.is_empty() {
        anyhow::bail!("NISVAKT_RULES={}: no rule set found", config.rules);
    }
    let lexicon = match &config.lexicon {
        Some(p) => Lexicon::load(p).map_err(|e| anyhow::anyhow!("NISVAKT_LEXICON: {e}"))?,
        None => Lexicon::default_sv(),
    };
    let window = nisvakt_domain::time::parse_duration(&config.correlation_window)
        .map_err(|e| anyhow::anyhow!("NISVAKT_CORRELATION_WINDOW: {e}"))?;
    for r in &rules {
        tracing::info!(rule_set = %r.id, version = %r.version, "rule set active");
    }

    let rt = Runtime::start(
        "classifier",
        &config.common,
        crate::DEFAULT_ADMIN,
        shutdown.clone(),
    )
    .await?;
    let ctx = Arc::new(Ctx {
        incidents: topology::bucket_or_create(&rt.js, topology::BUCKET_INCIDENTS).await?,
        correlation: topology::bucket_or_create(&rt.js, topology::BUCKET_CORRELATION).await?,
        rt: rt.clone(),
        rules,
        lexicon,
        window,
    });

    let tickets = rt.consume(
        ConsumerSpec::new(topology::TICKETS, "classifier-tickets", &[]),
        ctx.clone(),
        |ctx, d| async move { on_ticket(&ctx, d).await },
    );
    let commands = rt.consume(
        ConsumerSpec::new(
            topology::COMMANDS,
            "classifier-commands",
            &["nis.v1.command.incident.>"],
        ),
        ctx.clone(),
        |ctx, d| async move { on_command(&ctx, d).await },
    );
    let thresholds = rt.consume(
        ConsumerSpec::new(
            topology::DEADLINES,
            "classifier-thresholds",
            &["nis.v1.deadline.*.threshold_reached"],
        ),
        ctx.clone(),
        |ctx, d| async move { on_threshold(&ctx, d).await },
    );
    let (a, b, c) = tokio::join!(tickets, commands, thresholds);
    rt.close().await;
    a?;
    b?;
    c?;
    Ok(())
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

/// A new incident's id, derived from the ticket that opens it so that a
/// redelivery of that ticket finds the same id: `inc_` + a ULID whose time
/// is the acceptance and whose randomness is the receipt's hash.
fn new_incident_id(receipt_id: &str, accepted_at: DateTime<Utc>) -> IncidentId {
    let digest = Sha256::digest(receipt_id.as_bytes());
    let mut random = 0u128;
    for b in &digest[..10] {
        random = (random << 8) | u128::from(*b);
    }
    let ms = accepted_at.timestamp_millis().max(0) as u64;
    let ulid = ulid::Ulid::from_parts(ms, random);
    IncidentId::parse(format!("inc_{ulid}")).expect("inc_ + ULID is a valid id")
}

fn parse_id(key: &str, raw: &[u8]) -> Result<IncidentId, kv::Error> {
    IncidentId::parse(String::from_utf8_lossy(raw).into_owned()).map_err(|e| kv::Error::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn incident_key(id: &str) -> String {
    subjects::token(id)
}

/// Keys in the correlation bucket.
fn ticket_key(t: &Ticket) -> String {
    format!("t.{}", short_hash(&[&t.source, &t.ticket_id]))
}

fn disruption_key(k: &str) -> String {
    format!("d.{}", short_hash(&[k]))
}

async fn on_ticket(ctx: &Ctx, d: Delivery) -> Result<(), HandleError> {
    let accepted = d.decode::<pb::TicketAccepted>()?;
    let ticket = accepted
        .ticket
        .as_ref()
        .ok_or_else(|| HandleError::Permanent("TicketAccepted without ticket".into()))?;
    let ticket =
        convert::ticket_from_pb(ticket).map_err(|e| HandleError::Permanent(e.to_string()))?;
    let accepted_at = accepted
        .accepted_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or_else(|| HandleError::Permanent("TicketAccepted without accepted_at".into()))?;
    let fact = Fact::Ticket {
        receipt_id: accepted.receipt_id.clone(),
        ticket: ticket.clone(),
        accepted_at,
    };
    let cause = Cause {
        name: "ticket",
        receipt_id: &accepted.receipt_id,
    };
    for attempt in 0..MAX_ATTEMPTS {
        let id = match route_ticket(ctx, &ticket, &accepted.receipt_id, accepted_at).await {
            Ok(id) => id,
            Err(kv::Error::Conflict(_)) => {
                contention_pause(attempt, d.stream_sequence).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match fold(ctx, &id, &fact, &cause, &d.trace, true).await {
            Ok(()) => return Ok(()),
            Err(FoldError::Conflict) => contention_pause(attempt, d.stream_sequence).await,
            Err(FoldError::Handle(e)) => return Err(e),
        }
    }
    Err(HandleError::Transient("too many concurrent writers".into()))
}

/// Attempts at a read-fold-write before the message is handed back to the
/// broker for a later redelivery.
const MAX_ATTEMPTS: u32 = 32;

/// A short pause after losing a write race, growing with the attempt and
/// spread by the message's sequence so that two replicas that keep
/// colliding fall out of step.
async fn contention_pause(attempt: u32, sequence: u64) {
    let spread = 1 + sequence % 4;
    let ms = u64::from(attempt.min(8)) * spread;
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Which incident a ticket belongs to: the one its earlier revisions (or
/// earlier deliveries) went to, else the open incident of the same
/// disruption if it correlates, else a new one (claimed in the correlation
/// bucket so that two replicas cannot open two incidents for one
/// disruption).
///
/// The ticket's own mapping is claimed (`create`) before anything is folded,
/// so every later revision of the ticket, and every redelivery after a
/// crash, goes to the same incident, even when the disruption key has since
/// moved on to a newer incident.
async fn route_ticket(
    ctx: &Ctx,
    ticket: &Ticket,
    receipt_id: &str,
    accepted_at: DateTime<Utc>,
) -> Result<IncidentId, kv::Error> {
    let tk = ticket_key(ticket);
    if let Some(id) = ctx
        .correlation
        .get(&tk)
        .await
        .map_err(|e| broker(e.to_string(), &tk))?
    {
        return parse_id(&tk, &id);
    }
    let id = correlate_or_claim(ctx, ticket, receipt_id, accepted_at).await?;
    match ctx
        .correlation
        .create(&tk, id.as_str().to_string().into())
        .await
    {
        Ok(_) => Ok(id),
        // Another delivery of this ticket (or another revision of it) was
        // routed first: follow it.
        Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
            Err(kv::Error::Conflict(tk))
        }
        Err(e) => Err(broker(e.to_string(), &tk)),
    }
}

fn broker(reason: String, key: &str) -> kv::Error {
    kv::Error::Broker {
        key: key.to_string(),
        reason,
    }
}

/// The incident of the ticket's disruption: the one the disruption key
/// names if it still correlates, else a new one claimed with a revision
/// check.
async fn correlate_or_claim(
    ctx: &Ctx,
    ticket: &Ticket,
    receipt_id: &str,
    accepted_at: DateTime<Utc>,
) -> Result<IncidentId, kv::Error> {
    let primary = correlate::correlation_key(ticket, &ctx.lexicon);
    let category = format!(
        "category:{}",
        correlate::effective_category(ticket, &ctx.lexicon)
    );
    let dk = disruption_key(&primary);
    let entry = ctx
        .correlation
        .entry(&dk)
        .await
        .map_err(|e| broker(e.to_string(), &dk))?;
    let fresh = new_incident_id(receipt_id, accepted_at);
    let revision = match entry {
        Some(e) if e.operation == async_nats::jetstream::kv::Operation::Put => {
            let id = parse_id(&dk, &e.value)?;
            if id == fresh {
                return Ok(id); // our own claim, from before a crash
            }
            let stored: Versioned<Stored> =
                kv::read(&ctx.incidents, &incident_key(id.as_str())).await?;
            match stored.value {
                Some(s) if correlate::correlates(&s.incident, ticket, &ctx.lexicon, ctx.window) => {
                    return Ok(id);
                }
                // Claimed but not written yet: another replica is opening
                // it right now (or crashed doing so; this ticket opens it).
                None => return Ok(id),
                Some(_) => e.revision,
            }
        }
        Some(e) => e.revision,
        None => 0,
    };
    // A ticket naming a system may be about the disruption an earlier
    // ticket described only by its category (and the other way round):
    // the category key names the open incident of that kind.
    let ck = disruption_key(&category);
    if ck != dk
        && let Some(e) = ctx
            .correlation
            .entry(&ck)
            .await
            .map_err(|e| broker(e.to_string(), &ck))?
        && e.operation == async_nats::jetstream::kv::Operation::Put
    {
        let id = parse_id(&ck, &e.value)?;
        let stored: Versioned<Stored> =
            kv::read(&ctx.incidents, &incident_key(id.as_str())).await?;
        if let Some(s) = stored.value
            && correlate::correlates(&s.incident, ticket, &ctx.lexicon, ctx.window)
        {
            return Ok(id);
        }
    }
    let value: bytes::Bytes = fresh.as_str().to_string().into();
    if ck != dk {
        // Let later category-only tickets find this incident; an existing
        // claim stays (it is checked with `correlates` when used).
        let _ = ctx.correlation.create(&ck, value.clone()).await;
    }
    if revision == 0 {
        ctx.correlation
            .create(&dk, value)
            .await
            .map_err(|e| match e.kind() {
                async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                    kv::Error::Conflict(dk.clone())
                }
                _ => broker(e.to_string(), &dk),
            })?;
    } else {
        ctx.correlation
            .update(&dk, value, revision)
            .await
            .map_err(|e| match e.kind() {
                async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => {
                    kv::Error::Conflict(dk.clone())
                }
                _ => broker(e.to_string(), &dk),
            })?;
    }
    Ok(fresh)
}

/// What caused a fold, for the event.
struct Cause<'a> {
    /// `ticket`, `operator_assessment`, `report`, `resolve`, `threshold_reached`.
    name: &'static str,
    /// The ticket's receipt, for a ticket.
    receipt_id: &'a str,
}

enum FoldError {
    Conflict,
    Handle(HandleError),
}

impl From<kv::Error> for FoldError {
    fn from(e: kv::Error) -> Self {
        match e {
            kv::Error::Conflict(_) => FoldError::Conflict,
            other => FoldError::Handle(other.into()),
        }
    }
}

impl From<HandleError> for FoldError {
    fn from(e: HandleError) -> Self {
        FoldError::Handle(e)
    }
}

/// Folds one fact into one incident, stores it and publishes the change.
async fn fold(
    ctx: &Ctx,
    id: &IncidentId,
    fact: &Fact,
    cause: &Cause<'_>,
    trace: &TraceContext,
    may_open: bool,
) -> Result<(), FoldError> {
    let key = incident_key(id.as_str());
    let current: Versioned<Stored> = kv::read(&ctx.incidents, &key).await?;
    let now = fact_time(fact).max(ctx.rt.clock.now());
    let mut stored = match current.value {
        Some(s) => s,
        None if may_open => Stored {
            incident: Incident::open(id.clone(), now),
            last_event: None,
            timeline_compacted: None,
        },
        None => {
            return Err(FoldError::Handle(HandleError::Permanent(format!(
                "incident {id} does not exist"
            ))));
        }
    };
    let outcome = stored.incident.apply(fact, &ctx.rules, &ctx.lexicon, now);
    let kind = match outcome.kind {
        OutcomeKind::Unchanged => {
            // Already folded; make sure its event went out (crash repair).
            if let Some(last) = &stored.last_event {
                publish(ctx, &stored.incident, last, trace).await?;
            }
            ctx.rt
                .metrics
                .inc("nisvakt_facts_total", &[("result", "unchanged")]);
            return Ok(());
        }
        OutcomeKind::Opened => "opened",
        OutcomeKind::Updated => "updated",
        OutcomeKind::Assessed => "assessed",
        OutcomeKind::Resolved => "resolved",
    };
    let last = LastEvent {
        kind: kind.to_string(),
        revision: stored.incident.revision,
        became_reportable: outcome.became_reportable,
        changes: outcome.changes,
        cause: cause.name.to_string(),
        receipt_id: cause.receipt_id.to_string(),
    };
    stored.last_event = Some(last.clone());
    compact_timeline(&mut stored);
    write_stored(ctx, &key, &stored, current.revision).await?;
    ctx.rt
        .metrics
        .inc("nisvakt_facts_total", &[("result", kind)]);
    publish(ctx, &stored.incident, &last, trace).await?;
    Ok(())
}

/// Writes the stored projection with a revision check, after making sure
/// it fits in one message: a document over the broker's `max_payload`
/// could never be written, so it is refused with a message that says why
/// instead of failing in the broker on every redelivery.
async fn write_stored(
    ctx: &Ctx,
    key: &str,
    stored: &Stored,
    revision: u64,
) -> Result<(), FoldError> {
    let bytes = serde_json::to_vec(stored).map_err(|e| kv::Error::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    let limit = ctx.rt.client.server_info().max_payload;
    ctx.rt
        .metrics
        .set("nisvakt_incident_projection_bytes", &[], bytes.len() as f64);
    if limit > 0 && bytes.len() > limit {
        return Err(FoldError::Handle(HandleError::Permanent(format!(
            "incident {key}: the projection would be {} bytes, over the broker's max_payload of {limit} \
             ({} tickets); raise max_payload or compact the projection",
            bytes.len(),
            stored.incident.ticket_count
        ))));
    }
    if limit > 0 && bytes.len() > limit / 4 * 3 {
        tracing::warn!(
            incident = key,
            bytes = bytes.len(),
            limit,
            "incident projection is over three quarters of the broker's max_payload"
        );
    }
    let store = &ctx.incidents;
    let result = if revision == 0 {
        store
            .create(key, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| match e.kind() {
                async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                    kv::Error::Conflict(key.to_string())
                }
                _ => broker(e.to_string(), key),
            })
    } else {
        store
            .update(key, bytes.into(), revision)
            .await
            .map(|_| ())
            .map_err(|e| match e.kind() {
                async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => {
                    kv::Error::Conflict(key.to_string())
                }
                _ => broker(e.to_string(), key),
            })
    };
    result.map_err(FoldError::from)
}

fn fact_time(f: &Fact) -> DateTime<Utc> {
    match f {
        Fact::Ticket { accepted_at, .. } => *accepted_at,
        Fact::ThresholdReached { at, .. } => *at,
        Fact::OperatorAssessment { at, .. } => *at,
        Fact::StageReported { reported_at, .. } => *reported_at,
        Fact::Resolved { resolved_at, .. } => *resolved_at,
    }
}

/// Publishes the event of a stored revision. An opening that already made
/// the incident reportable is also an `assessed` event, so subscribers to
/// verdicts need follow only `assessed`.
async fn publish(
    ctx: &Ctx,
    incident: &Incident,
    last: &LastEvent,
    trace: &TraceContext,
) -> Result<(), HandleError> {
    let pb_incident = convert::incident_to_pb(incident);
    let id = incident.id.as_str();
    let p = &ctx.rt.publisher;
    let msg_id = |k: &str| format!("inc:{id}:{}:{k}", last.revision);
    let assessed = pb::IncidentAssessed {
        incident: Some(pb_incident.clone()),
        became_reportable: last.became_reportable.clone(),
        cause: last.cause.clone(),
    };
    match last.kind.as_str() {
        "opened" => {
            p.publish(
                subjects::incident(id, "opened"),
                &msg_id("opened"),
                &pb::IncidentOpened {
                    incident: Some(pb_incident.clone()),
                    receipt_id: last.receipt_id.clone(),
                },
                trace,
            )
            .await?;
            if !incident.assessments.is_empty() {
                p.publish(
                    subjects::incident(id, "assessed"),
                    &msg_id("assessed"),
                    &assessed,
                    trace,
                )
                .await?;
            }
        }
        "assessed" => {
            p.publish(
                subjects::incident(id, "assessed"),
                &msg_id("assessed"),
                &assessed,
                trace,
            )
            .await?;
        }
        "resolved" => {
            p.publish(
                subjects::incident(id, "resolved"),
                &msg_id("resolved"),
                &pb::IncidentResolved {
                    incident: Some(pb_incident),
                    resolved_by: last.cause.clone(),
                },
                trace,
            )
            .await?;
        }
        _ => {
            p.publish(
                subjects::incident(id, "updated"),
                &msg_id("updated"),
                &pb::IncidentUpdated {
                    incident: Some(pb_incident),
                    changes: last.changes.clone(),
                },
                trace,
            )
            .await?;
        }
    }
    Ok(())
}

async fn fold_retrying(
    ctx: &Ctx,
    id: &IncidentId,
    fact: &Fact,
    cause: &'static str,
    d: &Delivery,
) -> Result<(), HandleError> {
    let cause = Cause {
        name: cause,
        receipt_id: "",
    };
    for attempt in 0..MAX_ATTEMPTS {
        match fold(ctx, id, fact, &cause, &d.trace, false).await {
            Ok(()) => return Ok(()),
            Err(FoldError::Conflict) => contention_pause(attempt, d.stream_sequence).await,
            Err(FoldError::Handle(e)) => return Err(e),
        }
    }
    Err(HandleError::Transient("too many concurrent writers".into()))
}

/// A command's id is its idempotency key: without one, two different
/// commands would look like one.
fn command_id(id: &str) -> Result<String, HandleError> {
    if id.trim().is_empty() {
        Err(HandleError::Permanent("command without command_id".into()))
    } else {
        Ok(id.to_string())
    }
}

async fn on_command(ctx: &Ctx, d: Delivery) -> Result<(), HandleError> {
    let verb = d.subject.rsplit('.').next().unwrap_or_default();
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(from_timestamp);
    let now = ctx.rt.clock.now();
    let (incident_id, fact, cause) = match verb {
        "assessment" => {
            let c = d.decode::<pb::RecordAssessment>()?;
            let fact = Fact::OperatorAssessment {
                command_id: command_id(&c.command_id)?,
                assessed_by: c.assessed_by.clone(),
                care_blocked: c.care_blocked,
                patient_harm: convert::harm_from_pb(c.patient_harm()),
                personal_data_breach: c.personal_data_breach,
                security_protection: c.security_protection,
                reasoning: (!c.reasoning.is_empty()).then(|| c.reasoning.clone()),
                at: time(&c.issued_at).unwrap_or(now),
            };
            (c.incident_id, fact, "operator_assessment")
        }
        "report" => {
            let c = d.decode::<pb::ReportStage>()?;
            let fact = Fact::StageReported {
                command_id: command_id(&c.command_id)?,
                duty: c.duty.clone(),
                stage: c.stage.clone(),
                rule_set: (!c.rule_set.is_empty()).then(|| c.rule_set.clone()),
                reported_at: time(&c.reported_at).unwrap_or(now),
                reported_by: c.reported_by.clone(),
                channel: match c.channel() {
                    pb::ReportChannel::Letter => ReportChannel::Letter,
                    pb::ReportChannel::Phone => ReportChannel::Phone,
                    pb::ReportChannel::Email => ReportChannel::Email,
                    pb::ReportChannel::Tool | pb::ReportChannel::Unspecified => ReportChannel::Tool,
                },
            };
            (c.incident_id, fact, "report")
        }
        "resolve" => {
            let c = d.decode::<pb::ResolveIncident>()?;
            let fact = Fact::Resolved {
                command_id: Some(command_id(&c.command_id)?),
                resolved_at: time(&c.resolved_at).unwrap_or(now),
                resolved_by: c.resolved_by.clone(),
                note: (!c.note.is_empty()).then(|| c.note.clone()),
            };
            (c.incident_id, fact, "resolve")
        }
        other => {
            return Err(HandleError::Permanent(format!(
                "unknown incident command `{other}`"
            )));
        }
    };
    let id = IncidentId::parse(incident_id).map_err(|e| HandleError::Permanent(e.to_string()))?;
    fold_retrying(ctx, &id, &fact, cause, &d).await
}

async fn on_threshold(ctx: &Ctx, d: Delivery) -> Result<(), HandleError> {
    let event = d.decode::<pb::ThresholdReached>()?;
    let firing = event
        .firing
        .ok_or_else(|| HandleError::Permanent("ThresholdReached without firing".into()))?;
    let timer = firing
        .timer
        .ok_or_else(|| HandleError::Permanent("ThresholdReached without timer".into()))?;
    let at = firing
        .intended_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or_else(|| HandleError::Permanent("ThresholdReached without intended_at".into()))?;
    let fact = Fact::ThresholdReached {
        rule_set: timer.rule_set.clone(),
        criterion: timer.criterion.clone(),
        at,
    };
    let id =
        IncidentId::parse(timer.incident_id).map_err(|e| HandleError::Permanent(e.to_string()))?;
    fold_retrying(ctx, &id, &fact, "threshold_reached", &d).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_redelivered_ticket_derives_the_same_incident_id() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap();
        assert_eq!(new_incident_id("rcp_a", t), new_incident_id("rcp_a", t));
        assert_ne!(new_incident_id("rcp_a", t), new_incident_id("rcp_b", t));
        assert!(new_incident_id("rcp_a", t).as_str().starts_with("inc_01"));
    }
}
