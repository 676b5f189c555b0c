//! "Once": two replicas running at once publish each moment once (also
//! when both watchdogs race to repair the same lost schedule), and a
//! cancel racing a firing leaves one consistent record: the moment is
//! claimed and published, or neither.
//!
//! Build the binary first: `cargo build -p nisvakt-deadline-timer --bins`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use nisvakt_deadline_timer::record::{TimerState, claim_key};
use nisvakt_proto::v1::FiringKind;

#[tokio::test]
async fn two_replicas_fire_every_moment_once_even_when_both_watchdogs_repair() -> anyhow::Result<()>
{
    let bus = bus().await?;
    // Reconcilers out of the way so both watchdogs race for lost moments.
    let slow = [("NISVAKT_RECONCILE_EVERY", "1h")];
    let (_a, admin_a) = service(&bus, &slow)?;
    let (_b, admin_b) = service(&bus, &slow)?;
    wait_admin(admin_a).await?;
    wait_admin(admin_b).await?;
    const N: usize = 30;
    const LOST: usize = 4;
    let first = whole_second_in(Duration::from_secs(5));
    for i in 0..N {
        let due = first + chrono::Duration::seconds((i % 3) as i64);
        schedule(&bus, deadline_timer(&format!("r{i}"), due)).await?;
    }
    wait_for_events(&bus.js, Duration::from_secs(30), "all scheduled", |e| {
        count_kind(e, "scheduled") == N
    })
    .await?;
    // Lose some schedules behind the services' backs: both watchdogs see it.
    let stream = bus.js.get_stream(nisvakt_bus::topology::TIMERS).await?;
    for i in 0..LOST {
        stream
            .purge()
            .filter(format!("nis.v1.timer.sched.r{i}.>"))
            .await?;
    }
    let events = wait_for_events(&bus.js, Duration::from_secs(40), "every due", |e| {
        count_kind(e, "due") >= N && count_kind(e, "watchdog") >= LOST
    })
    .await?;
    // Let any duplicate arrive before judging (the watchdogs keep sweeping).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let events = deadline_events(&bus.js).await.unwrap_or(events);
    for (subject, n) in count_by_subject(&events) {
        assert_eq!(n, 1, "{subject} stored {n} times");
    }
    let ids: BTreeSet<&str> = events.iter().map(|e| e.msg_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "a Nats-Msg-Id was stored twice");
    assert_eq!(count_kind(&events, "due"), N);
    assert_eq!(count_kind(&events, "watchdog"), LOST);
    // The broker's de-duplication must not be what saves us: the replicas
    // together published each moment once.
    let fired = metric(admin_a, "nisvakt_timer_firings_total").await?
        + metric(admin_b, "nisvakt_timer_firings_total").await?;
    assert_eq!(
        fired, N as f64,
        "firings published by both replicas together"
    );
    let repairs = metric(admin_a, "nisvakt_timer_watchdog_repairs_total").await?
        + metric(admin_b, "nisvakt_timer_watchdog_repairs_total").await?;
    assert_eq!(repairs, LOST as f64);
    Ok(())
}

#[tokio::test]
async fn a_cancel_racing_a_firing_leaves_one_consistent_record() -> anyhow::Result<()> {
    let bus = bus().await?;
    let (_svc, admin) = service(&bus, &[])?;
    wait_admin(admin).await?;
    const N: i64 = 16;
    let due = whole_second_in(Duration::from_secs(4));
    for i in 0..N {
        schedule(&bus, deadline_timer(&format!("c{i}"), due)).await?;
    }
    wait_for_events(&bus.js, Duration::from_secs(20), "all scheduled", |e| {
        count_kind(e, "scheduled") == N as usize
    })
    .await?;
    // Cancels spread from 400 ms before to 350 ms after the moment.
    for i in 0..N {
        let at = due + chrono::Duration::milliseconds(-400 + i * 50);
        sleep_until(at).await;
        cancel(&bus, &format!("c{i}")).await?;
    }
    wait_for_events(&bus.js, Duration::from_secs(20), "every cancel", |e| {
        count_kind(e, "cancelled") == N as usize
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = deadline_events(&bus.js).await?;
    let key = claim_key(FiringKind::Due, 0, due);
    let (mut fired, mut cancelled_first) = (0, 0);
    for i in 0..N {
        let id = format!("c{i}");
        let record = timer_record(&bus.js, &id).await?.expect("record exists");
        assert_eq!(record.state, TimerState::Cancelled, "{id}");
        let published = events
            .iter()
            .filter(|e| e.subject == format!("nis.v1.deadline.{id}.due"))
            .count();
        assert!(published <= 1, "{id}: due published {published} times");
        assert_eq!(
            record.claimed.contains(&key),
            published == 1,
            "{id}: the record says {:?} but {published} due events were published",
            record.claimed
        );
        if published == 1 {
            fired += 1;
        } else {
            cancelled_first += 1;
        }
    }
    eprintln!("cancel race: {fired} fired before their cancel, {cancelled_first} cancelled first");
    Ok(())
}
