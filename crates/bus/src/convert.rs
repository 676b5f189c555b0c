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
        let t = nisvakt_domain::ticket::validate(input).unwrap().into_masked();
        assert_eq!(ticket_from_pb(&ticket_to_pb(&t)).unwrap(), t);
    }
}
