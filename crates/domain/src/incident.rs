//! The incident projection and its fold: `apply(state, fact) -> outcome`.
//!
//! The classifier owns each incident and folds every fact about it — tickets
//! and their updates, operators' judgements, thresholds reached, stages
//! reported, resolution — into this projection, which is also what
//! `GET /v1/incidents/{id}` returns. Applying is idempotent: a redelivered
//! fact changes nothing. This module must not make ids, read clocks, do I/O
//! or decide correlation; a ticket's own words or `patient_harm` never make
//! an incident reportable, they only raise questions for a person.

use crate::assess::{self, Assessment, Deadline, DeadlineStatus, Reach};
use crate::mask::mask_identifiers;
use crate::rules::{CriterionKind, Requirement, RuleSet};
use crate::text::{Lexicon, is_suspected_nis};
use crate::ticket::{Category, PatientHarm, Ticket, TicketKey, TicketStatus};
use crate::time::local;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// How far a threshold fact's instant may lie ahead of `now` and still be
/// taken as reached (clock skew between the timer and the classifier).
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Why an incident id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Incident ids are `inc_` followed by a unique, subject-safe suffix.
    #[error("{0:?} is not an incident id (use inc_ followed by letters, digits, '-' or '_')")]
    BadId(String),
}

/// An incident's id: `inc_` plus something unique the caller chose (a ULID,
/// say). The core never makes ids. The id is also a NATS subject token, so
/// build it with [`IncidentId::parse`], which refuses dots, spaces and
/// wildcards; the field is public only so that services can match on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub String);

impl IncidentId {
    /// Checks the shape and wraps it.
    pub fn parse(id: impl Into<String>) -> Result<IncidentId, Error> {
        let id = id.into();
        let ok = id.strip_prefix("inc_").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        });
        if ok {
            Ok(IncidentId(id))
        } else {
            Err(Error::BadId(id))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a stage report was submitted (CONTRACT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportChannel {
    /// The authority's web tool (IRON).
    Tool,
    /// Registered letter or personal delivery.
    Letter,
    /// By phone.
    Phone,
    /// By e-mail.
    Email,
}

/// Everything that can happen to an incident. The service turns messages into
/// facts; `apply` folds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fact {
    /// A validated, masked ticket (new or an update of a known one).
    Ticket {
        /// Intake's receipt for it.
        receipt_id: String,
        /// The ticket.
        ticket: Ticket,
        /// When intake persisted it: the moment nisvakt knew.
        accepted_at: DateTime<Utc>,
    },
    /// A threshold timer fired: the disruption may now be long enough.
    ThresholdReached {
        /// The rule set whose criterion it is.
        rule_set: String,
        /// The criterion.
        criterion: String,
        /// The instant the timer was set for.
        at: DateTime<Utc>,
    },
    /// A person's judgement; each `Some` field is a confirmed fact.
    OperatorAssessment {
        /// The command's id (idempotency).
        command_id: String,
        /// Who judged.
        assessed_by: String,
        /// Whether intended care measures could not be carried out.
        care_blocked: Option<bool>,
        /// Harm to patients (none, risk, occurred).
        patient_harm: Option<PatientHarm>,
        /// Whether personal data were exposed, lost or altered.
        personal_data_breach: Option<bool>,
        /// Whether it concerns security-sensitive activity.
        security_protection: Option<bool>,
        /// Why (masked before it is stored).
        reasoning: Option<String>,
        /// When the judgement was made.
        at: DateTime<Utc>,
    },
    /// A report was submitted to an authority.
    StageReported {
        /// The command's id (idempotency).
        command_id: String,
        /// The duty (`nis`, `personal_data`, …).
        duty: String,
        /// The stage (`1`, `early_warning`, …).
        stage: String,
        /// The rule set; `None` means every active rule set with that stage.
        rule_set: Option<String>,
        /// When it was submitted.
        reported_at: DateTime<Utc>,
        /// Who submitted it.
        reported_by: String,
        /// How.
        channel: ReportChannel,
    },
    /// An operator declared the disruption over.
    Resolved {
        /// The command's id, if it came from a command.
        command_id: Option<String>,
        /// When the disruption ended.
        resolved_at: DateTime<Utc>,
        /// Who resolved it.
        resolved_by: String,
        /// A note (masked before it is stored).
        note: Option<String>,
    },
}

impl Fact {
    /// The idempotency key recorded once the fact has been applied.
    pub fn key(&self) -> String {
        match self {
            Fact::Ticket { ticket, .. } => format!(
                "ticket:{}/{}@{}",
                ticket.source, ticket.ticket_id, ticket.revision
            ),
            Fact::ThresholdReached {
                rule_set,
                criterion,
                at,
            } => format!("threshold:{rule_set}:{criterion}:{}", at.to_rfc3339()),
            Fact::OperatorAssessment { command_id, .. }
            | Fact::StageReported { command_id, .. } => {
                format!("command:{command_id}")
            }
            Fact::Resolved {
                command_id: Some(id),
                ..
            } => format!("command:{id}"),
            Fact::Resolved { resolved_at, .. } => format!("resolved:{}", resolved_at.to_rfc3339()),
        }
    }
}

/// Open until resolved (by an operator, or when every ticket is resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// The disruption may still be going on.
    Open,
    /// Over. Reporting duties can still be pending.
    Resolved,
}

