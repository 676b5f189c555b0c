//! Correlation: which incident a new ticket belongs to.
//!
//! Tickets about the same disruption — the same system, or the same category
//! when no system is named, overlapping in time within a window — become one
//! incident, so a storm of hundreds of tickets is one incident that counts
//! its tickets and units. Pure: the caller looks up candidate incidents and
//! makes new ids. An update of a known ticket goes to its incident via
//! [`crate::incident::Incident::has_ticket`], before correlation is asked.

use crate::incident::Incident;
use crate::text::{Lexicon, normalise};
use crate::ticket::{Category, Ticket};
use chrono::{DateTime, Duration, Utc};

/// Correlation cannot fail; the enum keeps the one-`Error`-per-module
/// convention and is never constructed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {}

/// Normalises a system name so "Journalsystemet", " journalsystemet " and
/// "JOURNALSYSTEMET" compare equal.
pub fn normalise_system(system: &str) -> String {
    normalise(system.trim())
}

/// The ticket's category: as given, else inferred from its text, else `other`.
pub fn effective_category(ticket: &Ticket, lexicon: &Lexicon) -> Category {
    ticket
        .category
        .or_else(|| {
            let text = [
                Some(ticket.subject.as_str()),
                ticket.system.as_deref(),
                ticket.description.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" \n ");
            lexicon.infer_category(&text)
        })
        .unwrap_or(Category::Other)
}

/// A key grouping tickets about the same thing: the normalised system name
/// when one is given, else `category:<category>`. Useful for indexing open
/// incidents.
pub fn correlation_key(ticket: &Ticket, lexicon: &Lexicon) -> String {
    match ticket.system.as_deref().map(normalise_system) {
        Some(s) if !s.is_empty() => s,
        _ => format!("category:{}", effective_category(ticket, lexicon)),
    }
}

/// Whether `ticket` is about the same disruption as `incident`.
///
/// Same system when both name one, else the same category; and the
/// disruptions overlap in time allowing `window` of slack on either side. An
/// incident whose disruption ended more than `window` before the ticket's
/// started does not correlate (a new outage is a new incident).
pub fn correlates(
    incident: &Incident,
    ticket: &Ticket,
    lexicon: &Lexicon,
    window: Duration,
) -> bool {
    if incident.has_ticket(&ticket.key()) {
        return true;
    }
    let same_subject = match (&incident.system, &ticket.system) {
        (Some(a), Some(b)) => normalise_system(a) == normalise_system(b),
        _ => incident.category.unwrap_or(Category::Other) == effective_category(ticket, lexicon),
    };
    if !same_subject {
        return false;
    }
    let Some(inc_start) = incident.disruption_started_at else {
        return false;
    };
    overlaps(
        (inc_start, incident.disruption_ended_at),
        (ticket.disruption_started_at, ticket.disruption_ended_at),
        window,
    )
}

