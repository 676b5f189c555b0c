//! The classifier service over a real nats-server, driving the real
//! binaries: the clock alone makes an ongoing disruption reportable, a late
//! ticket is reportable at once, repeated tickets change nothing, two
//! replicas and a SIGKILL mid-storm lose and double-count nothing, and
//! operators' commands move the duties. Needs
//! `cargo build --workspace --bins` first (for the deadline-timer).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Duration as Span;
use common::{Harness, now_s, ticket, ts};
use nisvakt_bus::topology;
use nisvakt_proto::v1 as pb;

const SEED: &str = "seed-routine";

fn seed(i: &pb::Incident) -> Option<&pb::Assessment> {
    i.assessments.iter().find(|a| a.rule_set == SEED)
}

fn deadline<'a>(i: &'a pb::Incident, duty: &str, stage: &str) -> Option<&'a pb::Deadline> {
    i.deadlines
        .iter()
        .find(|d| d.rule_set == SEED && d.duty == duty && d.stage == stage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ongoing_disruption_turns_reportable_by_the_clock_alone() -> anyhow::Result<()> {
    let h = Harness::start(1, true).await?;
    let accepted_at = now_s();
    let start = accepted_at - Span::hours(2) + Span::seconds(5);
    let t = ticket(
        "T-CLOCK",
        "Journalsystemet",
        "Hemsjukvården Centrum",
        start,
        true,
    );
    h.ticket(&t, "rcp_clock", accepted_at, "rcp_clock").await?;

    let (stored, _) = h
        .wait_for("the incident", Duration::from_secs(20), |all| {
            all.first().cloned()
        })
        .await?;
    let inc = &stored.incident;
    let a = inc.assessment(SEED).expect("a seed-routine assessment");
    assert!(!a.reportable, "not reportable before 2 h: {a:?}");
    let pending = a
        .pending_thresholds
        .iter()
        .find(|p| p.criterion == "care_interrupted_2h")
        .expect("a pending care threshold");
    assert_eq!(pending.at, start + Span::hours(2));

    // No new ticket: only the deadline-timer's firing can make it reportable.
    let event = h
        .wait_assessed(inc.id.as_str(), Duration::from_secs(20), |i| {
            seed(i).is_some_and(|a| a.reportable)
        })
        .await?;
    let i = event.incident.expect("a snapshot");
    let a = seed(&i).expect("a seed-routine assessment");
    let met_at = start + Span::hours(2);
    let c = a
        .criteria
        .iter()
        .find(|c| c.id == "care_interrupted_2h")
        .expect("the criterion");
    assert!(c.met, "{c:?}");
    assert_eq!(ts(&c.met_at), Some(met_at));
    assert_eq!(ts(&a.identified_at), Some(met_at));
    assert!(event.became_reportable.contains(&SEED.to_string()));
    assert_eq!(event.cause, "threshold_reached");
    let due = |stage| deadline(&i, "nis", stage).and_then(|d| ts(&d.due_at));
    assert_eq!(due("1"), Some(met_at + Span::hours(6)));
    assert_eq!(due("2"), Some(met_at + Span::hours(24)));
    assert_eq!(i.ticket_count, 1);
    let tickets = h
        .messages(topology::TICKETS, "nis.v1.ticket.accepted")
        .await?;
    assert_eq!(tickets.len(), 1, "no ticket but the first");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_about_a_disruption_that_already_lasted_is_reportable_at_once()
-> anyhow::Result<()> {
    let h = Harness::start(1, false).await?;
    let accepted_at = now_s();
    let start = accepted_at - Span::hours(3);
    let t = ticket(
        "T-LATE",
        "Journalsystemet",
        "Vårdboende Linnéa",
        start,
        true,
    );
    h.ticket(&t, "rcp_late", accepted_at, "rcp_late").await?;
    let (stored, _) = h
        .wait_for("the incident", Duration::from_secs(20), |all| {
            all.first().cloned()
        })
        .await?;
    let event = h
        .wait_assessed(stored.incident.id.as_str(), Duration::from_secs(20), |i| {
            seed(i).is_some_and(|a| a.reportable)
        })
        .await?;
    let i = event.incident.expect("a snapshot");
    let a = seed(&i).expect("a seed-routine assessment");
    // Reportable the moment nisvakt learned of it, not two hours after start.
    assert_eq!(ts(&a.identified_at), Some(accepted_at));
    let c = a
        .criteria
        .iter()
        .find(|c| c.id == "care_interrupted_2h")
        .expect("the criterion");
    assert!(c.met);
    assert_eq!(
        deadline(&i, "nis", "1").and_then(|d| ts(&d.due_at)),
        Some(accepted_at + Span::hours(6))
    );
    assert!(
        a.pending_thresholds
            .iter()
            .all(|p| p.criterion != "care_interrupted_2h")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_ticket_changes_nothing() -> anyhow::Result<()> {
    let h = Harness::start(1, false).await?;
    let accepted_at = now_s();
    let t = ticket(
        "T-DUP",
        "Planeringssystemet",
        "Hemtjänst Norr",
        accepted_at - Span::minutes(10),
        false,
    );
    h.ticket(&t, "rcp_dup", accepted_at, "rcp_dup").await?;
    let (first, rev) = h
        .wait_for("the incident", Duration::from_secs(20), |all| {
            all.first().cloned()
        })
        .await?;
    h.wait_drained(
        topology::TICKETS,
        "classifier-tickets",
        Duration::from_secs(20),
    )
    .await?;
    let events_before = h
        .messages(topology::INCIDENTS, "nis.v1.incident.>")
        .await?
        .len();

    // The same message again: the broker drops it.
    let again = h.ticket(&t, "rcp_dup", accepted_at, "rcp_dup").await?;
    assert!(again.duplicate);
    // The same ticket under another message id (and another receipt): it
    // reaches the classifier, which must recognise it.
    let other = h
        .ticket(&t, "rcp_dup_2", accepted_at + Span::seconds(1), "rcp_dup_2")
        .await?;
    assert!(!other.duplicate);
    h.wait_drained(
        topology::TICKETS,
        "classifier-tickets",
        Duration::from_secs(20),
    )
    .await?;

    let all = h.incidents().await?;
    assert_eq!(all.len(), 1);
    let (now, now_rev) = &all[0];
    assert_eq!(*now_rev, rev, "the projection was not written again");
    assert_eq!(now.incident.ticket_count, 1);
    assert_eq!(now.incident.revision, first.incident.revision);
    let events_after = h
        .messages(topology::INCIDENTS, "nis.v1.incident.>")
        .await?
        .len();
    assert_eq!(events_after, events_before, "no new incident events");

    // An update of the ticket goes to the same incident and still counts once.
    let mut update = t.clone();
    update.revision = 2;
    update.disruption_ended_at = Some(accepted_at);
    h.ticket(
        &update,
        "rcp_dup_r2",
        accepted_at + Span::seconds(2),
        "rcp_dup_r2",
    )
    .await?;
    let (after, _) = h
        .wait_for("the update", Duration::from_secs(20), |all| {
            all.iter()
                .find(|(s, _)| s.incident.tickets.iter().any(|t| t.revision == 2))
                .cloned()
        })
        .await?;
    assert_eq!(after.incident.id, first.incident.id);
    assert_eq!(after.incident.ticket_count, 1);
    assert_eq!(h.incidents().await?.len(), 1);
    Ok(())
}

/// Publishes `n` tickets about `system` from `units` units, ids `prefix-i`.
fn storm(
    prefix: &str,
    system: &str,
    n: usize,
    units: usize,
) -> Vec<(nisvakt_domain::ticket::Ticket, String)> {
    let start = now_s() - Span::minutes(20);
    (0..n)
        .map(|i| {
            let t = ticket(
                &format!("{prefix}-{i:04}"),
                system,
                &format!("Enhet {:02}", i % units),
                start + Span::seconds(i as i64 % 60),
                true,
            );
            (t, format!("rcp_{prefix}_{i:04}"))
        })
        .collect()
}

fn check_counts(all: &[(nisvakt_classifier::service::Stored, u64)], want: &[(&str, u32, usize)]) {
    assert_eq!(all.len(), want.len(), "one incident per disruption");
    for (system, count, units) in want {
        let (s, _) = all
            .iter()
            .find(|(s, _)| s.incident.system.as_deref() == Some(system))
            .unwrap_or_else(|| panic!("an incident about {system}"));
        let inc = &s.incident;
        assert_eq!(inc.ticket_count, *count, "{system}");
        assert_eq!(inc.tickets.len(), *count as usize, "{system}");
        let distinct: BTreeSet<_> = inc.tickets.iter().map(|t| t.ticket_id.clone()).collect();
        assert_eq!(
            distinct.len(),
            *count as usize,
            "{system}: a ticket counted twice"
        );
        assert_eq!(inc.units.len(), *units, "{system}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fold_a_storm_without_losing_or_double_counting() -> anyhow::Result<()> {
    let h = Harness::start(2, false).await?;
    let journal = storm("J", "Journalsystemet", 300, 20);
    let phones = storm("V", "Telefonväxeln", 50, 5);
    let accepted_at = now_s();
    // Interleaved, as a real storm arrives.
    let mut phones = phones.iter();
    for (i, (t, r)) in journal.iter().enumerate() {
        h.ticket(t, r, accepted_at, r).await?;
        if i % 6 == 5
            && let Some((t, r)) = phones.next()
        {
            h.ticket(t, r, accepted_at, r).await?;
        }
    }
    for (t, r) in phones {
        h.ticket(t, r, accepted_at, r).await?;
    }
    let want = [("Journalsystemet", 300, 20), ("Telefonväxeln", 50, 5)];
    h.wait_for("both incidents complete", Duration::from_secs(180), |all| {
        let done = |sys: &str, n: u32| {
            all.iter().any(|(s, _)| {
                s.incident.system.as_deref() == Some(sys) && s.incident.ticket_count >= n
            })
        };
        (done("Journalsystemet", 300) && done("Telefonväxeln", 50)).then_some(())
    })
    .await?;
    h.wait_drained(
        topology::TICKETS,
        "classifier-tickets",
        Duration::from_secs(60),
    )
    .await?;
    check_counts(&h.incidents().await?, &want);
    let dead = h
        .messages(topology::DEADLETTER, "nis.v1.deadletter.>")
        .await?;
    assert!(dead.is_empty(), "{} messages dead-lettered", dead.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_storm_loses_and_double_counts_nothing() -> anyhow::Result<()> {
    let mut h = Harness::start(1, false).await?;
    let journal = storm("K", "Journalsystemet", 300, 20);
    let accepted_at = now_s();
    for (t, r) in &journal {
        h.ticket(t, r, accepted_at, r).await?;
    }
    h.wait_for("the storm under way", Duration::from_secs(60), |all| {
        all.iter()
            .any(|(s, _)| s.incident.ticket_count >= 40)
            .then_some(())
    })
    .await?;
    h.classifiers[0].kill();
    let (mid, _) = h
        .wait_for("the killed state", Duration::from_secs(5), |all| {
            all.first().cloned()
        })
        .await?;
    assert!(mid.incident.ticket_count < 300, "killed mid-storm");
    h.classifiers[0].restart()?;
    // The message in hand at the kill comes back after the 30 s ack wait.
    h.wait_for("the storm folded", Duration::from_secs(120), |all| {
        all.iter()
            .any(|(s, _)| s.incident.ticket_count >= 300)
            .then_some(())
    })
    .await?;
    h.wait_drained(
        topology::TICKETS,
        "classifier-tickets",
        Duration::from_secs(60),
    )
    .await?;
    check_counts(&h.incidents().await?, &[("Journalsystemet", 300, 20)]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_confirm_harm_and_a_stage_one_report_moves_stage_three() -> anyhow::Result<()> {
    let h = Harness::start(1, false).await?;
    let accepted_at = now_s();
    let mut t = ticket(
        "T-OP",
        "Journalsystemet",
        "Hemsjukvården Väster",
        accepted_at - Span::minutes(30),
        false,
    );
    t.disruption_ended_at = Some(accepted_at - Span::minutes(10));
    h.ticket(&t, "rcp_op", accepted_at, "rcp_op").await?;
    let (stored, _) = h
        .wait_for("the incident", Duration::from_secs(20), |all| {
            all.first().cloned()
        })
        .await?;
    let id = stored.incident.id.to_string();
    assert!(
        !stored
            .incident
            .assessment(SEED)
            .is_some_and(|a| a.reportable)
    );

    let assessed_at = now_s();
    h.command(
        &id,
        "assessment",
        "cmd_harm",
        &pb::RecordAssessment {
            command_id: "cmd_harm".into(),
            incident_id: id.clone(),
            assessed_by: "NIS-bedömare Anna".into(),
            patient_harm: pb::PatientHarm::Occurred as i32,
            reasoning: "Läkemedel kunde inte ges i tid.".into(),
            issued_at: Some(nisvakt_bus::clock::to_timestamp(assessed_at)),
            ..Default::default()
        },
    )
    .await?;
    let event = h
        .wait_assessed(&id, Duration::from_secs(20), |i| {
            seed(i).is_some_and(|a| a.reportable)
        })
        .await?;
    let i = event.incident.expect("a snapshot");
    let a = seed(&i).expect("a seed-routine assessment");
    let harm = a
        .criteria
        .iter()
        .find(|c| c.id == "patient_harm")
        .expect("criterion");
    assert!(harm.met, "{harm:?}");
    assert_eq!(ts(&a.identified_at), Some(assessed_at));
    assert!(
        deadline(&i, "lex_maria", "1").is_some(),
        "lex Maria duty added: {:?}",
        i.deadlines
            .iter()
            .map(|d| (&d.duty, &d.stage))
            .collect::<Vec<_>>()
    );

    let reported_at = assessed_at + Span::hours(2);
    h.command(
        &id,
        "report",
        "cmd_report_1",
        &pb::ReportStage {
            command_id: "cmd_report_1".into(),
            incident_id: id.clone(),
            duty: "nis".into(),
            stage: "1".into(),
            reported_at: Some(nisvakt_bus::clock::to_timestamp(reported_at)),
            reported_by: "Säkerhetsenheten".into(),
            channel: pb::ReportChannel::Tool as i32,
            ..Default::default()
        },
    )
    .await?;
    let (after, _) = h
        .wait_for("skede 1 reported", Duration::from_secs(20), |all| {
            all.iter()
                .find(|(s, _)| !s.incident.reports.is_empty())
                .cloned()
        })
        .await?;
    let inc = &after.incident;
    let s1 = inc.deadline(SEED, "nis", "1").expect("skede 1");
    assert_eq!(s1.status, nisvakt_domain::assess::DeadlineStatus::Met);
    let s3 = inc.deadline(SEED, "nis", "3").expect("skede 3");
    assert_eq!(
        s3.due_at,
        reported_at + Span::weeks(4),
        "four weeks from the report"
    );
    assert_eq!(s3.anchor_at, reported_at);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_naming_no_system_joins_the_open_incident_of_its_kind() -> anyhow::Result<()> {
    let h = Harness::start(1, false).await?;
    let now = now_s();
    let named = ticket(
        "T-NAMED",
        "Journalsystemet",
        "Vårdboende Linnéa",
        now - Span::minutes(30),
        true,
    );
    h.ticket(&named, "rcp_named", now, "rcp_named").await?;
    // Same outage, described only in words: "journalen" makes it the record system.
    let mut vague = ticket(
        "T-VAGUE",
        "x",
        "Hemtjänst Norr",
        now - Span::minutes(20),
        true,
    );
    vague.system = None;
    vague.subject = "Kommer inte in i journalen".into();
    h.ticket(&vague, "rcp_vague", now, "rcp_vague").await?;
    // And a different record system at the same time is its own incident.
    let other = ticket(
        "T-OTHER",
        "Cosmic Link",
        "Hemtjänst Norr",
        now - Span::minutes(20),
        true,
    );
    h.ticket(&other, "rcp_other", now, "rcp_other").await?;
    h.wait_drained("NIS_TICKETS", "classifier-tickets", Duration::from_secs(20))
        .await?;
    let all = h.incidents().await?;
    let mut counts: Vec<(String, u32)> = all
        .iter()
        .map(|(s, _)| {
            (
                s.incident.system.clone().unwrap_or_default(),
                s.incident.ticket_count,
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("Cosmic Link".to_string(), 1),
            ("Journalsystemet".to_string(), 2)
        ],
        "{counts:?}"
    );
    Ok(())
}