/// Flags an operator sees at a glance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    /// A ticket's subject carries "Eventuell NIS-incident".
    pub suspected_nis: bool,
    /// Personal identifiers were found (and masked) in a ticket.
    pub personal_identifiers: bool,
    /// A question only a person can answer is open (see `open_questions`).
    pub needs_assessment: bool,
}

/// A question that needs a person's assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Question {
    /// The reporter suspects a NIS incident and nobody has assessed it yet.
    SuspectedNis,
    /// A ticket suggests harm to patients: is it serious care injury?
    PatientHarm,
    /// Identifiers were found, or the incident is reportable: was personal
    /// data exposed, lost or altered?
    PersonalDataBreach,
    /// A care threshold passed but nobody has said whether care was blocked.
    CareBlocked,
}

/// A fact as confirmed by an operator: who, when, and since when this value
/// has held (the anchor of the duties it triggers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed<T> {
    /// The confirmed value.
    pub value: T,
    /// Who confirmed it last.
    pub by: String,
    /// When it was last confirmed.
    pub at: DateTime<Utc>,
    /// When this value was first confirmed; re-confirming does not move it.
    pub since: DateTime<Utc>,
    /// The command that last confirmed it.
    pub command_id: String,
}

/// Who last assessed the incident and when; any assessment answers the
/// reporter's "Eventuell NIS-incident".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorMark {
    /// Who assessed.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The command.
    pub command_id: String,
    /// The reasoning, masked.
    pub reasoning: Option<String>,
}

/// The facts operators have confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmations {
    /// Whether intended care measures could not be carried out.
    pub care_blocked: Option<Confirmed<bool>>,
    /// Harm to patients.
    pub patient_harm: Option<Confirmed<PatientHarm>>,
    /// Whether it is a personal-data breach.
    pub personal_data_breach: Option<Confirmed<bool>>,
    /// Whether it concerns security-sensitive activity.
    pub security_protection: Option<Confirmed<bool>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One ticket's contribution to the incident (masked; no reporter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRef {
    /// The sending system.
    pub source: String,
    /// The ticket's id there.
    pub ticket_id: String,
    /// The revision applied.
    pub revision: u64,
    /// Intake's receipt for that revision.
    pub receipt_id: String,
    /// Masked subject.
    pub subject: String,
    /// The reporting unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The affected system as named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The category, given or inferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// Whether `category` was inferred from the text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub category_inferred: bool,
    /// When the ticket was created.
    pub reported_at: DateTime<Utc>,
    /// When intake accepted the first revision.
    pub first_accepted_at: DateTime<Utc>,
    /// When intake accepted this revision.
    pub accepted_at: DateTime<Utc>,
    /// The disruption's start per this ticket.
    pub disruption_started_at: DateTime<Utc>,
    /// When nisvakt learned this start (the revision that set it).
    pub start_known_at: DateTime<Utc>,
    /// The disruption's end per this ticket (a resolved ticket without an end
    /// counts as ended when it arrived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_ended_at: Option<DateTime<Utc>>,
    /// When nisvakt learned this end (the revision that set it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_known_at: Option<DateTime<Utc>>,
    /// Open or resolved.
    pub status: TicketStatus,
    /// Care blocked as the reporter says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_blocked: Option<bool>,
    /// Since when the ticket has said care was blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_blocked_since: Option<DateTime<Utc>>,
    /// Patient harm as the reporter says (a question only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_harm: Option<PatientHarm>,
    /// Whether the text has patient-harm words.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub harm_signal: bool,
    /// Whether the subject carries "Eventuell NIS-incident".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspected_nis: bool,
    /// Identifiers masked in this revision.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub identifiers_masked: u32,
}

impl TicketRef {
    /// The ticket's key.
    pub fn key(&self) -> TicketKey {
        TicketKey {
            source: self.source.clone(),
            ticket_id: self.ticket_id.clone(),
        }
    }
}

/// A submitted report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageReport {
    /// The command's id.
    pub command_id: String,
    /// The duty.
    pub duty: String,
    /// The stage.
    pub stage: String,
    /// The rule set; `None` means every rule set with that stage.
    pub rule_set: Option<String>,
    /// When it was submitted.
    pub reported_at: DateTime<Utc>,
    /// Who submitted it.
    pub reported_by: String,
    /// How.
    pub channel: ReportChannel,
}

/// An operator's resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The command's id, if any.
    pub command_id: Option<String>,
    /// When the disruption ended.
    pub resolved_at: DateTime<Utc>,
    /// Who resolved it.
    pub resolved_by: String,
    /// Masked note.
    pub note: Option<String>,
    /// When nisvakt recorded the resolution (when the end became known).
    pub recorded_at: DateTime<Utc>,
}

/// One line of the incident's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What kind of entry (`ticket`, `reportable`, `deadline`, …).
    pub kind: String,
    /// What happened, in English, with times.
    pub text: String,
}

