//! The stored projection of a storm must fit in one NATS message (the
//! broker's default `max_payload` is 1 MiB): a KV write of a larger
//! document fails, and the ticket that made it so could never be folded.
//! This folds a 1,000-ticket storm exactly as the service does (apply, then
//! compact the timeline) and measures the document it would write.

use chrono::{DateTime, Duration, TimeZone, Utc};
use nisvakt_classifier::service::{SUMMARY_KIND, Stored, TIMELINE_TICKET_LINES, compact_timeline};
use nisvakt_domain::incident::{Fact, Incident, IncidentId};
use nisvakt_domain::text::Lexicon;
use nisvakt_domain::ticket::{TicketInput, validate};
use prost::Message;

const MAX_PAYLOAD: usize = 1024 * 1024;

fn storm_ticket(i: i64, t0: DateTime<Utc>) -> Fact {
    let at = t0 + Duration::seconds(i * 3);
    let ticket = validate(TicketInput {
        source: Some("intraservice".into()),
        ticket_id: Some(format!("INC-2026-{:07}", 100_000 + i)),
        revision: Some(1),
        // Realistic lengths: a subject of about 90 characters, a long unit name.
        subject: Some(format!(
            "Eventuell NIS-incident: journalsystemet går inte att nå från enheten, ärende {i}"
        )),
        description: Some(
            "Ingen på enheten kommer åt journalen sedan i morse; vi kan inte dokumentera \
             eller se läkemedelslistor."
                .into(),
        ),
        reported_at: Some(at.to_rfc3339()),
        unit: Some(format!("Hemsjukvården sydväst, område {:02}", i % 20)),
        system: Some("Journalsystemet".into()),
        disruption_started_at: Some(t0.to_rfc3339()),
        care_blocked: Some(true),
        status: Some("open".into()),
        ..Default::default()
    })
    .expect("a valid ticket")
    .into_masked();
    Fact::Ticket {
        receipt_id: format!("rcp_01JNQ{:021}", i),
        ticket,
        accepted_at: at,
    }
}

#[test]
fn a_storm_of_a_thousand_tickets_fits_in_one_nats_message() {
    let rules =
        nisvakt_domain::rules::load_spec(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"))
            .expect("the shipped rule sets load");
    let lexicon = Lexicon::default_sv();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 7, 0, 0).unwrap();
    let id = IncidentId::parse("inc_01JNQ0000000000000000000").unwrap();
    let mut stored = Stored {
        incident: Incident::open(id, t0),
        last_event: None,
        timeline_compacted: None,
    };
    for i in 0..1000 {
        let fact = storm_ticket(i, t0);
        let now = t0 + Duration::seconds(i * 3);
        stored.incident.apply(&fact, &rules, &lexicon, now);
        compact_timeline(&mut stored);
    }
    let inc = &stored.incident;
    assert_eq!(inc.ticket_count, 1000);
    assert_eq!(inc.units.len(), 20);

    let json = serde_json::to_vec(&stored).unwrap().len();
    let event = nisvakt_bus::convert::incident_to_pb(inc)
        .encode_to_vec()
        .len();
    let part = |v: serde_json::Result<Vec<u8>>| v.map(|b| b.len()).unwrap_or(0);
    println!(
        "1000-ticket storm: stored JSON {json} bytes ({:.0} % of 1 MiB): tickets {}, timeline {} \
         ({} lines), applied {}; protobuf snapshot in each event {event} bytes",
        json as f64 * 100.0 / MAX_PAYLOAD as f64,
        part(serde_json::to_vec(&inc.tickets)),
        part(serde_json::to_vec(&inc.timeline)),
        inc.timeline.len(),
        part(serde_json::to_vec(&inc.applied)),
    );
    assert!(json < MAX_PAYLOAD, "stored projection is {json} bytes");
    assert!(event < MAX_PAYLOAD, "event snapshot is {event} bytes");

    // The timeline keeps how the storm began, one summary, and every
    // assessment line.
    let ticket_lines = inc
        .timeline
        .iter()
        .filter(|e| e.kind == "ticket" || e.kind == "ticket_updated")
        .count();
    assert_eq!(ticket_lines, TIMELINE_TICKET_LINES);
    let summaries: Vec<_> = inc
        .timeline
        .iter()
        .filter(|e| e.kind == SUMMARY_KIND)
        .collect();
    assert_eq!(summaries.len(), 1);
    assert!(
        summaries[0].text.starts_with("975 further ticket lines"),
        "{}",
        summaries[0].text
    );
    assert_eq!(stored.timeline_compacted.map(|c| c.lines), Some(975));
}

#[test]
fn compacting_twice_changes_nothing() {
    let rules = nisvakt_domain::rules::builtin();
    let lexicon = Lexicon::default_sv();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 7, 0, 0).unwrap();
    let mut stored = Stored {
        incident: Incident::open(IncidentId::parse("inc_x").unwrap(), t0),
        last_event: None,
        timeline_compacted: None,
    };
    for i in 0..40 {
        stored.incident.apply(
            &storm_ticket(i, t0),
            &rules,
            &lexicon,
            t0 + Duration::seconds(i * 3),
        );
    }
    compact_timeline(&mut stored);
    let once = serde_json::to_value(&stored).unwrap();
    compact_timeline(&mut stored);
    assert_eq!(serde_json::to_value(&stored).unwrap(), once);
    assert_eq!(stored.timeline_compacted.map(|c| c.lines), Some(15));
}
