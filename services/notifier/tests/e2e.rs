//! The notifier binary end to end: incident snapshots and deadline firings
//! on a real nats-server in, mail on a loopback SMTP server and requests on
//! a webhook receiver out; the deadline-timer binary keeps the escalation
//! clocks. Each test starts its own server and processes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use chrono_tz::Europe::Stockholm;
use common::*;
use nisvakt_bus::{subjects, topology};
use nisvakt_proto::v1 as pb;
use prost::Message as _;

/// How long anything in these tests may take to arrive.
const T: Duration = Duration::from_secs(20);

fn alert_id_of(m: &nisvakt_testkit::smtp::ReceivedMail) -> String {
    mail_header(m, "X-Nisvakt-Alert-Id")
}

fn level_of(m: &nisvakt_testkit::smtp::ReceivedMail) -> String {
    mail_header(m, "X-Nisvakt-Level")
}

#[tokio::test]
async fn the_routed_people_get_a_swedish_mail_with_local_deadlines_and_the_playbook()
-> anyhow::Result<()> {
    let h = Harness::start(Options::default()).await?;
    let now = Utc::now();
    // A personnummer where none may be: the text must still never carry it.
    let inc = incident("inc_mail", "Journalsystemet 19121212-1212", 7, now);
    let wire = nisvakt_bus::convert::incident_to_pb(&inc);
    assert!(
        wire.assessments.iter().any(|a| a.reportable),
        "the test incident must be reportable under the seed routine"
    );
    h.publish_incident(&inc, "snap-mail-1").await?;
    let reportable = alert_for("inc_mail", "reportable:seed-routine");
    h.wait_state(&reportable, T, |s| s.settled == Some(0))
        .await?;

    let stage1 = stage_one(&wire);
    let due = nisvakt_bus::clock::from_timestamp(&stage1.due_at.unwrap_or_default())
        .expect("stage 1 has a due time")
        .with_timezone(&Stockholm);
    let due_local = due.format("%Y-%m-%d %H:%M").to_string();
    let zone = due.format("%Z").to_string();
    assert!(zone == "CET" || zone == "CEST", "zone {zone}");

    for who in [ASSESSOR, SECURITY, UNIT_MANAGER] {
        let mails: Vec<_> = h
            .mails_to(who)
            .into_iter()
            .filter(|m| alert_id_of(m) == reportable)
            .collect();
        assert_eq!(mails.len(), 1, "{who} gets the reportable alert once");
        let m = &mails[0];
        assert!(
            m.subject.starts_with("RAPPORTERINGSPLIKTIG NIS-incident"),
            "Swedish subject: {}",
            m.subject
        );
        assert!(m.subject.contains("Skede 1 senast"), "{}", m.subject);
        for needed in [
            format!("{due_local} ({zone})"),
            "Skede 1".into(),
            "IRON (iron.msb.se)".into(),
            "CERT-SE 010-240 40 40".into(),
            "rekommenderat brev".into(),
            "Box 6081".into(),
            "171 06 Solna".into(),
            "kuvert i kuvert".into(),
            "Terminalvägen 14".into(),
            "Kvittera larmet".into(),
        ] {
            assert!(
                m.body.contains(&needed),
                "the body of the mail to {who} lacks `{needed}`:\n{}",
                m.body
            );
        }
        for text in [&m.subject, &m.body, &m.data] {
            assert!(
                !text.contains("1212-1212") && !text.contains("121212121212"),
                "a personal identifier went out to {who}"
            );
        }
    }
    // The unit has its own manager: the default one hears nothing, and
    // the reportable alert goes to nobody outside its routing.
    assert!(h.mails_to(DEFAULT_MANAGER).is_empty());
    for who in [DESK, ON_CALL] {
        assert!(
            h.mails_to(who).iter().all(|m| alert_id_of(m) != reportable),
            "{who} is not routed the reportable alert"
        );
    }
    Ok(())
}