/// The incident projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// `inc_…`.
    pub id: IncidentId,
    /// Increments on every real change; the KV revision check relies on it.
    pub revision: u64,
    /// Open or resolved.
    pub status: IncidentStatus,
    /// When the incident was opened.
    pub opened_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When nisvakt first learned of the disruption (first ticket accepted):
    /// the `detected` anchor.
    pub detected_at: Option<DateTime<Utc>>,
    /// The affected system, as first named.
    pub system: Option<String>,
    /// The category, given or inferred.
    pub category: Option<Category>,
    /// Every reporting unit.
    pub units: Vec<String>,
    /// How many distinct tickets (revisions do not count twice).
    pub ticket_count: u32,
    /// The tickets.
    pub tickets: Vec<TicketRef>,
    /// The earliest start over all tickets.
    pub disruption_started_at: Option<DateTime<Utc>>,
    /// The end: an operator's resolution, else once every ticket has ended.
    pub disruption_ended_at: Option<DateTime<Utc>>,
    /// Flags.
    pub flags: Flags,
    /// Why `needs_assessment` is raised.
    pub open_questions: Vec<Question>,
    /// Facts confirmed by operators.
    pub confirmed: Confirmations,
    /// The latest operator assessment, even one that confirmed no fact.
    pub last_assessment: Option<OperatorMark>,
    /// Reports submitted.
    pub reports: Vec<StageReport>,
    /// The operator's resolution.
    pub resolution: Option<Resolution>,
    /// One per active rule set.
    pub assessments: Vec<Assessment>,
    /// Every deadline, pending, met or cancelled.
    pub deadlines: Vec<Deadline>,
    /// The history.
    pub timeline: Vec<TimelineEntry>,
    /// Keys of applied facts, so a redelivered fact counts once.
    pub applied: BTreeSet<String>,
}

/// What one `apply` did, for the service to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The kind of change.
    pub kind: OutcomeKind,
    /// Rule sets under which the incident just became reportable.
    pub became_reportable: Vec<String>,
    /// What changed, in English, one line each.
    pub changes: Vec<String>,
}

/// The kind of change; decides the event published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Nothing changed (a redelivery, an older revision, a stale timer).
    Unchanged,
    /// The first ticket arrived.
    Opened,
    /// Facts changed but no assessment or deadline did.
    Updated,
    /// An assessment or deadline changed.
    Assessed,
    /// The incident became resolved.
    Resolved,
}

impl Outcome {
    fn unchanged() -> Outcome {
        Outcome {
            kind: OutcomeKind::Unchanged,
            became_reportable: Vec::new(),
            changes: Vec::new(),
        }
    }
}

impl Incident {
    /// An empty incident; the first ticket applied to it opens it.
    pub fn open(id: IncidentId, now: DateTime<Utc>) -> Incident {
        Incident {
            id,
            revision: 0,
            status: IncidentStatus::Open,
            opened_at: now,
            updated_at: now,
            resolved_at: None,
            detected_at: None,
            system: None,
            category: None,
            units: Vec::new(),
            ticket_count: 0,
            tickets: Vec::new(),
            disruption_started_at: None,
            disruption_ended_at: None,
            flags: Flags::default(),
            open_questions: Vec::new(),
            confirmed: Confirmations::default(),
            last_assessment: None,
            reports: Vec::new(),
            resolution: None,
            assessments: Vec::new(),
            deadlines: Vec::new(),
            timeline: Vec::new(),
            applied: BTreeSet::new(),
        }
    }

    /// Whether this incident holds the ticket (any revision): an update of a
    /// known ticket goes to its incident, whatever correlation says.
    pub fn has_ticket(&self, key: &TicketKey) -> bool {
        self.tickets
            .iter()
            .any(|t| t.source == key.source && t.ticket_id == key.ticket_id)
    }

    /// Whether applying `fact` would change nothing because it (or a newer
    /// revision of the same ticket) was already applied.
    pub fn already_applied(&self, fact: &Fact) -> bool {
        match fact {
            Fact::Ticket { ticket, .. } => self.tickets.iter().any(|t| {
                t.source == ticket.source
                    && t.ticket_id == ticket.ticket_id
                    && t.revision >= ticket.revision
            }),
            other => self.applied.contains(&other.key()),
        }
    }

