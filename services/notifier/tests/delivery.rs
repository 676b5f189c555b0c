//! Delivery end to end over real loopback receivers: the routing picks the
//! recipients, the templates write the alert, and the SMTP and webhook
//! channels deliver it to the testkit's SMTP server and HTTP receiver.
//!
//! No NATS here: the service loop around these parts is tested elsewhere.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use nisvakt_notifier::{
    deliver::{
        Attempt, Channel, DeliveryError, EmailChannel, RetryPolicy, WebhookChannel,
        deliver_with_retry,
    },
    render::{AlertReason, Lang, render},
    routing::Routing,
};
use nisvakt_proto::v1::{
    Alert, Assessment, Category, CriterionResult, Deadline, DeadlineStatus, DeliveryOutcome,
    Incident, IncidentFlags, IncidentStatus, Recipient,
};
use nisvakt_testkit::{smtp::SmtpReceiver, webhook::WebhookReceiver};
use prost_types::Timestamp;
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "delat-hemligt-värde";

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Timestamp {
    let t: DateTime<Utc> = Utc
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid test time");
    Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

/// A routing with one unit manager, e-mail for people and two webhooks
/// on the given receiver.
fn routing(webhook_base: &str) -> Routing {
    let text = format!(
        r#"
[webhooks.integration]
url = "{webhook_base}/hook"
format = "json"
secret_env = "NISVAKT_TEST_WEBHOOK_SECRET"

[webhooks.teams]
url = "{webhook_base}/teams"
format = "teams"

[roles.intraservice_desk]
name = "Intraservice support"
email = "support.intraservice@intraservice.goteborg.se"

[roles.manager]
name = "Chef (standard)"
email = "chef@example.invalid"

[roles.manager.units."Hemsjukvården Väster"]
name = "Enhetschef Hemsjukvården Väster"
email = "chef.vaster@example.invalid"

[roles.nis_assessor]
name = "NIS-bedömare"
email = "nis-bedomare@example.invalid"

[roles.security_unit]
name = "Säkerhetsenheten"
email = "sakerhet@aldrevardomsorg.goteborg.se"
webhooks = ["integration"]

[roles.on_call]
name = "Tjänsteman i beredskap"
webhooks = ["teams"]

[[escalation.suspected_nis]]
roles = ["intraservice_desk", "manager"]
[[escalation.needs_assessment]]
roles = ["manager", "nis_assessor"]
[[escalation.reportable]]
roles = ["nis_assessor", "security_unit", "manager"]
ack_within = "30m"
[[escalation.reportable]]
roles = ["nis_assessor", "security_unit", "manager", "on_call"]
[[escalation.warning]]
roles = ["nis_assessor", "manager"]
[[escalation.due]]
roles = ["nis_assessor", "manager", "security_unit"]
[[escalation.overdue]]
roles = ["nis_assessor", "manager", "security_unit", "on_call"]
[[escalation.watchdog]]
roles = ["security_unit", "on_call"]
"#
    );
    Routing::from_toml_str_with_env(&text, |name| {
        (name == "NISVAKT_TEST_WEBHOOK_SECRET").then(|| SECRET.to_owned())
    })
    .expect("the test routing is valid")
}

fn deadline(duty: &str, stage: &str, label: &str, due: Option<Timestamp>) -> Deadline {
    let (channel, instructions) = match duty {
        "nis" => (
            "IRON, Myndigheten för samhällsskydd och beredskaps webbverktyg (iron.msb.se)",
            "Rapportera i IRON (iron.msb.se). Behöver ni stöd: ring CERT-SE på 010-240 40 40.\n\
             Om IRON inte går att använda: skicka rapporten som rekommenderat brev till\n\
             Myndigheten för samhällsskydd och beredskap, CERT-SE, Box 6081, 171 06 Solna,\n\
             ej för utlämning. Lägg rapporten i ett separat förslutet kuvert inuti \
             försändelsekuvertet (kuvert i kuvert).",
        ),
        "personal_data" => (
            "IMY:s e-tjänst; om den inte fungerar: blankett per post till IMY, Box 8114, 104 20 Stockholm",
            "",
        ),
        "lex_maria" => ("IVO:s e-tjänst", "Anmäl snarast."),
        _ => (
            "Säkerhetspolisen: sakerhetsskydd@sakerhetspolisen.se eller 010-568 70 00",
            "Skicka aldrig säkerhetsskyddsklassificerade uppgifter med vanlig e-post.",
        ),
    };
    Deadline {
        id: format!("inc_01JDELIVERYTEST.seed-routine.{duty}.{stage}"),
        rule_set: "seed-routine".into(),
        duty: duty.into(),
        stage: stage.into(),
        label_sv: label.into(),
        label_en: label.replace("Skede", "Stage"),
        due_at: due,
        anchor: "identified".into(),
        anchor_at: Some(at(2026, 3, 29, 6, 5)),
        status: DeadlineStatus::Pending as i32,
        channel_sv: channel.into(),
        instructions_sv: instructions.into(),
        certainty: if duty == "lex_maria" {
            "reported".into()
        } else {
            "confirmed".into()
        },
        ..Deadline::default()
    }
}

/// A reportable incident identified on the morning the clocks went
/// forward (2026-03-29, 01:00 UTC).
fn incident() -> Incident {
    Incident {
        id: "inc_01JDELIVERYTEST".into(),
        status: IncidentStatus::Open as i32,
        system: "Journalsystemet".into(),
        category: Category::RecordSystem as i32,
        units: vec!["Hemsjukvården Väster".into()],
        ticket_count: 3,
        disruption_started_at: Some(at(2026, 3, 29, 0, 5)),
        flags: Some(IncidentFlags {
            suspected_nis: true,
            ..IncidentFlags::default()
        }),
        assessments: vec![Assessment {
            rule_set: "seed-routine".into(),
            rule_set_version: "2024.1".into(),
            reportable: true,
            identified_at: Some(at(2026, 3, 29, 6, 5)),
            criteria: vec![CriterionResult {
                id: "system_disrupted_6h".into(),
                met: true,
                met_at: Some(at(2026, 3, 29, 6, 5)),
                reason: "disrupted since 2026-03-29T00:05Z; 6 h reached".into(),
                reason_sv: "störd sedan 2026-03-29 01:05 (CET); 6h uppnått".into(),
            }],
            ..Assessment::default()
        }],
        deadlines: vec![
            deadline("nis", "1", "Skede 1", Some(at(2026, 3, 29, 12, 5))),
            deadline("nis", "2", "Skede 2", Some(at(2026, 3, 30, 6, 5))),
            deadline("nis", "3", "Skede 3", None),
            deadline("personal_data", "1", "Anmälan", Some(at(2026, 4, 1, 6, 5))),
            deadline("lex_maria", "1", "Anmälan", None),
            deadline("security_protection", "1", "Rapport", None),
        ],
        ..Incident::default()
    }
}

/// The alert the service loop would build for `reason` at level 0.
fn alert(reason: AlertReason, incident: &Incident, recipients: Vec<Recipient>) -> Alert {
    let sv = render(reason, incident, None, Lang::Sv);
    let en = render(reason, incident, None, Lang::En);
    Alert {
        id: format!("alt_{}_{}", incident.id, reason),
        incident_id: incident.id.clone(),
        reason: reason.as_str().into(),
        severity: reason.severity() as i32,
        level: 0,
        recipients,
        title_sv: sv.title,
        body_sv: sv.body,
        title_en: en.title,
        body_en: en.body,
        raised_at: Some(at(2026, 3, 29, 6, 6)),
        dedup_key: format!("{}:{}:rev7", incident.id, reason),
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
    }
}

/// Delivers with retries and returns the result and every attempt.
async fn deliver(
    channel: &dyn Channel,
    alert: &Alert,
    recipient: &Recipient,
) -> (Result<u32, DeliveryError>, Vec<Attempt>) {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let result = deliver_with_retry(channel, alert, recipient, &fast_retries(), |attempt| {
        attempts.lock().expect("lock").push(attempt);
        std::future::ready(())
    })
    .await;
    let attempts = attempts.lock().expect("lock").clone();
    (result, attempts)
}

fn outcomes(attempts: &[Attempt]) -> Vec<DeliveryOutcome> {
    attempts.iter().map(Attempt::delivery_outcome).collect()
}

fn webhook_recipient(routing: &Routing, reason: AlertReason, level: u32, hook: &str) -> Recipient {
    routing
        .recipients(reason, None, level)
        .into_iter()
        .find(|r| r.webhook == hook)
        .expect("the routing sends this reason to the webhook")
}

#[tokio::test]
async fn a_reportable_alert_reaches_every_mailbox_with_local_deadlines_and_the_playbook() {
    let smtp = SmtpReceiver::start().await.expect("SMTP receiver");
    let routing = routing("http://127.0.0.1:9");
    let incident = incident();
    let recipients: Vec<Recipient> = routing
        .recipients(AlertReason::Reportable, Some("Hemsjukvården Väster"), 0)
        .into_iter()
        .filter(|r| !r.email.is_empty())
        .collect();
    let alert = alert(AlertReason::Reportable, &incident, recipients.clone());
    let channel = EmailChannel::new(
        &smtp.url(),
        "nisvakt <nisvakt@example.invalid>",
        Duration::from_secs(5),
    )
    .expect("email channel");

    for recipient in &recipients {
        let (result, attempts) = deliver(&channel, &alert, recipient).await;
        assert_eq!(result, Ok(1), "{recipient:?}");
        assert_eq!(outcomes(&attempts), [DeliveryOutcome::Delivered]);
    }

    let mails = smtp.wait_for(3, WAIT).await.expect("three mails");
    let mut to: Vec<&str> = mails.iter().map(|m| m.rcpt_to[0].as_str()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "chef.vaster@example.invalid",
            "nis-bedomare@example.invalid",
            "sakerhet@aldrevardomsorg.goteborg.se",
        ]
    );
    for mail in &mails {
        assert_eq!(mail.rcpt_to.len(), 1, "one message per recipient");
        assert_eq!(mail.mail_from, "nisvakt@example.invalid");
        assert_eq!(
            mail.subject,
            "RAPPORTERINGSPLIKTIG NIS-incident: Journalsystemet – Skede 1 senast 2026-03-29 14:05 (CEST)"
        );
        let body = &mail.body;
        for expected in [
            // Deadlines in Swedish local time, across the change to summer time.
            "Störningen började: 2026-03-29 01:05 (CET)",
            "Skede 1 – NIS-incidentrapport – senast 2026-03-29 14:05 (CEST)",
            "Skede 2 – NIS-incidentrapport – senast 2026-03-30 08:05 (CEST)",
            "Skede 3 – NIS-incidentrapport – frist ännu inte fastställd",
            // The playbook, from the rule set.
            "Rapportera i IRON (iron.msb.se)",
            "ring CERT-SE på 010-240 40 40",
            "Box 6081, 171 06 Solna",
            "(kuvert i kuvert)",
            // Every parallel duty with its own deadline and channel.
            "personuppgiftsincident (IMY) – senast 2026-04-01 08:05 (CEST)",
            "IMY, Box 8114, 104 20 Stockholm",
            "lex Maria (IVO) – frist ännu inte fastställd",
            "Anmäl snarast.",
            "säkerhetsskydd (Säkerhetspolisen)",
            "sakerhetsskydd@sakerhetspolisen.se",
            // Rule set, version and a visible mark on what is not confirmed.
            "Regelverk: seed-routine 2024.1 [ej bekräftad",
            "seed-routine version 2024.1: rapporteringspliktig sedan 2026-03-29 08:05 (CEST)",
            // English follows the Swedish.
            "REPORTABLE NIS incident: Journalsystemet – Stage 1 by 2026-03-29 14:05 (CEST)",
        ] {
            assert!(body.contains(expected), "missing {expected:?} in\n{body}");
        }
        assert!(
            body.find("Gör detta nu") < body.find("Do this now"),
            "Swedish first"
        );
        assert_eq!(mail.header("X-Nisvakt-Reason"), Some("reportable"));
    }
}

