//! A ticket's whole journey over a real nats-server and the four real
//! binaries: intake → classifier → deadline-timer → notifier → alert.

mod common;

use std::time::Duration;

use common::{System, header, ticket, trace_id};
use nisvakt_proto::v1 as pb;
use prost::Message as _;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn a_posted_ticket_reaches_an_alert_with_one_trace_across_every_hop() -> anyhow::Result<()> {
    let sys = System::start().await?;
    // Seven hours of outage: reportable the moment it arrives.
    let (status, body) = sys
        .post_ticket(&ticket("T-100", "Journalsystemet", 7), Some(TRACEPARENT))
        .await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["duplicate"], false);

    let alerts = sys
        .collect(
            "NIS_ALERTS",
            "nis.v1.alert.*.raised",
            1,
            Duration::from_secs(30),
        )
        .await?;
    let alert = alerts.first().expect("an alert within 30 s");
    // CloudEvents binary mode.
    assert_eq!(header(alert, "ce-specversion"), Some("1.0"));
    assert_eq!(header(alert, "ce-type"), Some("nisvakt.v1.AlertRaised"));
    assert_eq!(header(alert, "ce-source"), Some("nisvakt/notifier"));
    assert_eq!(header(alert, "content-type"), Some("application/protobuf"));
    assert!(header(alert, "ce-id").is_some_and(|v| !v.is_empty()));
    assert!(
        header(alert, "ce-time").is_some_and(|v| chrono::DateTime::parse_from_rfc3339(v).is_ok())
    );
    assert!(header(alert, "Nats-Msg-Id").is_some());
    let raised = pb::AlertRaised::decode(alert.payload.as_ref())?;
    let a = raised.alert.expect("alert body");
    assert!(a.incident_id.starts_with("inc_"), "{a:?}");
    assert!(!a.title_sv.is_empty() && !a.body_sv.is_empty());

    // One trace id on every hop. (A hop may also carry events of its own
    // making, e.g. a reconciler's repair under a trace of its own, so each
    // hop must have the ticket's trace on at least one of its events.)
    for (stream, filter) in [
        ("NIS_TICKETS", "nis.v1.ticket.accepted"),
        ("NIS_INCIDENTS", "nis.v1.incident.*.assessed"),
        ("NIS_DEADLINES", "nis.v1.deadline.*.scheduled"),
        ("NIS_ALERTS", "nis.v1.alert.*.raised"),
    ] {
        let msgs = sys
            .collect(stream, filter, 100, Duration::from_secs(3))
            .await?;
        assert!(!msgs.is_empty(), "nothing on {filter}");
        let traces: Vec<Option<String>> = msgs.iter().map(trace_id).collect();
        assert!(
            traces.iter().any(|t| t.as_deref() == Some(TRACE_ID)),
            "no event on {filter} carries the ticket's trace: {traces:?}"
        );
    }

    // The projection is served.
    let (status, list) = sys.get_json("/v1/incidents").await?;
    assert_eq!(status, 200);
    let incidents = list["incidents"].as_array().expect("a list");
    assert_eq!(incidents.len(), 1, "{list}");
    let id = incidents[0]["id"].as_str().expect("an id");
    assert_eq!(id, a.incident_id);
    let (status, one) = sys.get_json(&format!("/v1/incidents/{id}")).await?;
    assert_eq!(status, 200);
    assert_eq!(one["ticket_count"], 1);
    assert_eq!(one["flags"]["suspected_nis"], true);
    assert_eq!(one["assessments"][0]["reportable"], true, "{one}");
    let (status, _) = sys.get_json("/v1/incidents/inc_nope").await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn a_repeated_ticket_is_a_duplicate_and_a_bad_one_names_its_fields() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let t = ticket("T-200", "Växeln", 1);
    let (s1, b1) = sys.post_ticket(&t, None).await?;
    let (s2, b2) = sys.post_ticket(&t, None).await?;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(b1["duplicate"], false);
    assert_eq!(b2["duplicate"], true);
    assert_eq!(b1["receipt_id"], b2["receipt_id"]);

    let bad = serde_json::json!({
        "source": "intraservice",
        "reported_at": "yesterday",
        "category": "printer",
        "disruption_started_at": "2026-03-01T10:00:00Z",
        "disruption_ended_at": "2026-03-01T09:00:00Z"
    });
    let (status, body) = sys.post_ticket(&bad, None).await?;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    for f in [
        "ticket_id",
        "subject",
        "reported_at",
        "category",
        "disruption_ended_at",
    ] {
        assert!(fields.contains(&f), "{f} not named in {body}");
    }
    Ok(())
}