    /// Folds one fact into the incident and re-assesses it under every rule
    /// set at `now`.
    ///
    /// Idempotent: an applied fact, the same or an older ticket revision, or
    /// a timer that changes nothing returns `Unchanged` and leaves the
    /// incident exactly as it was. Every real change increments `revision`.
    pub fn apply(
        &mut self,
        fact: &Fact,
        rules: &[RuleSet],
        lexicon: &Lexicon,
        now: DateTime<Utc>,
    ) -> Outcome {
        if self.already_applied(fact) {
            return Outcome::unchanged();
        }
        if matches!(fact, Fact::Resolved { .. }) && self.resolution.is_some() {
            // Already resolved by a person; a second resolution is not news.
            return Outcome::unchanged();
        }
        // The snapshot leaves out what it need not copy: the history and the
        // applied keys only grow at the end, and only a ticket fact changes
        // the tickets (and then always changes them). So a storm of
        // thousands of tickets does not copy thousands of tickets per fold.
        let timeline = std::mem::take(&mut self.timeline);
        let applied = std::mem::take(&mut self.applied);
        let tickets = std::mem::take(&mut self.tickets);
        let before = self.clone();
        self.tickets = tickets;
        let mut entries = Vec::new();
        let mut changes = Vec::new();
        let eval_at = match fact {
            Fact::Ticket {
                receipt_id,
                ticket,
                accepted_at,
            } => {
                self.fold_ticket(receipt_id, ticket, *accepted_at, lexicon, &mut entries);
                now
            }
            Fact::ThresholdReached {
                rule_set,
                criterion,
                at,
            } => {
                entries.push(entry(
                    *at,
                    "threshold",
                    format!(
                        "threshold {criterion} of {rule_set} reached at {}",
                        local(*at)
                    ),
                ));
                // The timer's firing asserts that `at` has come, even if this
                // host's clock lags a little behind the timer's; a claim far
                // ahead of `now` is not trusted.
                if *at > now && *at - now <= CLOCK_SKEW {
                    *at
                } else {
                    now
                }
            }
            Fact::OperatorAssessment { .. } => {
                self.fold_assessment(fact, &mut entries);
                now
            }
            Fact::StageReported { .. } => {
                self.fold_report(fact, rules, &mut entries, &mut changes);
                now
            }
            Fact::Resolved { .. } => {
                self.fold_resolution(fact, now, &mut entries);
                now
            }
        };
        self.refresh(rules, eval_at);
        let mut derived = self.describe_changes(&before, eval_at, &mut entries);
        changes.append(&mut derived.0);
        let became_reportable = derived.1;

        let tickets = std::mem::take(&mut self.tickets);
        if !matches!(fact, Fact::Ticket { .. }) && *self == before {
            *self = before;
            self.tickets = tickets;
            self.timeline = timeline;
            self.applied = applied;
            return Outcome::unchanged();
        }
        self.tickets = tickets;
        self.timeline = timeline;
        self.applied = applied;
        if let Fact::Ticket { ticket, .. } = fact {
            changes.insert(
                0,
                format!(
                    "ticket {} revision {} applied",
                    ticket.key(),
                    ticket.revision
                ),
            );
        }
        self.timeline.extend(entries);
        // Tickets are recognised through `tickets` (key and revision), so
        // their keys would only make a storm's document larger.
        if !matches!(fact, Fact::Ticket { .. }) {
            self.applied.insert(fact.key());
        }
        self.revision = before.revision + 1;
        self.updated_at = now;
        let assessed = self.assessments != before.assessments || self.deadlines != before.deadlines;
        let kind = if before.ticket_count == 0 && !self.tickets.is_empty() {
            OutcomeKind::Opened
        } else if before.status == IncidentStatus::Open && self.status == IncidentStatus::Resolved {
            OutcomeKind::Resolved
        } else if assessed {
            OutcomeKind::Assessed
        } else {
            OutcomeKind::Updated
        };
        Outcome {
            kind,
            became_reportable,
            changes,
        }
    }

    fn fold_ticket(
        &mut self,
        receipt_id: &str,
        ticket: &Ticket,
        accepted_at: DateTime<Utc>,
        lexicon: &Lexicon,
        entries: &mut Vec<TimelineEntry>,
    ) {
        let existing = self
            .tickets
            .iter()
            .position(|t| t.source == ticket.source && t.ticket_id == ticket.ticket_id);
        let old = existing.map(|i| self.tickets[i].clone());
        let text = [
            Some(ticket.subject.as_str()),
            ticket.system.as_deref(),
            ticket.description.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" \n ");
        let inferred = lexicon.infer_category(&text);
        let ended = ticket.disruption_ended_at.or(match ticket.status {
            TicketStatus::Resolved => Some(accepted_at.max(ticket.disruption_started_at)),
            TicketStatus::Open => None,
        });
        let r = TicketRef {
            source: ticket.source.clone(),
            ticket_id: ticket.ticket_id.clone(),
            revision: ticket.revision,
            receipt_id: receipt_id.to_string(),
            subject: ticket.subject.clone(),
            unit: ticket.unit.clone(),
            system: ticket.system.clone(),
            category: ticket.category.or(inferred),
            category_inferred: ticket.category.is_none() && inferred.is_some(),
            reported_at: ticket.reported_at,
            first_accepted_at: old.as_ref().map_or(accepted_at, |o| o.first_accepted_at),
            accepted_at,
            disruption_started_at: ticket.disruption_started_at,
            start_known_at: old
                .as_ref()
                .filter(|o| o.disruption_started_at == ticket.disruption_started_at)
                .map_or(accepted_at, |o| o.start_known_at),
            disruption_ended_at: ended,
            end_known_at: ended.map(|_| {
                old.as_ref()
                    .filter(|o| o.disruption_ended_at == ended)
                    .and_then(|o| o.end_known_at)
                    .unwrap_or(accepted_at)
            }),
            status: ticket.status,
            care_blocked: ticket.care_blocked,
            care_blocked_since: (ticket.care_blocked == Some(true)).then(|| {
                old.as_ref()
                    .and_then(|o| o.care_blocked_since)
                    .unwrap_or(accepted_at)
            }),
            patient_harm: ticket.patient_harm,
            harm_signal: lexicon.harm_signals(&text),
            suspected_nis: is_suspected_nis(&ticket.subject),
            identifiers_masked: ticket.identifiers_masked,
        };
        let ongoing = r.disruption_ended_at.is_none();
        let was_ongoing = old
            .as_ref()
            .is_some_and(|o| o.disruption_ended_at.is_none());
        if ongoing && !was_ongoing && self.resolution.is_some() {
            self.resolution = None;
            entries.push(entry(
                accepted_at,
                "reopened",
                format!(
                    "reopened: ticket {} says the disruption is going on",
                    r.key()
                ),
            ));
        }
        let (kind, verb) = if old.is_some() {
            ("ticket_updated", "updated")
        } else {
            ("ticket", "received")
        };
        entries.push(entry(
            accepted_at,
            kind,
            format!(
                "ticket {} revision {} {verb}: {:?}; disruption from {}{}",
                r.key(),
                r.revision,
                r.subject,
                local(r.disruption_started_at),
                r.disruption_ended_at
                    .map(|e| format!(" to {}", local(e)))
                    .unwrap_or_else(|| ", ongoing".to_string())
            ),
        ));
        match existing {
            Some(i) => self.tickets[i] = r,
            None => self.tickets.push(r),
        }
    }