#[tokio::test]
async fn an_smtp_refusal_is_permanent_and_a_busy_relay_is_tried_again() {
    let smtp = SmtpReceiver::start().await.expect("SMTP receiver");
    let routing = routing("http://127.0.0.1:9");
    let incident = incident();
    let recipient = routing.recipients(AlertReason::SuspectedNis, None, 0)[0].clone();
    let alert = alert(
        AlertReason::SuspectedNis,
        &incident,
        vec![recipient.clone()],
    );
    let channel = EmailChannel::new(
        &smtp.url(),
        "nisvakt@example.invalid",
        Duration::from_secs(5),
    )
    .expect("email channel");

    smtp.refuse_next_recipients(1, 550);
    let (result, attempts) = deliver(&channel, &alert, &recipient).await;
    assert!(result.is_err_and(|e| e.is_permanent()));
    assert_eq!(outcomes(&attempts), [DeliveryOutcome::Failed]);

    smtp.refuse_next_recipients(1, 451);
    let (result, attempts) = deliver(&channel, &alert, &recipient).await;
    assert_eq!(result, Ok(2));
    assert_eq!(
        outcomes(&attempts),
        [DeliveryOutcome::Retrying, DeliveryOutcome::Delivered]
    );
    let mails = smtp.wait_for(1, WAIT).await.expect("one mail");
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject,
        "Eventuell NIS-incident: Journalsystemet (Hemsjukvården Väster)"
    );
}

