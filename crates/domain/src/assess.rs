//! Assessment of one incident under one rule set, and the deadlines that
//! follow from it: which criteria are met, since when, on which facts, when
//! the incident was identified as reportable, and when each stage is due.
//!
//! Pure functions of the incident's facts, the rule set and `now`; called by
//! [`crate::incident::Incident::apply`]. This module must not change the
//! incident, read clocks or make ids. Every result carries a reason a person
//! can check (English, with times in UTC and Stockholm time).

use crate::incident::{Incident, IncidentId};
use crate::rules::{
    Anchor, Certainty, Comparison, CriterionKind, Duty, JudgedFact, Lead, Requirement, RuleSet,
    Stage, Trigger,
};
use crate::time::{format_duration, local};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Assessment cannot fail; the enum keeps the one-`Error`-per-module
/// convention and is never constructed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {}

/// The judgement of one incident under one rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The rule set's id.
    pub rule_set: String,
    /// The rule set's version, so that a later reader knows which rules spoke.
    pub rule_set_version: String,
    /// Whether any criterion is met.
    pub reportable: bool,
    /// When the provider could first know the incident was reportable; starts
    /// the stage clocks. Never moves later once set.
    pub identified_at: Option<DateTime<Utc>>,
    /// Every criterion checked, met or not, with its reason.
    pub criteria: Vec<CriterionResult>,
    /// Thresholds still ahead of an ongoing disruption: the service sets a
    /// timer for each and feeds back `ThresholdReached`.
    pub pending_thresholds: Vec<PendingThreshold>,
}

/// One criterion's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriterionResult {
    /// The criterion's id.
    pub id: String,
    /// Whether it is met.
    pub met: bool,
    /// When it was met (the threshold instant or the confirmation).
    pub met_at: Option<DateTime<Utc>>,
    /// Facts and times behind the result, for a person to check.
    pub reason: String,
    /// The same reason in Swedish, for operators.
    #[serde(default)]
    pub reason_sv: String,
    /// How sure the rule set is of this criterion.
    pub certainty: Certainty,
}

/// A threshold an ongoing disruption has not reached yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingThreshold {
    /// The criterion's id.
    pub criterion: String,
    /// When it will be met if the disruption goes on.
    pub at: DateTime<Utc>,
}

/// Whether a deadline still needs a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineStatus {
    /// A report is owed.
    Pending,
    /// The report was made.
    Met,
    /// The duty no longer applies (e.g. an operator corrected a fact).
    Cancelled,
}

/// One stage's deadline for one incident under one rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// `<incident>/<rule_set>/<duty>/<stage>`: stable across revisions, so
    /// the timer can replace or cancel it.
    pub id: String,
    /// The rule set's id.
    pub rule_set: String,
    /// The rule set's version.
    pub rule_set_version: String,
    /// `nis`, `personal_data`, `lex_maria`, `security_protection`, …
    pub duty: String,
    /// The stage id (`1`, `2`, `3`, `early_warning`, …).
    pub stage: String,
    /// When the report is due.
    pub due_at: DateTime<Utc>,
    /// The anchor's name (`identified`, `confirmed`, `first_report`, …).
    pub anchor: String,
    /// When the clock started.
    pub anchor_at: DateTime<Utc>,
    /// True while the anchor is a report not yet made: the due time is
    /// counted from that report's own deadline and will move.
    pub provisional: bool,
    /// Pending, met or cancelled.
    pub status: DeadlineStatus,
    /// Swedish label (`Skede 1`).
    pub label_sv: String,
    /// English label (`Stage 1`).
    pub label_en: String,
    /// When the report was made.
    pub met_at: Option<DateTime<Utc>>,
    /// When to warn, before `due_at`.
    pub warnings_at: Vec<DateTime<Utc>>,
    /// How often to repeat the alarm once overdue, in seconds.
    pub overdue_every_secs: Option<i64>,
    /// Where to report (Swedish).
    pub channel_sv: String,
    /// Where to report (English).
    pub channel_en: String,
    /// What to do (Swedish).
    pub instructions_sv: String,
    /// What to do (English).
    pub instructions_en: String,
    /// Who receives it (Swedish).
    pub recipient_sv: String,
    /// Who receives it (English).
    pub recipient_en: String,
    /// The deadline is an internal target, not the law's number.
    pub internal_target: bool,
    /// The weakest certainty behind this deadline.
    pub certainty: Certainty,
}