/// Whether two intervals (an open end = still going on) overlap, with
/// `window` of slack.
fn overlaps(
    a: (DateTime<Utc>, Option<DateTime<Utc>>),
    b: (DateTime<Utc>, Option<DateTime<Utc>>),
    window: Duration,
) -> bool {
    let a_before_b_ends = b.1.is_none_or(|b_end| a.0 <= b_end + window);
    let b_before_a_ends = a.1.is_none_or(|a_end| b.0 <= a_end + window);
    a_before_b_ends && b_before_a_ends
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Fact, IncidentId};
    use crate::rules;
    use crate::ticket::TicketStatus;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 0).unwrap()
    }

    fn ticket(id: &str, system: Option<&str>, subject: &str, start_min: i64) -> Ticket {
        let start = t0() + Duration::minutes(start_min);
        Ticket {
            source: "intraservice".into(),
            ticket_id: id.into(),
            revision: 1,
            subject: subject.into(),
            description: None,
            reported_at: start,
            unit: Some(format!("Enhet {}", start_min % 7)),
            reporter_ref: None,
            system: system.map(Into::into),
            category: None,
            disruption_started_at: start,
            disruption_ended_at: None,
            care_blocked: None,
            patient_harm: None,
            status: TicketStatus::Open,
            identifiers_masked: 0,
        }
    }

    fn incident_with(t: &Ticket) -> Incident {
        let mut inc = Incident::open(IncidentId::parse("inc_c").unwrap(), t0());
        inc.apply(
            &Fact::Ticket {
                receipt_id: "r".into(),
                ticket: t.clone(),
                accepted_at: t.reported_at,
            },
            &rules::builtin(),
            &Lexicon::default_sv(),
            t.reported_at,
        );
        inc
    }

    #[test]
    fn system_names_are_compared_normalised() {
        let lex = Lexicon::default_sv();
        let inc = incident_with(&ticket("1", Some("Journalsystemet"), "nere", 0));
        let w = Duration::hours(2);
        assert!(correlates(
            &inc,
            &ticket("2", Some("  JOURNALSYSTEMET "), "nere", 10),
            &lex,
            w
        ));
        assert!(!correlates(
            &inc,
            &ticket("3", Some("Outlook"), "nere", 10),
            &lex,
            w
        ));
        assert_eq!(
            correlation_key(&ticket("2", Some(" Journal\u{2010}system "), "x", 0), &lex),
            "journal-system"
        );
    }

    #[test]
    fn without_a_system_the_inferred_category_decides() {
        let lex = Lexicon::default_sv();
        let inc = incident_with(&ticket("1", None, "Växeln svarar inte", 0));
        let w = Duration::hours(2);
        assert!(correlates(
            &inc,
            &ticket("2", None, "Kan inte ringa ut från mobilen", 5),
            &lex,
            w
        ));
        assert!(!correlates(
            &inc,
            &ticket("3", None, "Outlook startar inte", 5),
            &lex,
            w
        ));
        assert_eq!(
            correlation_key(&ticket("2", None, "Outlook", 0), &lex),
            "category:email"
        );
        assert_eq!(
            correlation_key(&ticket("2", None, "Skrivaren", 0), &lex),
            "category:other"
        );
    }

    #[test]
    fn an_incident_that_ended_longer_ago_than_the_window_does_not_correlate() {
        let lex = Lexicon::default_sv();
        let mut first = ticket("1", Some("Journalsystemet"), "nere", 0);
        first.disruption_ended_at = Some(t0() + Duration::minutes(60));
        first.status = TicketStatus::Resolved;
        let inc = incident_with(&first);
        let w = Duration::minutes(30);
        assert!(correlates(
            &inc,
            &ticket("2", Some("Journalsystemet"), "nere igen", 85),
            &lex,
            w
        ));
        assert!(!correlates(
            &inc,
            &ticket("3", Some("Journalsystemet"), "nere igen", 95),
            &lex,
            w
        ));
        assert!(
            correlates(
                &inc,
                &ticket("1", Some("Annat"), "uppdatering", 500),
                &lex,
                w
            ),
            "an update of a known ticket always belongs to its incident"
        );
    }

    #[test]
    fn a_storm_of_tickets_about_one_outage_becomes_one_incident() {
        let lex = Lexicon::default_sv();
        let rules = rules::builtin();
        let w = Duration::hours(1);
        let mut incidents: Vec<Incident> = Vec::new();
        let mut tickets: Vec<Ticket> = (0..400)
            .map(|i| {
                ticket(
                    &format!("J{i}"),
                    Some("Journalsystemet"),
                    "Journalen nere",
                    i % 90,
                )
            })
            .collect();
        tickets.extend((0..50).map(|i| ticket(&format!("E{i}"), None, "Outlook fungerar inte", i)));
        for (n, t) in tickets.iter().enumerate() {
            let idx = match incidents.iter().position(|inc| correlates(inc, t, &lex, w)) {
                Some(i) => i,
                None => {
                    incidents.push(Incident::open(
                        IncidentId::parse(format!("inc_{n}")).unwrap(),
                        t.reported_at,
                    ));
                    incidents.len() - 1
                }
            };
            incidents[idx].apply(
                &Fact::Ticket {
                    receipt_id: format!("r{n}"),
                    ticket: t.clone(),
                    accepted_at: t.reported_at,
                },
                &rules,
                &lex,
                t.reported_at,
            );
        }
        assert_eq!(incidents.len(), 2);
        assert_eq!(incidents[0].ticket_count, 400);
        assert_eq!(incidents[0].units.len(), 7);
        assert_eq!(incidents[1].ticket_count, 50);
        assert_eq!(incidents[1].category, Some(Category::Email));
    }
}