#[tokio::test]
async fn the_relay_url_carries_credentials_for_smtp_auth() {
    let smtp = SmtpReceiver::start().await.expect("SMTP receiver");
    let url = format!("smtp://nisvakt:hemligt%21@{}", smtp.addr());
    let routing = routing("http://127.0.0.1:9");
    let recipient = routing.recipients(AlertReason::NeedsAssessment, None, 0)[0].clone();
    let alert = alert(
        AlertReason::NeedsAssessment,
        &incident(),
        vec![recipient.clone()],
    );
    let channel = EmailChannel::new(&url, "nisvakt@example.invalid", Duration::from_secs(5))
        .expect("email channel");

    let (result, _) = deliver(&channel, &alert, &recipient).await;
    assert_eq!(result, Ok(1));
    let mails = smtp.wait_for(1, WAIT).await.expect("one mail");
    assert_eq!(mails[0].auth_user.as_deref(), Some("nisvakt"));
    assert_eq!(
        mails[0].subject,
        "Bedömning behövs: Journalsystemet (Hemsjukvården Väster)"
    );
}

#[tokio::test]
async fn a_webhook_that_fails_twice_gets_exactly_one_signed_delivery_after_three_attempts() {
    let receiver = WebhookReceiver::start().await.expect("webhook receiver");
    receiver.fail_next(2);
    let routing = routing(&receiver.url(""));
    let channel = WebhookChannel::new(&routing, Duration::from_secs(5)).expect("webhook channel");
    let incident = incident();
    let recipient = webhook_recipient(&routing, AlertReason::Watchdog, 0, "integration");
    let alert = alert(AlertReason::Watchdog, &incident, vec![recipient.clone()]);

    let (result, attempts) = deliver(&channel, &alert, &recipient).await;

    assert_eq!(result, Ok(3));
    assert_eq!(
        outcomes(&attempts),
        [
            DeliveryOutcome::Retrying,
            DeliveryOutcome::Retrying,
            DeliveryOutcome::Delivered
        ]
    );
    let requests = receiver.wait_for(3, WAIT).await.expect("three requests");
    assert_eq!(requests.len(), 3);
    let delivered = receiver.successes();
    assert_eq!(delivered.len(), 1, "exactly one successful delivery");
    let request = &delivered[0];
    assert_eq!(request.uri.path(), "/hook");

    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("HMAC key");
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        request.header("x-nisvakt-signature"),
        Some(expected.as_str())
    );
    assert_eq!(
        request.header("idempotency-key"),
        Some(format!("{}:0:integration", alert.id).as_str())
    );
    // Every attempt carries the same body and signature.
    assert!(requests.iter().all(|r| r.body == request.body));

    let json: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(json["alert_id"], alert.id.as_str());
    assert_eq!(json["reason"], "watchdog");
    assert_eq!(json["severity"], "critical");
    assert_eq!(json["title_sv"], alert.title_sv.as_str());
    assert_eq!(json["recipient"]["role"], "security_unit");
    assert_eq!(json["raised_at"], "2026-03-29T06:06:00+00:00");
}

