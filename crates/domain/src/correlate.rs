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