/// How far a duration threshold has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// No disruption start is known.
    NoStart,
    /// Reached at this instant.
    Reached(DateTime<Utc>),
    /// Ongoing; will be reached at this instant.
    Pending(DateTime<Utc>),
    /// The disruption ended before the threshold.
    EndedBefore(DateTime<Utc>),
}

/// The instant a threshold is reached, counted from the disruption's start.
/// `more_than` is met one second after the threshold.
pub(crate) fn reach(
    incident: &Incident,
    threshold: Duration,
    comparison: Comparison,
    now: DateTime<Utc>,
) -> Reach {
    let Some(start) = incident.disruption_started_at else {
        return Reach::NoStart;
    };
    let at = match comparison {
        Comparison::AtLeast => start + threshold,
        Comparison::MoreThan => start + threshold + Duration::seconds(1),
    };
    match incident.disruption_ended_at {
        Some(end) => {
            let lasted = end - start;
            let long_enough = match comparison {
                Comparison::AtLeast => lasted >= threshold,
                Comparison::MoreThan => lasted > threshold,
            };
            if long_enough {
                Reach::Reached(at)
            } else {
                Reach::EndedBefore(end)
            }
        }
        None if now >= at => Reach::Reached(at),
        None => Reach::Pending(at),
    }
}

fn t(dt: DateTime<Utc>) -> String {
    format!("{} ({})", dt.format("%Y-%m-%dT%H:%M:%SZ"), local(dt))
}

/// A reason in both languages: English for engineers and logs, Swedish
/// for the operators who must check it.
#[derive(Debug, Clone, Default)]
struct Reason {
    en: String,
    sv: String,
}

impl Reason {
    fn new(en: impl Into<String>, sv: impl Into<String>) -> Reason {
        Reason {
            en: en.into(),
            sv: sv.into(),
        }
    }

    fn push(&mut self, en: &str, sv: &str) {
        self.en.push_str(en);
        self.sv.push_str(sv);
    }
}

fn duration_sv(d: Duration) -> String {
    format_duration(d)
}

/// The Swedish name of a judged fact, as the routine words it.
fn fact_sv(fact: JudgedFact) -> &'static str {
    match fact {
        JudgedFact::PatientHarm => "patientskada (allvarlig vårdskada eller risk för den)",
        JudgedFact::SecurityProtection => "säkerhetsskyddsincident",
        JudgedFact::PersonalDataBreach => "personuppgiftsincident",
        JudgedFact::CareBlocked => "att vårdåtgärder inte kunde genomföras",
    }
}

fn value_sv(value: &str) -> &str {
    match value {
        "true" => "ja",
        "false" => "nej",
        "none" => "ingen",
        "risk" => "risk",
        "occurred" => "inträffad",
        "unknown" => "okänt",
        other => other,
    }
}