#[tokio::test]
async fn a_teams_webhook_gets_an_adaptive_card_without_a_signature() {
    let receiver = WebhookReceiver::start().await.expect("webhook receiver");
    let routing = routing(&receiver.url(""));
    let channel = WebhookChannel::new(&routing, Duration::from_secs(5)).expect("webhook channel");
    let incident = incident();
    let recipient = webhook_recipient(&routing, AlertReason::Reportable, 1, "teams");
    let alert = alert(AlertReason::Reportable, &incident, vec![recipient.clone()]);

    let (result, _) = deliver(&channel, &alert, &recipient).await;
    assert_eq!(result, Ok(1));

    let requests = receiver.wait_for(1, WAIT).await.expect("one request");
    let request = &requests[0];
    assert_eq!(request.uri.path(), "/teams");
    assert!(request.header("x-nisvakt-signature").is_none());
    assert!(
        request
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let card: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON card");
    assert_eq!(card["type"], "message");
    let attachment = &card["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let content = &attachment["content"];
    assert_eq!(content["type"], "AdaptiveCard");
    assert_eq!(content["version"], "1.4");
    assert_eq!(content["body"][0]["type"], "TextBlock");
    assert_eq!(content["body"][0]["text"], alert.title_sv.as_str());
    let texts: Vec<&str> = content["body"]
        .as_array()
        .expect("body blocks")
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("senast 2026-03-29 14:05 (CEST)"))
    );
    assert!(texts.iter().any(|t| t.contains("kuvert i kuvert")));
    assert_eq!(content["actions"][0]["type"], "Action.ShowCard");
    assert_eq!(
        content["actions"][0]["card"]["body"][0]["text"],
        alert.title_en.as_str()
    );
}

