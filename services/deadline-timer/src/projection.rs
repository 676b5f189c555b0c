//! Reads the classifier's incident projections (JSON documents in the
//! `nis_incidents` bucket) into the protobuf `Incident`, taking only what
//! the timer needs: deadlines and pending thresholds.
//!
//! Lenient on purpose: the classifier owns this JSON and may add fields or
//! spell timestamps as RFC 3339 text, unix seconds or `{seconds, nanos}`;
//! every field has a default. Strict where a wrong guess would cancel or
//! move a clock: an unreadable instant or status is an error naming the
//! field, and the reconciler then leaves that incident alone. Pure: no I/O.

use chrono::{DateTime, Utc};
use nisvakt_bus::clock::to_timestamp;
use nisvakt_proto::v1::{
    Assessment, Deadline, DeadlineStatus, Incident, IncidentStatus, PendingThreshold,
};
use serde::Deserialize;

/// Why a projection could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not JSON, or not an object of the expected shape.
    #[error("incident projection is not readable JSON: {0}")]
    Json(String),
    /// A field the timer relies on has a value it cannot understand.
    #[error("incident projection field {field}: {reason}")]
    Field {
        /// Where, e.g. `deadlines[2].due_at`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// An instant as the classifier may write it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Instant {
    Text(String),
    Seconds(i64),
    Proto {
        seconds: i64,
        #[serde(default)]
        nanos: u32,
    },
}