/// Assesses `incident` under `rule_set` at `now`.
///
/// Duration criteria are measured from the disruption's start: met at once
/// for a disruption already long enough, met by the clock for an ongoing one
/// (with a pending threshold until then), not met when it ended before the
/// threshold. Judgement criteria are met only by an operator's confirmation.
/// `identified_at` is the earliest, over met criteria, of max(met_at, the
/// moment the establishing facts reached nisvakt), and never later than an
/// earlier assessment's.
pub fn assess(incident: &Incident, rule_set: &RuleSet, now: DateTime<Utc>) -> Assessment {
    let mut criteria = Vec::new();
    let mut pending = Vec::new();
    let mut identified: Option<DateTime<Utc>> = None;
    let care = incident.care_blocked();
    for c in &rule_set.criteria {
        let (met_at, known_at, reason) = match &c.kind {
            CriterionKind::Duration {
                threshold,
                comparison,
                requires,
            } => {
                let (need, need_sv) = match comparison {
                    Comparison::AtLeast => (
                        format!("{} or more", format_duration(*threshold)),
                        format!("{} eller mer", duration_sv(*threshold)),
                    ),
                    Comparison::MoreThan => (
                        format!("more than {}", format_duration(*threshold)),
                        format!("mer än {}", duration_sv(*threshold)),
                    ),
                };
                let (start_text, start_sv) = incident
                    .disruption_started_at
                    .map(|s| {
                        (
                            format!("disruption started {}", t(s)),
                            format!("störningen började {}", local(s)),
                        )
                    })
                    .unwrap_or_default();
                let lasted = |end: DateTime<Utc>| {
                    format_duration(end - incident.disruption_started_at.unwrap_or(end))
                };
                let (reached, mut reason) = match reach(incident, *threshold, *comparison, now) {
                    Reach::NoStart => (
                        None,
                        Reason::new(
                            "no disruption start is known",
                            "ingen starttid för störningen är känd",
                        ),
                    ),
                    Reach::Reached(at) => (
                        Some(at),
                        match incident.disruption_ended_at {
                            Some(end) => Reason::new(
                                format!(
                                    "{start_text}, ended {}: lasted {}, {need}",
                                    t(end),
                                    lasted(end)
                                ),
                                format!(
                                    "{start_sv}, slutade {}: varade {}, {need_sv}",
                                    local(end),
                                    lasted(end)
                                ),
                            ),
                            // No `now` in the text: a reason must not change
                            // unless its facts do, or every fold would look
                            // like a new assessment.
                            None => Reason::new(
                                format!(
                                    "{start_text} and is still going on: {need} reached at {}",
                                    t(at)
                                ),
                                format!("{start_sv} och pågår: {need_sv} uppnåddes {}", local(at)),
                            ),
                        },
                    ),
                    Reach::Pending(at) => (
                        None,
                        Reason::new(
                            format!(
                                "{start_text} and is still going on: {need} will be reached at {}",
                                t(at)
                            ),
                            format!("{start_sv} och pågår: {need_sv} uppnås {}", local(at)),
                        ),
                    ),
                    Reach::EndedBefore(end) => (
                        None,
                        Reason::new(
                            format!(
                                "{start_text}, ended {} after {}: shorter than {need}",
                                t(end),
                                lasted(end)
                            ),
                            format!(
                                "{start_sv}, slutade {} efter {}: kortare än {need_sv}",
                                local(end),
                                lasted(end)
                            ),
                        ),
                    ),
                };
                let mut blocked_ok = true;
                // When the facts that establish the duration reached nisvakt:
                // the start, and for a disruption already over, its end.
                let mut known_at = incident.start_known_at();
                if reached.is_some() && incident.disruption_ended_at.is_some() {
                    known_at = known_at.max(incident.end_known_at());
                }
                if let Some(Requirement::CareBlocked) = requires {
                    match &care {
                        Some((true, since, who)) => {
                            reason.push(
                                &format!("; care blocked per {who} since {}", t(*since)),
                                &format!("; vården hindrad enligt {who} sedan {}", local(*since)),
                            );
                            known_at = known_at.max(Some(*since));
                        }
                        Some((false, since, who)) => {
                            blocked_ok = false;
                            reason.push(
                                &format!(
                                    "; NOT met: care was not blocked per {who} ({})",
                                    t(*since)
                                ),
                                &format!(
                                    "; INTE uppfyllt: vården var inte hindrad enligt {who} ({})",
                                    local(*since)
                                ),
                            );
                        }
                        None => {
                            blocked_ok = false;
                            reason.push(
                                "; NOT met: unknown whether care measures were blocked (needs an operator's assessment)",
                                "; INTE uppfyllt: okänt om vårdåtgärder hindrades (behöver en bedömning)",
                            );
                        }
                    }
                }
                if let Reach::Pending(at) = reach(incident, *threshold, *comparison, now)
                    && care
                        .as_ref()
                        .is_none_or(|(b, _, _)| *b || requires.is_none())
                {
                    pending.push(PendingThreshold {
                        criterion: c.id.clone(),
                        at,
                    });
                }
                let met_at = reached.filter(|_| blocked_ok);
                (met_at, known_at, reason)
            }
            CriterionKind::Judgement { fact } => judgement(incident, *fact),
        };
        if let Some(met_at) = met_at {
            let at = known_at.map_or(met_at, |k| k.max(met_at));
            identified = Some(identified.map_or(at, |i| i.min(at)));
        }
        criteria.push(CriterionResult {
            id: c.id.clone(),
            met: met_at.is_some(),
            met_at,
            reason: reason.en,
            reason_sv: reason.sv,
            certainty: c.certainty,
        });
    }
    let reportable = identified.is_some();
    let previous = incident
        .assessments
        .iter()
        .find(|a| a.rule_set == rule_set.id)
        .and_then(|a| a.identified_at.filter(|_| a.reportable));
    let identified_at = match (identified, previous) {
        (Some(now_at), Some(before)) => Some(now_at.min(before)),
        (i, _) => i,
    };
    Assessment {
        rule_set: rule_set.id.clone(),
        rule_set_version: rule_set.version.clone(),
        reportable,
        identified_at,
        criteria,
        pending_thresholds: pending,
    }
}