    fn fold_assessment(&mut self, fact: &Fact, entries: &mut Vec<TimelineEntry>) {
        let Fact::OperatorAssessment {
            command_id,
            assessed_by,
            care_blocked,
            patient_harm,
            personal_data_breach,
            security_protection,
            reasoning,
            at,
        } = fact
        else {
            return;
        };
        let c = &mut self.confirmed;
        let mut said = Vec::new();
        let plain = |a: &bool, b: &bool| a == b;
        if let Some(v) = care_blocked {
            confirm(&mut c.care_blocked, *v, assessed_by, *at, command_id, plain);
            said.push(format!("care_blocked = {v}"));
        }
        if let Some(v) = patient_harm {
            // Risk and occurrence both trigger lex Maria: moving from one to
            // the other must not restart its clock.
            let same = |a: &PatientHarm, b: &PatientHarm| a == b || (a.is_harm() && b.is_harm());
            confirm(&mut c.patient_harm, *v, assessed_by, *at, command_id, same);
            said.push(format!("patient_harm = {}", v.as_str()));
        }
        if let Some(v) = personal_data_breach {
            confirm(
                &mut c.personal_data_breach,
                *v,
                assessed_by,
                *at,
                command_id,
                plain,
            );
            said.push(format!("personal_data_breach = {v}"));
        }
        if let Some(v) = security_protection {
            confirm(
                &mut c.security_protection,
                *v,
                assessed_by,
                *at,
                command_id,
                plain,
            );
            said.push(format!("security_protection = {v}"));
        }
        if said.is_empty() {
            said.push("no facts".to_string());
        }
        let reasoning = reasoning
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .map(|r| mask_identifiers(r).text);
        let mut text = format!("{assessed_by} assessed: {}", said.join(", "));
        if let Some(r) = &reasoning {
            text.push_str(&format!(" — {r}"));
        }
        entries.push(entry(*at, "operator_assessment", text));
        self.last_assessment = Some(OperatorMark {
            by: assessed_by.clone(),
            at: *at,
            command_id: command_id.clone(),
            reasoning,
        });
    }

    fn fold_report(
        &mut self,
        fact: &Fact,
        rules: &[RuleSet],
        entries: &mut Vec<TimelineEntry>,
        changes: &mut Vec<String>,
    ) {
        let Fact::StageReported {
            command_id,
            duty,
            stage,
            rule_set,
            reported_at,
            reported_by,
            channel,
        } = fact
        else {
            return;
        };
        let known = rules
            .iter()
            .any(|r| rule_set.as_ref().is_none_or(|id| *id == r.id) && r.has_stage(duty, stage));
        if !known {
            changes.push(format!(
                "no active rule set has duty {duty} stage {stage}; the report is recorded only"
            ));
        }
        self.reports.push(StageReport {
            command_id: command_id.clone(),
            duty: duty.clone(),
            stage: stage.clone(),
            rule_set: rule_set.clone(),
            reported_at: *reported_at,
            reported_by: reported_by.clone(),
            channel: *channel,
        });
        let under = rule_set
            .as_ref()
            .map(|r| format!(" under {r}"))
            .unwrap_or_default();
        entries.push(entry(
            *reported_at,
            "stage_reported",
            format!(
                "{reported_by} reported {duty} stage {stage}{under} at {} ({channel:?})",
                local(*reported_at)
            ),
        ));
    }

    fn fold_resolution(
        &mut self,
        fact: &Fact,
        now: DateTime<Utc>,
        entries: &mut Vec<TimelineEntry>,
    ) {
        let Fact::Resolved {
            command_id,
            resolved_at,
            resolved_by,
            note,
        } = fact
        else {
            return;
        };
        let note = note.as_deref().map(|n| mask_identifiers(n).text);
        let with_note = note.as_ref().map(|n| format!(" — {n}")).unwrap_or_default();
        entries.push(entry(
            *resolved_at,
            "resolved",
            format!(
                "{resolved_by} resolved the incident, disruption over at {}{with_note}",
                local(*resolved_at)
            ),
        ));
        self.resolution = Some(Resolution {
            command_id: command_id.clone(),
            resolved_at: *resolved_at,
            resolved_by: resolved_by.clone(),
            note,
            recorded_at: now,
        });
    }

