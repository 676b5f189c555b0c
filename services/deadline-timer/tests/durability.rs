//! Nothing pending is lost when the service or the broker dies: SIGKILL of
//! the service, a due moment passing while it is down, and a restart of
//! nats-server, each with timers pending. Every moment fires exactly once,
//! and one whose moment passed while something was down is marked late.
//!
//! Build the binary first: `cargo build -p nisvakt-deadline-timer --bins`.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn after_a_sigkill_and_restart_every_moment_fires_once_and_those_due_while_down_are_late()
-> anyhow::Result<()> {
    let bus = bus().await?;
    let (mut svc, admin) = service(&bus, &[])?;
    wait_admin(admin).await?;
    let early = whole_second_in(Duration::from_secs(4));
    let late_due = early + chrono::Duration::seconds(1);
    let after = early + chrono::Duration::seconds(8);
    schedule(&bus, deadline_timer("down1", early)).await?;
    schedule(&bus, deadline_timer("down2", late_due)).await?;
    schedule(&bus, deadline_timer("after", after)).await?;
    wait_for_events(&bus.js, Duration::from_secs(15), "3 scheduled", |e| {
        count_kind(e, "scheduled") == 3
    })
    .await?;

    svc.kill();
    sleep_until(late_due + chrono::Duration::seconds(3)).await;
    svc.restart()?;

    let events = wait_for_events(&bus.js, Duration::from_secs(30), "3 due", |e| {
        count_kind(e, "due") >= 3
    })
    .await?;
    // Give a duplicate time to show up before judging.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = deadline_events(&bus.js).await.unwrap_or(events);
    for (subject, n) in count_by_subject(&events) {
        assert_eq!(n, 1, "{subject} published {n} times");
    }
    for e in events.iter().filter(|e| e.timer_and_kind().1 == "due") {
        let f = e.firing()?;
        let (timer, _) = e.timer_and_kind();
        if timer == "after" {
            assert!(!f.late, "on time after restart, but marked late: {f:?}");
        } else {
            assert!(f.late, "{timer} was due while the service was down: {f:?}");
            assert!(f.lateness_ms >= 2000, "{f:?}");
        }
    }
    // Handled firings are removed, so the timer stream does not grow with
    // every moment that passed.
    let mut stream = bus.js.get_stream(nisvakt_bus::topology::TIMERS).await?;
    let info = stream.info().await?.state.clone();
    let mut left = 0;
    let mut subjects = stream.info_with_subjects("nis.v1.timer.fire.>").await?;
    while let Some(Ok((_, n))) = futures::StreamExt::next(&mut subjects).await {
        left += n;
    }
    assert_eq!(left, 0, "firings left in the stream: {info:?}");
    Ok(())
}

#[tokio::test]
async fn a_due_moment_passing_during_a_clean_stop_fires_late_after_restart() -> anyhow::Result<()> {
    let bus = bus().await?;
    let (mut svc, admin) = service(&bus, &[])?;
    wait_admin(admin).await?;
    let due = whole_second_in(Duration::from_secs(3));
    let mut t = deadline_timer("stopped", due);
    t.warnings_at = vec![nisvakt_bus::clock::to_timestamp(
        due - chrono::Duration::seconds(1),
    )];
    schedule(&bus, t).await?;
    wait_for_events(&bus.js, Duration::from_secs(15), "scheduled", |e| {
        count_kind(e, "scheduled") == 1
    })
    .await?;
    assert!(
        svc.terminate()?,
        "the service did not stop cleanly on SIGTERM"
    );
    sleep_until(due + chrono::Duration::seconds(4)).await;
    assert_eq!(count_kind(&deadline_events(&bus.js).await?, "due"), 0);
    svc.restart()?;
    let events = wait_for_events(&bus.js, Duration::from_secs(30), "warning and due", |e| {
        count_kind(e, "due") == 1 && count_kind(e, "warning") == 1
    })
    .await?;
    for e in events
        .iter()
        .filter(|e| e.timer_and_kind().1 != "scheduled")
    {
        let f = e.firing()?;
        assert!(f.late && f.lateness_ms >= 4000, "{f:?}");
        assert_eq!(
            e.msg_id,
            format!(
                "fire:stopped:{}:{}:{}",
                e.timer_and_kind().1,
                f.sequence,
                f.intended_at.map(|t| t.seconds).unwrap_or_default()
            )
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_broker_restart_with_timers_pending_loses_nothing() -> anyhow::Result<()> {
    let mut bus = bus().await?;
    let (_svc, admin) = service(&bus, &[])?;
    wait_admin(admin).await?;
    let during = whole_second_in(Duration::from_secs(3));
    let after = during + chrono::Duration::seconds(9);
    schedule(&bus, deadline_timer("during", during)).await?;
    schedule(&bus, deadline_timer("after", after)).await?;
    wait_for_events(&bus.js, Duration::from_secs(15), "2 scheduled", |e| {
        count_kind(e, "scheduled") == 2
    })
    .await?;

    bus.server.kill();
    sleep_until(during + chrono::Duration::seconds(3)).await;
    bus.server.restart().await?;
    bus.reconnect().await?;

    let events = wait_for_events(&bus.js, Duration::from_secs(40), "2 due", |e| {
        count_kind(e, "due") >= 2
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = deadline_events(&bus.js).await.unwrap_or(events);
    for (subject, n) in count_by_subject(&events) {
        assert_eq!(n, 1, "{subject} published {n} times");
    }
    let due: Vec<_> = events
        .iter()
        .filter(|e| e.timer_and_kind().1 == "due")
        .map(|e| (e.timer_and_kind().0.to_string(), e.firing()))
        .collect();
    for (timer, f) in due {
        let f = f?;
        if timer == "during" {
            assert!(f.late, "due while the broker was down: {f:?}");
        }
    }
    Ok(())
}