/// A duration as the classifier may write it: seconds, `"1h"`, or `{seconds}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Span {
    Seconds(i64),
    Text(String),
    Proto { seconds: i64 },
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Doc {
    id: String,
    revision: u64,
    status: String,
    disruption_ended_at: Option<Instant>,
    updated_at: Option<Instant>,
    deadlines: Vec<DocDeadline>,
    assessments: Vec<DocAssessment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocDeadline {
    id: String,
    rule_set: String,
    duty: String,
    stage: String,
    due_at: Option<Instant>,
    status: String,
    met_at: Option<Instant>,
    warnings_at: Vec<Instant>,
    overdue_every_secs: Option<i64>,
    overdue_every: Option<Span>,
    label_sv: String,
    label_en: String,
    anchor: String,
    channel_sv: String,
    channel_en: String,
    instructions_sv: String,
    instructions_en: String,
    certainty: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocAssessment {
    rule_set: String,
    pending_thresholds: Vec<DocThreshold>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocThreshold {
    criterion: String,
    at: Option<Instant>,
    timer_id: String,
}

fn instant(field: &str, v: &Instant) -> Result<DateTime<Utc>, Error> {
    let bad = |reason: String| Error::Field {
        field: field.to_string(),
        reason,
    };
    match v {
        Instant::Text(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad(format!("{s:?} is not RFC 3339: {e}"))),
        Instant::Seconds(s) => {
            DateTime::from_timestamp(*s, 0).ok_or_else(|| bad(format!("{s} is out of range")))
        }
        Instant::Proto { seconds, nanos } => DateTime::from_timestamp(*seconds, *nanos)
            .ok_or_else(|| bad(format!("{seconds}.{nanos} is out of range"))),
    }
}

fn span_seconds(field: &str, v: &Span) -> Result<i64, Error> {
    match v {
        Span::Seconds(s) | Span::Proto { seconds: s } => Ok(*s),
        Span::Text(t) => nisvakt_domain::time::parse_duration(t)
            .map(|d| d.num_seconds())
            .map_err(|e| Error::Field {
                field: field.to_string(),
                reason: e.to_string(),
            }),
    }
}

/// `pending` (also when absent: a clock nobody can rule out stays
/// watched), `met` or `cancelled`, in any case, with or without the
/// protobuf prefix.
fn deadline_status(field: &str, s: &str) -> Result<DeadlineStatus, Error> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_prefix("deadline_status_").unwrap_or(&t);
    match t {
        "" | "pending" => Ok(DeadlineStatus::Pending),
        "met" => Ok(DeadlineStatus::Met),
        "cancelled" | "canceled" => Ok(DeadlineStatus::Cancelled),
        other => Err(Error::Field {
            field: field.to_string(),
            reason: format!("unknown status {other:?}"),
        }),
    }
}

/// Parses one projection document.
pub fn parse(json: &[u8]) -> Result<Incident, Error> {
    let doc: Doc = serde_json::from_slice(json).map_err(|e| Error::Json(e.to_string()))?;
    if doc.id.is_empty() {
        return Err(Error::Field {
            field: "id".into(),
            reason: "missing".into(),
        });
    }
    let status = match doc
        .status
        .trim()
        .to_ascii_lowercase()
        .trim_start_matches("incident_status_")
    {
        "resolved" => IncidentStatus::Resolved,
        _ => IncidentStatus::Open,
    };
    let disruption_ended_at = doc
        .disruption_ended_at
        .as_ref()
        .map(|v| instant("disruption_ended_at", v))
        .transpose()?;
    let mut deadlines = Vec::new();
    for (i, d) in doc.deadlines.iter().enumerate() {
        let f = |name: &str| format!("deadlines[{i}].{name}");
        let status = deadline_status(&f("status"), &d.status)?;
        let due_at = match &d.due_at {
            Some(v) => instant(&f("due_at"), v)?,
            None => {
                return Err(Error::Field {
                    field: f("due_at"),
                    reason: "missing".into(),
                });
            }
        };
        let warnings_at = d
            .warnings_at
            .iter()
            .enumerate()
            .map(|(j, w)| instant(&f(&format!("warnings_at[{j}]")), w).map(to_timestamp))
            .collect::<Result<Vec<_>, _>>()?;
        let every = match (&d.overdue_every_secs, &d.overdue_every) {
            (Some(s), _) => *s,
            (None, Some(span)) => span_seconds(&f("overdue_every"), span)?,
            (None, None) => 0,
        };
        deadlines.push(Deadline {
            id: d.id.clone(),
            rule_set: d.rule_set.clone(),
            duty: d.duty.clone(),
            stage: d.stage.clone(),
            label_sv: d.label_sv.clone(),
            label_en: d.label_en.clone(),
            due_at: Some(to_timestamp(due_at)),
            anchor: d.anchor.clone(),
            status: status as i32,
            met_at: d
                .met_at
                .as_ref()
                .map(|v| instant(&f("met_at"), v).map(to_timestamp))
                .transpose()?,
            warnings_at,
            overdue_every: (every > 0).then_some(prost_types::Duration {
                seconds: every,
                nanos: 0,
            }),
            channel_sv: d.channel_sv.clone(),
            channel_en: d.channel_en.clone(),
            instructions_sv: d.instructions_sv.clone(),
            instructions_en: d.instructions_en.clone(),
            certainty: d.certainty.clone(),
            ..Default::default()
        });
    }
    let mut assessments = Vec::new();
    for (i, a) in doc.assessments.iter().enumerate() {
        let mut pending = Vec::new();
        for (j, t) in a.pending_thresholds.iter().enumerate() {
            let field = format!("assessments[{i}].pending_thresholds[{j}].at");
            let at = match &t.at {
                Some(v) => instant(&field, v)?,
                None => {
                    return Err(Error::Field {
                        field,
                        reason: "missing".into(),
                    });
                }
            };
            pending.push(PendingThreshold {
                criterion: t.criterion.clone(),
                at: Some(to_timestamp(at)),
                timer_id: t.timer_id.clone(),
            });
        }
        assessments.push(Assessment {
            rule_set: a.rule_set.clone(),
            pending_thresholds: pending,
            ..Default::default()
        });
    }
    // Unreadable here is not worth refusing the incident for: it only
    // tells the reconciler how fresh the projection is.
    let updated_at = doc
        .updated_at
        .as_ref()
        .and_then(|v| instant("updated_at", v).ok());
    Ok(Incident {
        id: doc.id,
        revision: doc.revision,
        status: status as i32,
        disruption_ended_at: disruption_ended_at.map(to_timestamp),
        updated_at: updated_at.map(to_timestamp),
        deadlines,
        assessments,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan;

    #[test]
    fn a_projection_with_extra_fields_and_mixed_time_formats_is_read() {
        let json = br#"{
            "id": "inc_1", "revision": 7, "status": "open", "unknown": [1, 2],
            "deadlines": [
              {"id": "inc_1.seed-routine.nis.1", "rule_set": "seed-routine", "duty": "nis",
               "stage": "1", "label_sv": "Skede 1", "status": "pending",
               "due_at": "2026-03-29T06:30:00Z",
               "warnings_at": [1774756800, {"seconds": 1774762200, "nanos": 0}],
               "overdue_every_secs": 3600},
              {"id": "inc_1.seed-routine.nis.2", "status": "met",
               "due_at": "2026-03-30T00:30:00+01:00", "met_at": "2026-03-29T10:00:00Z"}
            ],
            "assessments": [{"rule_set": "seed-routine",
              "pending_thresholds": [{"criterion": "system_disrupted_6h", "at": "2026-03-29T05:00:00Z"}]}]
        }"#;
        let inc = parse(json).unwrap();
        assert_eq!(inc.revision, 7);
        assert_eq!(inc.deadlines.len(), 2);
        assert_eq!(inc.deadlines[0].warnings_at.len(), 2);
        assert_eq!(
            inc.deadlines[0].overdue_every.map(|d| d.seconds),
            Some(3600)
        );
        assert_eq!(inc.deadlines[1].status(), DeadlineStatus::Met);
        let ids: Vec<String> = plan::timers_for(&inc).into_iter().map(|t| t.id).collect();
        assert_eq!(
            ids,
            [
                "thr-inc_1-seed-routine-system_disrupted_6h",
                "dl-inc_1_seed-routine_nis_1"
            ]
        );
    }

    #[test]
    fn an_unreadable_instant_is_an_error_naming_the_field() {
        let json = br#"{"id": "inc_1", "deadlines": [{"id": "d", "due_at": "tomorrow"}]}"#;
        match parse(json) {
            Err(Error::Field { field, .. }) => assert_eq!(field, "deadlines[0].due_at"),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_deadline_status_is_an_error_not_a_guess() {
        let json =
            br#"{"id": "inc_1", "deadlines": [{"id": "d", "status": "maybe", "due_at": 0}]}"#;
        assert!(matches!(parse(json), Err(Error::Field { .. })));
    }

    #[test]
    fn a_projection_without_id_is_rejected() {
        assert!(matches!(parse(b"{}"), Err(Error::Field { .. })));
        assert!(matches!(parse(b"[1]"), Err(Error::Json(_))));
    }
}