/// A judgement criterion: met only by an operator's confirmation.
fn judgement(
    incident: &Incident,
    fact: JudgedFact,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Reason) {
    let c = &incident.confirmed;
    let confirmed = match fact {
        JudgedFact::PatientHarm => c.patient_harm.as_ref().map(|p| {
            (
                p.value.is_harm(),
                p.value.as_str().to_string(),
                p.since,
                p.by.clone(),
            )
        }),
        JudgedFact::SecurityProtection => c
            .security_protection
            .as_ref()
            .map(|p| (p.value, p.value.to_string(), p.since, p.by.clone())),
        JudgedFact::PersonalDataBreach => c
            .personal_data_breach
            .as_ref()
            .map(|p| (p.value, p.value.to_string(), p.since, p.by.clone())),
        JudgedFact::CareBlocked => c
            .care_blocked
            .as_ref()
            .map(|p| (p.value, p.value.to_string(), p.since, p.by.clone())),
    };
    let name = fact.as_str();
    let name_sv = fact_sv(fact);
    match confirmed {
        Some((true, value, since, by)) => (
            Some(since),
            Some(since),
            Reason::new(
                format!("operator {by} confirmed {name} = {value} at {}", t(since)),
                format!(
                    "{by} bekräftade {name_sv}: {} ({})",
                    value_sv(&value),
                    local(since)
                ),
            ),
        ),
        Some((false, value, since, by)) => (
            None,
            None,
            Reason::new(
                format!("operator {by} assessed {name} = {value} at {}", t(since)),
                format!(
                    "{by} bedömde {name_sv}: {} ({})",
                    value_sv(&value),
                    local(since)
                ),
            ),
        ),
        None => {
            let mut reason = Reason::new(
                format!("no operator has confirmed {name}"),
                format!("ingen har ännu bekräftat {name_sv}"),
            );
            if fact == JudgedFact::PatientHarm && incident.harm_signalled() {
                reason.push(
                    "; a ticket suggests patient harm, which only raises the question: it needs an operator's assessment",
                    "; ett ärende tyder på patientskada, vilket bara väcker frågan: en person måste bedöma den",
                );
            }
            (None, None, reason)
        }
    }
}

/// Whether a duty's trigger holds, and since when (its `confirmed` anchor).
fn trigger_since(
    incident: &Incident,
    duty: &Duty,
    assessment: &Assessment,
) -> Option<DateTime<Utc>> {
    let c = &incident.confirmed;
    match duty.trigger {
        Trigger::Reportable => assessment.identified_at.filter(|_| assessment.reportable),
        Trigger::PersonalDataBreach => c
            .personal_data_breach
            .as_ref()
            .filter(|p| p.value)
            .map(|p| p.since),
        Trigger::PatientHarm => c
            .patient_harm
            .as_ref()
            .filter(|p| p.value.is_harm())
            .map(|p| p.since),
        Trigger::SecurityProtection => c
            .security_protection
            .as_ref()
            .filter(|p| p.value)
            .map(|p| p.since),
    }
}