#[tokio::test]
async fn deadline_warnings_and_due_raise_the_severity_and_widen_the_circle() -> anyhow::Result<()> {
    let h = Harness::start(Options::default()).await?;
    let now = Utc::now();
    let inc = incident("inc_clock", "Journalsystemet", 7, now);
    let wire = nisvakt_bus::convert::incident_to_pb(&inc);
    h.store_incident(&inc).await?;
    let stage1 = stage_one(&wire);
    let due_at = nisvakt_bus::clock::from_timestamp(&stage1.due_at.unwrap_or_default())
        .expect("stage 1 has a due time");
    let warning = firing(
        "inc_clock",
        &stage1,
        pb::FiringKind::Warning,
        due_at - chrono::Duration::hours(1),
    );
    let due = firing("inc_clock", &stage1, pb::FiringKind::Due, due_at);
    h.publish_firing(&warning, "fire-w").await?;
    h.publish_firing(&due, "fire-due").await?;
    let warning_id = alert_for_firing(&warning, "warning");
    let due_id = alert_for_firing(&due, "due");
    h.wait_state(&warning_id, T, |s| s.settled == Some(0))
        .await?;
    h.wait_state(&due_id, T, |s| s.settled == Some(0)).await?;

    let got = |id: &str| -> BTreeSet<String> {
        h.smtp
            .messages()
            .iter()
            .filter(|m| alert_id_of(m) == id)
            .flat_map(|m| m.rcpt_to.clone())
            .collect()
    };
    assert_eq!(
        got(&warning_id),
        BTreeSet::from([ASSESSOR.to_string(), UNIT_MANAGER.to_string()])
    );
    assert_eq!(
        got(&due_id),
        BTreeSet::from([
            ASSESSOR.to_string(),
            SECURITY.to_string(),
            UNIT_MANAGER.to_string()
        ])
    );
    let due_mail = h
        .mails_to(SECURITY)
        .into_iter()
        .find(|m| alert_id_of(m) == due_id)
        .expect("the security unit has the due alert");
    assert!(
        due_mail.subject.starts_with("FRISTEN GÅR UT NU: Skede 1"),
        "{}",
        due_mail.subject
    );
    assert_eq!(mail_header(&due_mail, "Importance"), "high");
    assert!(due_mail.body.contains("kuvert i kuvert"));
    Ok(())
}

