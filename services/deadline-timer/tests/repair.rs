//! Drift is repaired: the watchdog fires (late, once, with a `watchdog`
//! event) a moment whose schedule was deleted behind the service's back,
//! and the reconciler plans timers from the incident projections in KV
//! alone, puts back a missing future schedule and ends a met duty.
//!
//! Build the binary first: `cargo build -p nisvakt-deadline-timer --bins`.

mod common;

use std::time::Duration;

use common::*;
use nisvakt_bus::topology;
use nisvakt_proto::v1::TimerOverdueWatchdog;
use prost::Message as _;

#[tokio::test]
async fn the_watchdog_fires_a_moment_whose_schedule_was_deleted() -> anyhow::Result<()> {
    let bus = bus().await?;
    // The reconciler would put a future schedule back first; keep it out
    // of the way so the moment is really missed.
    let (_svc, admin) = service(&bus, &[("NISVAKT_RECONCILE_EVERY", "1h")])?;
    wait_admin(admin).await?;
    let due = whole_second_in(Duration::from_secs(3));
    schedule(&bus, deadline_timer("lost", due)).await?;
    wait_for_events(&bus.js, Duration::from_secs(15), "scheduled", |e| {
        count_kind(e, "scheduled") == 1
    })
    .await?;
    let stream = bus.js.get_stream(topology::TIMERS).await?;
    let purged = stream.purge().filter("nis.v1.timer.sched.lost.>").await?;
    assert_eq!(purged.purged, 1, "exactly the one schedule was there");

    let events = wait_for_events(&bus.js, Duration::from_secs(30), "watchdog and due", |e| {
        count_kind(e, "watchdog") == 1 && count_kind(e, "due") == 1
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = deadline_events(&bus.js).await.unwrap_or(events);
    assert_eq!(count_kind(&events, "watchdog"), 1);
    assert_eq!(count_kind(&events, "due"), 1);
    let w = events
        .iter()
        .find(|e| e.timer_and_kind().1 == "watchdog")
        .map(|e| TimerOverdueWatchdog::decode(e.payload.as_ref()))
        .transpose()?
        .expect("watchdog event");
    assert_eq!(w.intended_at.map(|t| t.seconds), Some(due.timestamp()));
    let f = events
        .iter()
        .find(|e| e.timer_and_kind().1 == "due")
        .map(|e| e.firing())
        .transpose()?
        .expect("due event");
    assert!(f.late && f.lateness_ms >= 3000, "{f:?}");
    assert_eq!(
        metric(admin, "nisvakt_timer_watchdog_repairs_total").await?,
        1.0
    );
    assert_eq!(
        metric(admin, "nisvakt_timer_firings_late_total").await?,
        1.0
    );
    let record = timer_record(&bus.js, "lost").await?.expect("record");
    assert_eq!(record.watchdog.len(), 1, "{record:?}");
    Ok(())
}

#[tokio::test]
async fn the_reconciler_plans_from_projections_repairs_schedules_and_ends_met_duties()
-> anyhow::Result<()> {
    let bus = bus().await?;
    let (_svc, admin) = service(&bus, &[])?;
    wait_admin(admin).await?;
    let due = whole_second_in(Duration::from_secs(3600));
    let projection = |revision: u64, status: &str| {
        serde_json::json!({
            "id": "inc_rec", "revision": revision, "status": "open",
            "future_field": {"ignored": true},
            "deadlines": [{
                "id": "inc_rec.seed-routine.nis.1", "rule_set": "seed-routine",
                "duty": "nis", "stage": "1", "label_sv": "Skede 1", "status": status,
                "due_at": due.to_rfc3339(), "met_at": chrono::Utc::now().to_rfc3339(),
                "warnings_at": [(due - chrono::Duration::minutes(15)).to_rfc3339()],
                "overdue_every_secs": 3600
            }]
        })
        .to_string()
    };
    let incidents = bus.js.get_key_value(topology::BUCKET_INCIDENTS).await?;
    incidents
        .put("inc_rec", projection(1, "pending").into())
        .await?;
    // No snapshot on the bus: the reconciler alone plans it.
    wait_for_events(&bus.js, Duration::from_secs(20), "scheduled", |e| {
        e.iter()
            .any(|e| e.subject == "nis.v1.deadline.dl-inc_rec_seed-routine_nis_1.scheduled")
    })
    .await?;
    let stream = bus.js.get_stream(topology::TIMERS).await?;
    let due_subject = "nis.v1.timer.sched.dl-inc_rec_seed-routine_nis_1.g1-due";
    stream.get_last_raw_message_by_subject(due_subject).await?;
    stream.purge().filter(due_subject).await?;
    // The reconciler puts the missing schedule back.
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while stream
        .get_last_raw_message_by_subject(due_subject)
        .await
        .is_err()
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "the missing schedule was not put back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The duty is met in a newer projection: the timer ends as met.
    incidents
        .put("inc_rec", projection(2, "met").into())
        .await?;
    wait_for_events(&bus.js, Duration::from_secs(20), "met", |e| {
        count_kind(e, "met") == 1
    })
    .await?;
    let stream = bus.js.get_stream(topology::TIMERS).await?;
    assert!(
        stream
            .get_last_raw_message_by_subject(due_subject)
            .await
            .is_err(),
        "a met duty's schedule must be gone"
    );
    assert!(metric(admin, "nisvakt_timer_reconcile_repairs_total").await? >= 3.0);
    Ok(())
}
