//! The one border between domain types and wire types: domain values become
//! protobuf here and protobuf becomes domain values here, with errors that
//! name the field. Nothing else converts.

use nisvakt_domain::ticket::{Category, PatientHarm, Ticket, TicketStatus};
use nisvakt_proto::v1 as pb;

use crate::clock::{from_timestamp, to_timestamp};

/// A wire value that cannot become a domain value.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Error {
    /// The protobuf field.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn missing(field: &'static str) -> Error {
    Error {
        field,
        problem: "missing".into(),
    }
}

/// Domain category → wire.
pub fn category_to_pb(c: Option<Category>) -> pb::Category {
    match c {
        None => pb::Category::Unspecified,
        Some(Category::RecordSystem) => pb::Category::RecordSystem,
        Some(Category::PlanningSystem) => pb::Category::PlanningSystem,
        Some(Category::BusinessSystem) => pb::Category::BusinessSystem,
        Some(Category::Email) => pb::Category::Email,
        Some(Category::Telephony) => pb::Category::Telephony,
        Some(Category::Network) => pb::Category::Network,
        Some(Category::Login) => pb::Category::Login,
        Some(Category::Other) => pb::Category::Other,
    }
}

/// Wire category → domain (`None` for unspecified).
pub fn category_from_pb(c: pb::Category) -> Option<Category> {
    match c {
        pb::Category::Unspecified => None,
        pb::Category::RecordSystem => Some(Category::RecordSystem),
        pb::Category::PlanningSystem => Some(Category::PlanningSystem),
        pb::Category::BusinessSystem => Some(Category::BusinessSystem),
        pb::Category::Email => Some(Category::Email),
        pb::Category::Telephony => Some(Category::Telephony),
        pb::Category::Network => Some(Category::Network),
        pb::Category::Login => Some(Category::Login),
        pb::Category::Other => Some(Category::Other),
    }
}

/// Domain patient harm → wire.
pub fn harm_to_pb(h: Option<PatientHarm>) -> pb::PatientHarm {
    match h {
        None => pb::PatientHarm::Unspecified,
        Some(PatientHarm::None) => pb::PatientHarm::None,
        Some(PatientHarm::Risk) => pb::PatientHarm::Risk,
        Some(PatientHarm::Occurred) => pb::PatientHarm::Occurred,
        Some(PatientHarm::Unknown) => pb::PatientHarm::Unknown,
    }
}

/// Wire patient harm → domain (`None` for unspecified).
pub fn harm_from_pb(h: pb::PatientHarm) -> Option<PatientHarm> {
    match h {
        pb::PatientHarm::Unspecified => None,
        pb::PatientHarm::None => Some(PatientHarm::None),
        pb::PatientHarm::Risk => Some(PatientHarm::Risk),
        pb::PatientHarm::Occurred => Some(PatientHarm::Occurred),
        pb::PatientHarm::Unknown => Some(PatientHarm::Unknown),
    }
}