#[tokio::test]
async fn a_permanent_400_is_not_retried() {
    let receiver = WebhookReceiver::start().await.expect("webhook receiver");
    receiver.respond_next(5, axum_status(400));
    let routing = routing(&receiver.url(""));
    let channel = WebhookChannel::new(&routing, Duration::from_secs(5)).expect("webhook channel");
    let incident = incident();
    let recipient = webhook_recipient(&routing, AlertReason::Watchdog, 0, "integration");
    let alert = alert(AlertReason::Watchdog, &incident, vec![recipient.clone()]);

    let (result, attempts) = deliver(&channel, &alert, &recipient).await;

    assert!(result.is_err_and(|e| e.is_permanent()));
    assert_eq!(outcomes(&attempts), [DeliveryOutcome::Failed]);
    assert!(
        attempts[0]
            .error
            .as_ref()
            .is_some_and(|e| e.to_string().contains("HTTP 400"))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.requests().len(), 1, "no second attempt");
}

#[tokio::test]
async fn a_429_is_transient_and_retried() {
    let receiver = WebhookReceiver::start().await.expect("webhook receiver");
    receiver.respond_next(1, axum_status(429));
    let routing = routing(&receiver.url(""));
    let channel = WebhookChannel::new(&routing, Duration::from_secs(5)).expect("webhook channel");
    let recipient = webhook_recipient(&routing, AlertReason::Watchdog, 0, "integration");
    let alert = alert(AlertReason::Watchdog, &incident(), vec![recipient.clone()]);

    let (result, _) = deliver(&channel, &alert, &recipient).await;
    assert_eq!(result, Ok(2));
    assert_eq!(receiver.successes().len(), 1);
}

fn axum_status(code: u16) -> reqwest::StatusCode {
    reqwest::StatusCode::from_u16(code).expect("a valid status")
}
