//! Deadlines are UTC instants: a six-hour deadline across the spring
//! (2026-03-29) and autumn (2026-10-25) changes in Europe/Stockholm is
//! exactly six hours of real time, though the wall clock moves seven or
//! five; the Swedish local text shows the right time and zone.
//!
//! Build the binary first: `cargo build -p nisvakt-deadline-timer --bins`.

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::*;
use nisvakt_bus::clock::{from_timestamp, to_timestamp};
use nisvakt_domain::time::local;
use nisvakt_proto::v1::{Deadline, DeadlineScheduled, DeadlineStatus, Incident, IncidentStatus};
use prost::Message as _;

fn incident(id: &str, identified: chrono::DateTime<Utc>) -> Incident {
    let due = identified + chrono::Duration::hours(6);
    Incident {
        id: id.into(),
        revision: 1,
        status: IncidentStatus::Open as i32,
        deadlines: vec![Deadline {
            id: format!("{id}.seed-routine.nis.1"),
            rule_set: "seed-routine".into(),
            duty: "nis".into(),
            stage: "1".into(),
            label_sv: "Skede 1".into(),
            anchor: "identified".into(),
            anchor_at: Some(to_timestamp(identified)),
            due_at: Some(to_timestamp(due)),
            status: DeadlineStatus::Pending as i32,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_deadline_across_either_dst_change_is_six_hours_of_real_time() -> anyhow::Result<()> {
    let bus = bus().await?;
    let (_svc, admin) = service(&bus, &[])?;
    wait_admin(admin).await?;
    // 00:30 UTC is 01:30 CET before the spring change and 02:30 CEST
    // before the autumn one; both changes happen at 01:00 UTC.
    let cases = [
        (
            "inc_spring",
            Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap(),
            "2026-03-29 01:30 (CET)",
            "2026-03-29 08:30 (CEST)",
        ),
        (
            "inc_autumn",
            Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap(),
            "2026-10-25 02:30 (CEST)",
            "2026-10-25 07:30 (CET)",
        ),
    ];
    for (id, identified, _, _) in &cases {
        publish_incident(&bus, incident(id, *identified)).await?;
    }
    let now = Utc::now();
    let events = wait_for_events(&bus.js, Duration::from_secs(20), "both scheduled", |e| {
        count_kind(e, "scheduled") == 2
            // Past moments fire at once (late); wait for those too.
            && cases.iter().filter(|c| c.1 + chrono::Duration::hours(6) < now).count()
                <= count_kind(e, "due")
    })
    .await?;
    let stream = bus.js.get_stream(nisvakt_bus::topology::TIMERS).await?;
    for (id, identified, local_start, local_due) in cases {
        let timer_id = format!("dl-{id}_seed-routine_nis_1");
        let scheduled = events
            .iter()
            .find(|e| e.subject == format!("nis.v1.deadline.{timer_id}.scheduled"))
            .map(|e| DeadlineScheduled::decode(e.payload.as_ref()))
            .transpose()?
            .and_then(|s| s.timer)
            .expect("scheduled event");
        let due = scheduled
            .due_at
            .as_ref()
            .and_then(from_timestamp)
            .expect("due_at");
        assert_eq!(due - identified, chrono::Duration::hours(6), "{id}");
        assert_eq!(local(identified), local_start, "{id}");
        assert_eq!(local(due), local_due, "{id}");
        if due < now {
            // Already past here: it fired, at exactly that UTC instant.
            let f = events
                .iter()
                .find(|e| e.subject == format!("nis.v1.deadline.{timer_id}.due"))
                .map(|e| e.firing())
                .transpose()?
                .expect("due firing");
            assert_eq!(f.intended_at.as_ref().and_then(from_timestamp), Some(due));
            assert!(f.late);
        } else {
            // Still ahead: the broker holds it for that exact UTC second.
            let m = stream
                .get_last_raw_message_by_subject(&format!("nis.v1.timer.sched.{timer_id}.g1-due"))
                .await?;
            let header = m
                .headers
                .get("Nats-Schedule")
                .map(|v| v.to_string())
                .unwrap_or_default();
            assert_eq!(header, format!("@at {}", due.format("%Y-%m-%dT%H:%M:%SZ")));
        }
    }
    Ok(())
}