/// The deadline id for one stage: stable, so timers can replace and cancel.
pub fn deadline_id(incident: &IncidentId, rule_set: &str, duty: &str, stage: &str) -> String {
    format!("{}/{rule_set}/{duty}/{stage}", incident.as_str())
}

/// Derives every deadline of `rule_set` for `incident` given its assessment.
///
/// A triggered duty gives a pending deadline per stage (met once reported);
/// a duty no longer triggered cancels the deadlines it had given. Every due
/// time is exactly the anchor plus the stage's offset in UTC, so a DST change
/// never moves it.
pub fn deadlines(
    incident: &Incident,
    rule_set: &RuleSet,
    assessment: &Assessment,
) -> Vec<Deadline> {
    let mut out = Vec::new();
    for duty in &rule_set.duties {
        let since = trigger_since(incident, duty, assessment);
        let mut due_of: Vec<(String, DateTime<Utc>)> = Vec::new();
        for stage in &duty.stages {
            let id = deadline_id(&incident.id, &rule_set.id, &duty.id, &stage.id);
            let previous = incident.deadlines.iter().find(|d| d.id == id);
            let report = incident.report_of(&rule_set.id, &duty.id, &stage.id);
            let Some(since) = since else {
                if let Some(prev) = previous {
                    let mut d = prev.clone();
                    if let Some(r) = report {
                        d.status = DeadlineStatus::Met;
                        d.met_at = Some(r);
                    } else if d.status == DeadlineStatus::Pending {
                        d.status = DeadlineStatus::Cancelled;
                    }
                    out.push(d);
                }
                continue;
            };
            let report_anchor = |of: &str| match incident.report_of(&rule_set.id, &duty.id, of) {
                Some(r) => Some((r, false)),
                None => due_of
                    .iter()
                    .find(|(s, _)| s == of)
                    .map(|(_, d)| (*d, true)),
            };
            let anchored = match &stage.anchor {
                Anchor::Identified | Anchor::Confirmed => Some((since, false)),
                Anchor::Detected => incident.detected_at.map(|d| (d, false)),
                Anchor::FirstReport => duty.stages.first().and_then(|f| report_anchor(&f.id)),
                Anchor::Report(of) => report_anchor(of),
            };
            let Some((anchor_at, provisional)) = anchored else {
                continue;
            };
            let due_at = anchor_at + stage.due;
            due_of.push((stage.id.clone(), due_at));
            out.push(Deadline {
                id,
                rule_set: rule_set.id.clone(),
                rule_set_version: rule_set.version.clone(),
                duty: duty.id.clone(),
                stage: stage.id.clone(),
                due_at,
                anchor: stage.anchor.name(),
                anchor_at,
                provisional,
                status: if report.is_some() {
                    DeadlineStatus::Met
                } else {
                    DeadlineStatus::Pending
                },
                label_sv: stage.label_sv.clone(),
                label_en: stage.label_en.clone(),
                met_at: report,
                warnings_at: warnings(stage, anchor_at, due_at),
                overdue_every_secs: stage.overdue_every.map(|d| d.num_seconds()),
                channel_sv: stage.channel_sv.clone(),
                channel_en: stage.channel_en.clone(),
                instructions_sv: stage.instructions_sv.clone(),
                instructions_en: stage.instructions_en.clone(),
                recipient_sv: duty.recipient_sv.clone(),
                recipient_en: duty.recipient_en.clone(),
                internal_target: stage.internal_target,
                certainty: stage.certainty,
            });
        }
    }
    out
}

/// Warning instants strictly between the anchor and the deadline, sorted.
fn warnings(stage: &Stage, anchor_at: DateTime<Utc>, due_at: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let span = due_at - anchor_at;
    let mut out: Vec<DateTime<Utc>> = stage
        .warn_before
        .iter()
        .map(|lead| match lead {
            Lead::Percent(p) => due_at - span * i32::try_from(*p).unwrap_or(0) / 100,
            Lead::Before(d) => due_at - *d,
        })
        .filter(|w| *w > anchor_at && *w < due_at)
        .collect();
    out.sort();
    out.dedup();
    out
}