    /// Recomputes everything derived from the facts: aggregates, flags,
    /// assessments, deadlines and questions.
    fn refresh(&mut self, rules: &[RuleSet], now: DateTime<Utc>) {
        let tickets = &self.tickets;
        self.ticket_count = u32::try_from(tickets.len()).unwrap_or(u32::MAX);
        let units: BTreeSet<&str> = tickets.iter().filter_map(|t| t.unit.as_deref()).collect();
        self.units = units.into_iter().map(str::to_string).collect();
        self.system = tickets.iter().find_map(|t| t.system.clone());
        self.category = tickets
            .iter()
            .find(|t| !t.category_inferred && t.category.is_some())
            .or_else(|| tickets.iter().find(|t| t.category.is_some()))
            .and_then(|t| t.category);
        self.detected_at = tickets.iter().map(|t| t.first_accepted_at).min();
        self.disruption_started_at = tickets.iter().map(|t| t.disruption_started_at).min();
        let tickets_end =
            if !tickets.is_empty() && tickets.iter().all(|t| t.disruption_ended_at.is_some()) {
                tickets.iter().filter_map(|t| t.disruption_ended_at).max()
            } else {
                None
            };
        // A person's resolution states when the disruption ended and wins over
        // the tickets (it is how an operator corrects a ticket's end).
        self.disruption_ended_at = self
            .resolution
            .as_ref()
            .map(|r| r.resolved_at)
            .or(tickets_end);
        let all_resolved =
            !tickets.is_empty() && tickets.iter().all(|t| t.status == TicketStatus::Resolved);
        if let Some(r) = &self.resolution {
            self.status = IncidentStatus::Resolved;
            self.resolved_at = Some(r.resolved_at);
        } else if all_resolved {
            self.status = IncidentStatus::Resolved;
            self.resolved_at = self.disruption_ended_at;
        } else {
            self.status = IncidentStatus::Open;
            self.resolved_at = None;
        }
        self.flags.suspected_nis = tickets.iter().any(|t| t.suspected_nis);
        self.flags.personal_identifiers = tickets.iter().any(|t| t.identifiers_masked > 0);

        let mut assessments = Vec::new();
        let mut deadlines: Vec<Deadline> = Vec::new();
        for rs in rules {
            let a = assess::assess(self, rs, now);
            deadlines.extend(assess::deadlines(self, rs, &a));
            assessments.push(a);
        }
        // Deadlines of rule sets that are no longer active are not ours to
        // judge any more; keep them as they were.
        for d in &self.deadlines {
            if !rules.iter().any(|r| r.id == d.rule_set) {
                deadlines.push(d.clone());
            }
        }
        self.assessments = assessments;
        self.deadlines = deadlines;

        let mut q = Vec::new();
        if self.flags.suspected_nis && self.last_assessment.is_none() {
            q.push(Question::SuspectedNis);
        }
        let harm_answered = self
            .confirmed
            .patient_harm
            .as_ref()
            .is_some_and(|p| p.value != PatientHarm::Unknown);
        if self.harm_signalled() && !harm_answered {
            q.push(Question::PatientHarm);
        }
        let reportable = self.assessments.iter().any(|a| a.reportable);
        if (self.flags.personal_identifiers || reportable)
            && self.confirmed.personal_data_breach.is_none()
        {
            q.push(Question::PersonalDataBreach);
        }
        if self.care_blocked().is_none() && self.care_threshold_passed(rules, now) {
            q.push(Question::CareBlocked);
        }
        self.flags.needs_assessment = !q.is_empty();
        self.open_questions = q;
    }

    fn care_threshold_passed(&self, rules: &[RuleSet], now: DateTime<Utc>) -> bool {
        rules
            .iter()
            .flat_map(|r| &r.criteria)
            .any(|c| match &c.kind {
                CriterionKind::Duration {
                    threshold,
                    comparison,
                    requires: Some(Requirement::CareBlocked),
                } => matches!(
                    assess::reach(self, *threshold, *comparison, now),
                    Reach::Reached(_)
                ),
                _ => false,
            })
    }