#[tokio::test]
async fn a_classifier_killed_with_sigkill_loses_nothing_and_does_nothing_twice()
-> anyhow::Result<()> {
    let mut sys = System::start().await?;
    let (s, _) = sys
        .post_ticket(&ticket("T-300", "Journalsystemet", 7), None)
        .await?;
    assert_eq!(s, 202);
    assert_eq!(
        sys.collect(
            "NIS_ALERTS",
            "nis.v1.alert.*.raised",
            1,
            Duration::from_secs(30)
        )
        .await?
        .len(),
        1
    );

    // Down hard; a ticket is accepted while it is down.
    sys.classifier.kill();
    let (s, _) = sys
        .post_ticket(&ticket("T-301", "E-posten", 8), None)
        .await?;
    assert_eq!(s, 202);
    // And the first ticket is sent again by an impatient ticketing system.
    let (_, dup) = sys
        .post_ticket(&ticket("T-300", "Journalsystemet", 7), None)
        .await?;
    assert_eq!(dup["duplicate"], true);
    sys.classifier.restart()?;

    let opened = sys
        .collect(
            "NIS_INCIDENTS",
            "nis.v1.incident.*.opened",
            2,
            Duration::from_secs(30),
        )
        .await?;
    assert_eq!(opened.len(), 2, "both tickets opened an incident");
    // Let any redelivery settle, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sys.count("NIS_INCIDENTS", "nis.v1.incident.*.opened")
            .await?,
        2
    );
    let (_, list) = sys.get_json("/v1/incidents").await?;
    let incidents = list["incidents"].as_array().expect("list");
    assert_eq!(incidents.len(), 2, "{list}");
    for i in incidents {
        assert_eq!(i["ticket_count"], 1, "{i}");
    }
    // Each incident alerted once per reason: alert ids are unique.
    let alerts = sys
        .collect(
            "NIS_ALERTS",
            "nis.v1.alert.*.raised",
            100,
            Duration::from_secs(5),
        )
        .await?;
    let mut ids: Vec<String> = alerts
        .iter()
        .filter_map(|m| pb::AlertRaised::decode(m.payload.as_ref()).ok())
        .filter_map(|a| a.alert.map(|a| a.id))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "an alert was raised twice");
    // One "reportable" alert per incident and reportable rule set, no more.
    let reportable_verdicts: usize = incidents
        .iter()
        .map(|i| {
            i["assessments"]
                .as_array()
                .map(|a| a.iter().filter(|a| a["reportable"] == true).count())
                .unwrap_or(0)
        })
        .sum();
    let reportable_alerts = alerts
        .iter()
        .filter_map(|m| pb::AlertRaised::decode(m.payload.as_ref()).ok())
        .filter_map(|a| a.alert)
        .filter(|a| a.reason == "reportable")
        .count();
    assert!(reportable_verdicts >= 2, "{list}");
    assert_eq!(reportable_alerts, reportable_verdicts);
    Ok(())
}

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_and_the_service_keeps_going() -> anyhow::Result<()>
{
    let mut sys = System::start().await?;
    let mut h = async_nats::HeaderMap::new();
    h.insert("ce-type", "nisvakt.v1.TicketAccepted");
    h.insert("Nats-Msg-Id", "garbage-1");
    sys.js
        .publish_with_headers(
            "nis.v1.ticket.accepted",
            h,
            vec![0xff, 0xff, 0xff, 0x01].into(),
        )
        .await?
        .await?;
    let dead = sys
        .collect(
            "NIS_DEADLETTER",
            "nis.v1.deadletter.classifier.>",
            1,
            Duration::from_secs(30),
        )
        .await?;
    let d = dead.first().expect("a dead letter");
    assert_eq!(
        d.subject.as_str(),
        "nis.v1.deadletter.classifier.nis.v1.ticket.accepted"
    );
    assert!(header(d, "nisvakt-deadletter-reason").is_some_and(|r| r.contains("undecodable")));
    assert_eq!(d.payload.as_ref(), &[0xff, 0xff, 0xff, 0x01]);

    // Still working.
    assert!(sys.classifier.is_running());
    let (s, _) = sys
        .post_ticket(&ticket("T-400", "Journalsystemet", 7), None)
        .await?;
    assert_eq!(s, 202);
    let opened = sys
        .collect(
            "NIS_INCIDENTS",
            "nis.v1.incident.*.opened",
            1,
            Duration::from_secs(30),
        )
        .await?;
    assert_eq!(opened.len(), 1);
    Ok(())
}

#[tokio::test]
async fn every_service_reports_health_readiness_and_metrics_and_stops_cleanly_on_sigterm()
-> anyhow::Result<()> {
    let mut sys = System::start().await?;
    let (s, _) = sys
        .post_ticket(&ticket("T-500", "Journalsystemet", 7), None)
        .await?;
    assert_eq!(s, 202);
    sys.collect(
        "NIS_ALERTS",
        "nis.v1.alert.*.raised",
        1,
        Duration::from_secs(30),
    )
    .await?;
    for addr in sys.admin.clone() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = sys
                .http_client
                .get(format!("http://{addr}/readyz"))
                .send()
                .await;
            if r.as_ref().is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{addr} not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let health = sys
            .http_client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await?;
        assert_eq!(health.status(), 200);
        let metrics = sys
            .http_client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        assert!(metrics.contains("nisvakt_up{service="), "{addr}: {metrics}");
    }
    // The classifier handled the ticket, so its counter says so.
    let classifier_metrics = sys
        .http_client
        .get(format!("http://{}/metrics", sys.admin[1]))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        classifier_metrics
            .contains("nisvakt_messages_handled_total{consumer=\"classifier-tickets\"}"),
        "{classifier_metrics}"
    );

    // Without the broker, nothing is ready (but everything is alive).
    sys.nats.kill();
    let r = sys
        .http_client
        .get(format!("http://{}/readyz", sys.admin[0]))
        .send()
        .await?;
    assert_eq!(r.status(), 503);
    sys.nats.restart().await?;

    // SIGTERM: each service drains and exits 0.
    assert!(sys.notifier.terminate()?, "notifier exit status");
    assert!(sys.timer.terminate()?, "deadline-timer exit status");
    assert!(sys.classifier.terminate()?, "classifier exit status");
    assert!(sys.intake.terminate()?, "intake exit status");
    Ok(())
}