#[tokio::test]
async fn a_webhook_that_fails_twice_gets_one_delivery_and_three_attempts_are_recorded()
-> anyhow::Result<()> {
    let h = Harness::start(Options::default()).await?;
    h.webhook.fail_next(2);
    h.publish_snapshot(&suspected("inc_hook"), "snap-hook-1")
        .await?;
    let id = alert_for("inc_hook", "suspected_nis");
    h.wait_state(&id, T, |s| s.settled == Some(0)).await?;

    let requests = h.webhook.requests();
    assert_eq!(requests.len(), 3, "two failures, then one success");
    let successes = h.webhook.successes();
    assert_eq!(successes.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&successes[0].body)?;
    assert_eq!(body["alert_id"].as_str(), Some(id.as_str()));
    assert_eq!(
        body["recipient"]["role"].as_str(),
        Some("intraservice_desk")
    );
    let keys: BTreeSet<_> = requests
        .iter()
        .filter_map(|r| r.header("Idempotency-Key").map(str::to_string))
        .collect();
    assert_eq!(keys.len(), 1, "every attempt carries the same key");

    let records = h
        .collect(
            topology::DELIVERIES,
            &subjects::delivery(&id, "webhook"),
            4,
            Duration::from_secs(2),
        )
        .await?;
    let records: Vec<pb::DeliveryResult> = records
        .iter()
        .map(|m| pb::DeliveryResult::decode(m.payload.as_ref()))
        .collect::<Result<_, _>>()?;
    let seen: Vec<(u32, pb::DeliveryOutcome)> =
        records.iter().map(|r| (r.attempt, r.outcome())).collect();
    assert_eq!(
        seen,
        [
            (1, pb::DeliveryOutcome::Retrying),
            (2, pb::DeliveryOutcome::Retrying),
            (3, pb::DeliveryOutcome::Delivered),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_sigkill_between_sending_and_acking_sends_nothing_twice() -> anyhow::Result<()> {
    // Slow retries keep the handler busy after the first mail went out.
    let mut h = Harness::start(Options {
        base_delay_ms: 1000,
        ..Options::default()
    })
    .await?;
    h.webhook.fail_next(3);
    h.publish_snapshot(&suspected("inc_kill"), "snap-kill-1")
        .await?;
    let id = alert_for("inc_kill", "suspected_nis");
    // The desk's mail is sent and in the ledger; its webhook is failing,
    // so the snapshot is not acknowledged yet.
    h.wait_state(&id, T, |s| s.delivered.contains(&format!("0:email:{DESK}")))
        .await?;
    h.webhook.wait_for(1, T).await?;
    h.notifier.kill();
    let info =
        h.js.get_stream(topology::INCIDENTS)
            .await?
            .consumer_info("notifier-incidents")
            .await?;
    assert_eq!(info.num_ack_pending, 1, "killed before the ack");
    assert_eq!(h.mails_to(DESK).len(), 1);

    h.notifier.restart()?;
    h.wait_state(&id, T, |s| s.settled == Some(0)).await?;
    // What the broker will redeliver looks like this: one more copy.
    h.publish_snapshot(&suspected("inc_kill"), "snap-kill-1-again")
        .await?;
    h.wait_idle(topology::INCIDENTS, "notifier-incidents", T)
        .await
        .or_else(|_| anyhow::Ok(()))?;

    assert_eq!(h.mails_to(DESK).len(), 1, "no second mail to the desk");
    assert_eq!(
        h.mails_to(UNIT_MANAGER).len(),
        1,
        "the manager's mail, not yet sent at the kill, went out once"
    );
    assert_eq!(h.webhook.successes().len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_acknowledgement_stops_the_escalation() -> anyhow::Result<()> {
    let h = Harness::start(Options {
        ack_within: "3s",
        with_timer: true,
        ..Options::default()
    })
    .await?;
    h.publish_snapshot(&suspected("inc_acked"), "snap-acked-1")
        .await?;
    h.publish_snapshot(&suspected("inc_ignored"), "snap-ignored-1")
        .await?;
    let acked = alert_for("inc_acked", "suspected_nis");
    let ignored = alert_for("inc_ignored", "suspected_nis");

    // Someone takes charge of one alert as soon as it arrives.
    h.wait_mail(DESK, T, |m| alert_id_of(m) == acked).await?;
    h.ack(&acked, "sakerhet@test.invalid").await?;
    let acked_state = h.wait_state(&acked, T, |s| s.acked_by.is_some()).await?;
    assert_eq!(acked_state.level, 0);

    // Nobody acts on the other: the next level gets it, the unit's own
    // manager included, with the level in the title.
    for who in [ASSESSOR, ON_CALL, UNIT_MANAGER, DESK] {
        let m = h
            .wait_mail(who, T, |m| alert_id_of(m) == ignored && level_of(m) == "1")
            .await?;
        assert!(
            m.subject
                .starts_with("ESKALERAT till nivå 2 av 2: Eventuell NIS-incident"),
            "{}",
            m.subject
        );
        assert!(m.body.starts_with("ESKALERAT LARM"), "{}", m.body);
    }
    assert!(h.mails_to(DEFAULT_MANAGER).is_empty());

    // The acknowledged alert's clock was due at about the same moment:
    // wait well past it, then nobody at level 1 has heard of it.
    let since = acked_state.level_since.unwrap_or_else(Utc::now);
    let past_due = since + chrono::Duration::seconds(3 + 4);
    if let Ok(wait) = (past_due - Utc::now()).to_std() {
        tokio::time::sleep(wait.min(Duration::from_secs(10))).await;
    }
    for who in [ASSESSOR, ON_CALL] {
        assert!(
            h.mails_to(who).iter().all(|m| alert_id_of(m) != acked),
            "{who} heard of an acknowledged alert"
        );
    }
    assert_eq!(
        h.mails_to(DESK)
            .iter()
            .filter(|m| alert_id_of(m) == acked)
            .count(),
        1
    );
    let state = h.alert_state(&acked).await?.expect("state kept");
    assert_eq!(state.level, 0, "an acknowledged alert stays where it was");
    let acks = h
        .collect(
            topology::ALERTS,
            &subjects::alert(&acked, "acknowledged"),
            1,
            T,
        )
        .await?;
    assert_eq!(acks.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_storm_of_a_thousand_snapshots_gives_each_recipient_a_handful_of_alerts()
-> anyhow::Result<()> {
    let h = Harness::start(Options::default()).await?;
    let now = Utc::now();
    let inc = incident("inc_storm", "Journalsystemet", 7, now);
    h.store_incident(&inc).await?;
    let mut wire = nisvakt_bus::convert::incident_to_pb(&inc);
    for revision in 1..=1000u64 {
        wire.revision = revision;
        wire.ticket_count = u32::try_from(revision)?;
        h.publish_snapshot(&wire, &format!("snap-storm-{revision}"))
            .await?;
    }
    h.wait_idle(
        topology::INCIDENTS,
        "notifier-incidents",
        Duration::from_secs(120),
    )
    .await?;

    let mails = h.smtp.messages();
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    let mut pairs = BTreeSet::new();
    for m in &mails {
        for r in &m.rcpt_to {
            *per_recipient.entry(r.clone()).or_default() += 1;
            assert!(
                pairs.insert((alert_id_of(m), r.clone())),
                "{r} got alert {} twice",
                alert_id_of(m)
            );
        }
    }
    assert!(per_recipient.get(UNIT_MANAGER).is_some_and(|n| *n >= 1));
    for (who, n) in &per_recipient {
        assert!(*n <= 5, "{who} got {n} alerts for one incident");
    }
    let alerts: BTreeSet<String> = mails.iter().map(alert_id_of).collect();
    assert!(
        alerts.len() <= 4,
        "{} alerts for one incident",
        alerts.len()
    );
    let raised = h
        .collect(
            topology::ALERTS,
            "nis.v1.alert.*.raised",
            1000,
            Duration::from_secs(2),
        )
        .await?;
    assert_eq!(raised.len(), alerts.len(), "one `raised` per alert");
    assert_eq!(h.webhook.successes().len(), 1, "the desk's webhook, once");
    Ok(())
}

#[tokio::test]
async fn a_redelivered_event_raises_no_second_alert() -> anyhow::Result<()> {
    let h = Harness::start(Options::default()).await?;
    let now = Utc::now();
    let inc = incident("inc_again", "Journalsystemet", 7, now);
    let wire = nisvakt_bus::convert::incident_to_pb(&inc);
    let stage1 = stage_one(&wire);
    let due_at = nisvakt_bus::clock::from_timestamp(&stage1.due_at.unwrap_or_default())
        .expect("stage 1 has a due time");
    let due = firing("inc_again", &stage1, pb::FiringKind::Due, due_at);

    // Each event twice, under two message ids: what a redelivery after the
    // broker's duplicate window looks like.
    h.publish_incident(&inc, "snap-again-1").await?;
    h.publish_firing(&due, "fire-again-1").await?;
    h.wait_idle(topology::INCIDENTS, "notifier-incidents", T)
        .await?;
    h.wait_idle(topology::DEADLINES, "notifier-firings", T)
        .await?;
    let first = h.smtp.messages().len();
    assert!(first > 0);
    h.publish_incident(&inc, "snap-again-1-redelivered").await?;
    h.publish_firing(&due, "fire-again-1-redelivered").await?;
    h.wait_idle(topology::INCIDENTS, "notifier-incidents", T)
        .await?;
    h.wait_idle(topology::DEADLINES, "notifier-firings", T)
        .await?;

    let mails = h.smtp.messages();
    assert_eq!(mails.len(), first, "no second mail");
    let due_id = alert_for_firing(&due, "due");
    assert_eq!(
        h.mails_to(SECURITY)
            .iter()
            .filter(|m| alert_id_of(m) == due_id)
            .count(),
        1
    );
    let raised = h
        .collect(
            topology::ALERTS,
            "nis.v1.alert.*.raised",
            100,
            Duration::from_secs(2),
        )
        .await?;
    let ids: BTreeSet<String> = mails.iter().map(alert_id_of).collect();
    assert_eq!(raised.len(), ids.len(), "one `raised` per alert");
    Ok(())
}