    /// Compares with the state before and writes what changed; returns the
    /// change lines and the rule sets that became reportable.
    fn describe_changes(
        &self,
        before: &Incident,
        now: DateTime<Utc>,
        entries: &mut Vec<TimelineEntry>,
    ) -> (Vec<String>, Vec<String>) {
        let mut changes = Vec::new();
        let mut became = Vec::new();
        for a in &self.assessments {
            let old = before.assessments.iter().find(|o| o.rule_set == a.rule_set);
            let was = old.is_some_and(|o| o.reportable);
            let met: Vec<String> = a
                .criteria
                .iter()
                .filter(|c| c.met)
                .map(|c| format!("{}: {}", c.id, c.reason))
                .collect();
            if a.reportable && !was {
                became.push(a.rule_set.clone());
                let text = format!(
                    "reportable under {} {} (identified {}): {}",
                    a.rule_set,
                    a.rule_set_version,
                    a.identified_at.map(local).unwrap_or_default(),
                    met.join("; ")
                );
                changes.push(text.clone());
                entries.push(entry(now, "reportable", text));
            } else if !a.reportable && was {
                let text = format!(
                    "no longer reportable under {} {}: no criterion holds",
                    a.rule_set, a.rule_set_version
                );
                changes.push(text.clone());
                entries.push(entry(now, "not_reportable", text));
            } else if a.reportable {
                for c in a.criteria.iter().filter(|c| c.met) {
                    let was_met = old
                        .and_then(|o| o.criteria.iter().find(|x| x.id == c.id))
                        .is_some_and(|x| x.met);
                    if !was_met {
                        let text = format!("{} also met under {}: {}", c.id, a.rule_set, c.reason);
                        changes.push(text.clone());
                        entries.push(entry(now, "criterion_met", text));
                    }
                }
            }
        }
        for d in &self.deadlines {
            let old = before.deadlines.iter().find(|o| o.id == d.id);
            let what = format!(
                "{} {} ({}/{}, {})",
                d.label_en, d.rule_set, d.duty, d.stage, d.id
            );
            let text = match (old, d.status) {
                (None, DeadlineStatus::Pending) => Some(format!(
                    "deadline {what} due {}{}",
                    local(d.due_at),
                    if d.provisional { " (provisional)" } else { "" }
                )),
                (Some(o), DeadlineStatus::Pending) if o.status != DeadlineStatus::Pending => Some(
                    format!("deadline {what} pending again, due {}", local(d.due_at)),
                ),
                (Some(o), DeadlineStatus::Pending) if o.due_at != d.due_at => Some(format!(
                    "deadline {what} moved from {} to {}{}",
                    local(o.due_at),
                    local(d.due_at),
                    if d.provisional { " (provisional)" } else { "" }
                )),
                (o, DeadlineStatus::Met) if o.is_none_or(|o| o.status != DeadlineStatus::Met) => {
                    Some(format!(
                        "deadline {what} met at {}",
                        d.met_at.map(local).unwrap_or_default()
                    ))
                }
                (Some(o), DeadlineStatus::Cancelled) if o.status != DeadlineStatus::Cancelled => {
                    Some(format!(
                        "deadline {what} cancelled: the duty no longer applies"
                    ))
                }
                _ => None,
            };
            if let Some(text) = text {
                changes.push(text.clone());
                entries.push(entry(now, "deadline", text));
            }
        }
        for q in &self.open_questions {
            if !before.open_questions.contains(q) {
                let text = format!("needs assessment: {}", question_text(*q));
                changes.push(text.clone());
                entries.push(entry(now, "question", text));
            }
        }
        if self.status != before.status && before.ticket_count > 0 {
            changes.push(format!("status {:?} -> {:?}", before.status, self.status));
        }
        (changes, became)
    }

    /// Whether care was blocked, since when and per whom: an operator's
    /// confirmation wins; otherwise a ticket saying so; otherwise a ticket
    /// saying not; otherwise unknown.
    pub fn care_blocked(&self) -> Option<(bool, DateTime<Utc>, String)> {
        if let Some(c) = &self.confirmed.care_blocked {
            return Some((c.value, c.since, format!("operator {}", c.by)));
        }
        if let Some(t) = self
            .tickets
            .iter()
            .filter_map(|t| t.care_blocked_since.map(|s| (s, t)))
            .min_by_key(|(s, _)| *s)
        {
            return Some((true, t.0, format!("ticket {}", t.1.key())));
        }
        self.tickets
            .iter()
            .find(|t| t.care_blocked == Some(false))
            .map(|t| (false, t.accepted_at, format!("ticket {}", t.key())))
    }

    /// When nisvakt learned the current disruption start (the ticket that
    /// gave the earliest start).
    pub fn start_known_at(&self) -> Option<DateTime<Utc>> {
        let start = self.disruption_started_at?;
        self.tickets
            .iter()
            .filter(|t| t.disruption_started_at == start)
            .map(|t| t.start_known_at)
            .min()
    }

    /// When nisvakt learned the current disruption end: the operator's
    /// resolution, else the ticket revision that gave the latest end.
    pub fn end_known_at(&self) -> Option<DateTime<Utc>> {
        let end = self.disruption_ended_at?;
        if let Some(r) = &self.resolution {
            return Some(r.recorded_at);
        }
        self.tickets
            .iter()
            .filter(|t| t.disruption_ended_at == Some(end))
            .filter_map(|t| t.end_known_at)
            .min()
    }

    /// Whether any ticket suggests patient harm (field or words).
    pub fn harm_signalled(&self) -> bool {
        self.tickets.iter().any(|t| {
            t.harm_signal
                || matches!(
                    t.patient_harm,
                    Some(PatientHarm::Risk | PatientHarm::Occurred | PatientHarm::Unknown)
                )
        })
    }

    /// The earliest report of a stage that counts for `rule_set`.
    pub fn report_of(&self, rule_set: &str, duty: &str, stage: &str) -> Option<DateTime<Utc>> {
        self.reports
            .iter()
            .filter(|r| {
                r.duty == duty
                    && r.stage == stage
                    && r.rule_set.as_deref().is_none_or(|x| x == rule_set)
            })
            .map(|r| r.reported_at)
            .min()
    }

    /// The assessment under one rule set.
    pub fn assessment(&self, rule_set: &str) -> Option<&Assessment> {
        self.assessments.iter().find(|a| a.rule_set == rule_set)
    }

    /// The deadline of one stage under one rule set.
    pub fn deadline(&self, rule_set: &str, duty: &str, stage: &str) -> Option<&Deadline> {
        self.deadlines
            .iter()
            .find(|d| d.rule_set == rule_set && d.duty == duty && d.stage == stage)
    }