/// A masked domain ticket → wire.
pub fn ticket_to_pb(t: &Ticket) -> pb::Ticket {
    pb::Ticket {
        source: t.source.clone(),
        ticket_id: t.ticket_id.clone(),
        revision: t.revision,
        subject: t.subject.clone(),
        description: t.description.clone().unwrap_or_default(),
        reported_at: Some(to_timestamp(t.reported_at)),
        unit: t.unit.clone().unwrap_or_default(),
        reporter_ref: t.reporter_ref.clone().unwrap_or_default(),
        system: t.system.clone().unwrap_or_default(),
        category: category_to_pb(t.category) as i32,
        disruption_started_at: Some(to_timestamp(t.disruption_started_at)),
        disruption_ended_at: t.disruption_ended_at.map(to_timestamp),
        care_blocked: t.care_blocked,
        patient_harm: harm_to_pb(t.patient_harm) as i32,
        status: match t.status {
            TicketStatus::Open => pb::TicketStatus::Open,
            TicketStatus::Resolved => pb::TicketStatus::Resolved,
        } as i32,
        identifiers_masked: t.identifiers_masked,
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Wire ticket → domain (it was validated and masked at intake).
pub fn ticket_from_pb(t: &pb::Ticket) -> Result<Ticket, Error> {
    let time = |field, v: &Option<prost_types::Timestamp>| {
        v.as_ref()
            .and_then(from_timestamp)
            .ok_or_else(|| missing(field))
    };
    let reported_at = time("reported_at", &t.reported_at)?;
    Ok(Ticket {
        source: t.source.clone(),
        ticket_id: t.ticket_id.clone(),
        revision: t.revision,
        subject: t.subject.clone(),
        description: non_empty(&t.description),
        reported_at,
        unit: non_empty(&t.unit),
        reporter_ref: non_empty(&t.reporter_ref),
        system: non_empty(&t.system),
        category: category_from_pb(t.category()),
        disruption_started_at: t
            .disruption_started_at
            .as_ref()
            .and_then(from_timestamp)
            .unwrap_or(reported_at),
        disruption_ended_at: t.disruption_ended_at.as_ref().and_then(from_timestamp),
        care_blocked: t.care_blocked,
        patient_harm: harm_from_pb(t.patient_harm()),
        status: match t.status() {
            pb::TicketStatus::Resolved => TicketStatus::Resolved,
            _ => TicketStatus::Open,
        },
        identifiers_masked: t.identifiers_masked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nisvakt_domain::ticket::TicketInput;

    #[test]
    fn a_ticket_survives_the_wire() {
        let input = TicketInput {
            source: Some("intraservice".into()),
            ticket_id: Some("T-1".into()),
            subject: Some("Journalen nere".into()),
            reported_at: Some("2026-03-01T08:00:00Z".into()),
            category: Some("record_system".into()),
            care_blocked: Some(true),
            disruption_ended_at: Some("2026-03-01T09:00:00Z".into()),
            ..Default::default()
        };
        let t = nisvakt_domain::ticket::validate(input)
            .unwrap()
            .into_masked();
        assert_eq!(ticket_from_pb(&ticket_to_pb(&t)).unwrap(), t);
    }
}

mod incident {
    use nisvakt_domain::assess::{Assessment, Deadline, DeadlineStatus};
    use nisvakt_domain::incident::{Incident, IncidentStatus};
    use nisvakt_proto::v1 as pb;

    use super::{category_to_pb, harm_to_pb};

    /// How many ticket references an event carries (the stored projection
    /// keeps them all): a storm must not make every event huge.
    pub const EVENT_TICKETS: usize = 50;
    use crate::clock::to_timestamp;

    fn assessment(a: &Assessment, incident: &Incident) -> pb::Assessment {
        pb::Assessment {
            rule_set: a.rule_set.clone(),
            rule_set_version: a.rule_set_version.clone(),
            reportable: a.reportable,
            identified_at: a.identified_at.map(to_timestamp),
            criteria: a
                .criteria
                .iter()
                .map(|c| pb::CriterionResult {
                    id: c.id.clone(),
                    met: c.met,
                    met_at: c.met_at.map(to_timestamp),
                    reason: c.reason.clone(),
                    reason_sv: c.reason_sv.clone(),
                })
                .collect(),
            pending_thresholds: a
                .pending_thresholds
                .iter()
                .map(|p| pb::PendingThreshold {
                    criterion: p.criterion.clone(),
                    at: Some(to_timestamp(p.at)),
                    timer_id: crate::subjects::token(&format!(
                        "thr-{}-{}-{}",
                        incident.id, a.rule_set, p.criterion
                    )),
                })
                .collect(),
            assessed_at: Some(to_timestamp(incident.updated_at)),
        }
    }

    fn deadline(d: &Deadline) -> pb::Deadline {
        pb::Deadline {
            id: d.id.clone(),
            rule_set: d.rule_set.clone(),
            duty: d.duty.clone(),
            stage: d.stage.clone(),
            label_sv: d.label_sv.clone(),
            label_en: d.label_en.clone(),
            due_at: Some(to_timestamp(d.due_at)),
            anchor: d.anchor.clone(),
            anchor_at: Some(to_timestamp(d.anchor_at)),
            status: match d.status {
                DeadlineStatus::Pending => pb::DeadlineStatus::Pending,
                DeadlineStatus::Met => pb::DeadlineStatus::Met,
                DeadlineStatus::Cancelled => pb::DeadlineStatus::Cancelled,
            } as i32,
            met_at: d.met_at.map(to_timestamp),
            warnings_at: d.warnings_at.iter().map(|w| to_timestamp(*w)).collect(),
            overdue_every: d.overdue_every_secs.map(|s| prost_types::Duration {
                seconds: s,
                nanos: 0,
            }),
            channel_sv: d.channel_sv.clone(),
            channel_en: d.channel_en.clone(),
            instructions_sv: d.instructions_sv.clone(),
            instructions_en: d.instructions_en.clone(),
            certainty: d.certainty.as_str().to_string(),
        }
    }

    /// The incident projection → wire.
    pub fn incident_to_pb(i: &Incident) -> pb::Incident {
        pb::Incident {
            id: i.id.to_string(),
            status: match i.status {
                IncidentStatus::Open => pb::IncidentStatus::Open,
                IncidentStatus::Resolved => pb::IncidentStatus::Resolved,
            } as i32,
            system: i.system.clone().unwrap_or_default(),
            category: category_to_pb(i.category) as i32,
            units: i.units.clone(),
            ticket_count: i.ticket_count,
            disruption_started_at: i.disruption_started_at.map(to_timestamp),
            disruption_ended_at: i.disruption_ended_at.map(to_timestamp),
            flags: Some(pb::IncidentFlags {
                suspected_nis: i.flags.suspected_nis,
                personal_identifiers: i.flags.personal_identifiers,
                needs_assessment: i.flags.needs_assessment,
            }),
            assessments: i.assessments.iter().map(|a| assessment(a, i)).collect(),
            deadlines: i.deadlines.iter().map(deadline).collect(),
            timeline: i
                .timeline
                .iter()
                .map(|t| pb::TimelineEntry {
                    at: Some(to_timestamp(t.at)),
                    kind: t.kind.clone(),
                    text: t.text.clone(),
                })
                .collect(),
            tickets: i
                .tickets
                .iter()
                .take(EVENT_TICKETS)
                .map(|t| pb::TicketRef {
                    source: t.source.clone(),
                    ticket_id: t.ticket_id.clone(),
                    revision: t.revision,
                    subject: t.subject.clone(),
                })
                .collect(),
            revision: i.revision,
            opened_at: Some(to_timestamp(i.opened_at)),
            updated_at: Some(to_timestamp(i.updated_at)),
            resolved_at: i.resolved_at.map(to_timestamp),
            assessed_by: [
                i.confirmed.care_blocked.as_ref().map(|c| c.by.clone()),
                i.confirmed.patient_harm.as_ref().map(|c| c.by.clone()),
                i.confirmed
                    .personal_data_breach
                    .as_ref()
                    .map(|c| c.by.clone()),
                i.confirmed
                    .security_protection
                    .as_ref()
                    .map(|c| c.by.clone()),
            ]
            .into_iter()
            .flatten()
            .collect(),
            care_blocked: i.care_blocked().map(|(b, _, _)| b),
            patient_harm: harm_to_pb(i.confirmed.patient_harm.as_ref().map(|c| c.value)) as i32,
        }
    }
}

pub use incident::incident_to_pb;

/// A stored projection (JSON, as the classifier keeps it in KV) → wire.
pub fn incident_json_to_pb(v: &serde_json::Value) -> Result<pb::Incident, Error> {
    let i: nisvakt_domain::incident::Incident =
        serde_json::from_value(v.clone()).map_err(|e| Error {
            field: "incident",
            problem: e.to_string(),
        })?;
    Ok(incident_to_pb(&i))
}