    /// Every pending threshold over all rule sets, for the timer.
    pub fn pending_thresholds(&self) -> Vec<(String, assess::PendingThreshold)> {
        self.assessments
            .iter()
            .flat_map(|a| {
                a.pending_thresholds
                    .iter()
                    .map(|p| (a.rule_set.clone(), p.clone()))
            })
            .collect()
    }
}

fn question_text(q: Question) -> &'static str {
    match q {
        Question::SuspectedNis => "the reporter suspects a NIS incident",
        Question::PatientHarm => {
            "a ticket suggests patient harm: was there serious care injury or a risk of it?"
        }
        Question::PersonalDataBreach => "were personal data exposed, lost or altered?",
        Question::CareBlocked => {
            "the care threshold has passed: could intended care measures not be carried out?"
        }
    }
}

/// Records a confirmation; `since` stays put while the value keeps the same
/// meaning (`same`), so re-confirming never restarts a duty's clock.
fn confirm<T: Copy>(
    slot: &mut Option<Confirmed<T>>,
    value: T,
    by: &str,
    at: DateTime<Utc>,
    command_id: &str,
    same: impl Fn(&T, &T) -> bool,
) {
    let since = match slot {
        Some(old) if same(&old.value, &value) => old.since.min(at),
        _ => at,
    };
    *slot = Some(Confirmed {
        value,
        by: by.to_string(),
        at,
        since,
        command_id: command_id.to_string(),
    });
}

fn entry(at: DateTime<Utc>, kind: &str, text: String) -> TimelineEntry {
    TimelineEntry {
        at,
        kind: kind.to_string(),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules;
    use chrono::{Duration, TimeZone};

    #[test]
    fn incident_ids_must_be_inc_and_subject_safe() {
        assert!(IncidentId::parse("inc_01JH7Z3K2M").is_ok());
        for bad in ["", "inc_", "01JH", "inc_a.b", "inc_a b", "inc_>", "INC_x"] {
            assert!(IncidentId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_projection_has_every_field_issue_3_lists_and_round_trips() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 0).unwrap();
        let mut inc = Incident::open(IncidentId::parse("inc_x").unwrap(), t0);
        let ticket = Ticket {
            source: "intraservice".into(),
            ticket_id: "1".into(),
            revision: 1,
            subject: "Eventuell NIS-incident journalen".into(),
            description: None,
            reported_at: t0,
            unit: Some("Enhet".into()),
            reporter_ref: None,
            system: Some("Journalsystemet".into()),
            category: None,
            disruption_started_at: t0,
            disruption_ended_at: Some(t0 + Duration::hours(7)),
            care_blocked: Some(true),
            patient_harm: None,
            status: TicketStatus::Open,
            identifiers_masked: 0,
        };
        let fact = Fact::Ticket {
            receipt_id: "r1".into(),
            ticket,
            accepted_at: t0 + Duration::hours(7),
        };
        let fact_json = serde_json::to_string(&fact).unwrap();
        assert!(fact_json.contains("\"type\":\"ticket\""));
        assert_eq!(serde_json::from_str::<Fact>(&fact_json).unwrap(), fact);
        inc.apply(
            &fact,
            &rules::builtin(),
            &Lexicon::default_sv(),
            t0 + Duration::hours(7),
        );

        let v = serde_json::to_value(&inc).unwrap();
        for key in [
            "id",
            "status",
            "system",
            "category",
            "units",
            "ticket_count",
            "disruption_started_at",
            "disruption_ended_at",
            "flags",
            "assessments",
            "deadlines",
            "timeline",
            "revision",
            "opened_at",
            "updated_at",
            "resolved_at",
            "tickets",
            "confirmed",
            "applied",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["id"], "inc_x");
        assert_eq!(v["status"], "open");
        assert_eq!(v["category"], "record_system");
        assert_eq!(v["disruption_started_at"], "2026-03-10T08:00:00Z");
        for key in ["suspected_nis", "personal_identifiers", "needs_assessment"] {
            assert!(v["flags"][key].is_boolean(), "flags.{key}");
        }
        let a = &v["assessments"][0];
        for key in [
            "rule_set",
            "rule_set_version",
            "reportable",
            "identified_at",
            "criteria",
            "pending_thresholds",
        ] {
            assert!(a.get(key).is_some(), "assessments[0].{key}");
        }
        for key in ["id", "met", "met_at", "reason"] {
            assert!(a["criteria"][0].get(key).is_some(), "criteria[0].{key}");
        }
        let d = &v["deadlines"][0];
        for key in [
            "id",
            "rule_set",
            "duty",
            "stage",
            "due_at",
            "anchor",
            "anchor_at",
            "status",
            "label_sv",
            "label_en",
            "met_at",
            "warnings_at",
            "overdue_every_secs",
            "channel_sv",
            "channel_en",
            "instructions_sv",
            "instructions_en",
            "certainty",
        ] {
            assert!(d.get(key).is_some(), "deadlines[0].{key}");
        }
        assert_eq!(d["status"], "pending");
        assert_eq!(d["duty"], "nis");
        assert_eq!(d["stage"], "1");
        assert_eq!(d["anchor"], "identified");
        assert_eq!(d["overdue_every_secs"], 3600);
        for key in ["at", "kind", "text"] {
            assert!(v["timeline"][0].get(key).is_some(), "timeline[0].{key}");
        }
        let back: Incident = serde_json::from_value(v).unwrap();
        assert_eq!(back, inc);
    }
}
