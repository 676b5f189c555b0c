//! The notifier under test: a real nats-server, the real notifier binary
//! (and the real deadline-timer where escalation clocks are involved), a
//! loopback SMTP receiver and a webhook receiver, and a routing file
//! written for the test. Incidents are folded by the real domain core with
//! the shipped seed rule set, stored in `nis_incidents` as the classifier
//! stores them, and published as snapshots with the bus `Publisher`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer::pull};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use nisvakt_bus::{Publisher, SystemClock, TraceContext, subjects, topology};
use nisvakt_domain::incident::{Fact, Incident, IncidentId};
use nisvakt_domain::text::Lexicon;
use nisvakt_domain::ticket::{Ticket, TicketStatus};
use nisvakt_notifier::service::AlertState;
use nisvakt_proto::v1 as pb;
use nisvakt_testkit::smtp::{ReceivedMail, SmtpReceiver};
use nisvakt_testkit::webhook::WebhookReceiver;
use nisvakt_testkit::{NatsServer, ServiceProcess, free_port, workspace_root};

/// The unit of the test incidents; it has its own manager in the routing.
pub const UNIT: &str = "Hemsjukvården Centrum";
/// That unit's manager.
pub const UNIT_MANAGER: &str = "chef.centrum@test.invalid";
/// The default manager (for units without their own).
pub const DEFAULT_MANAGER: &str = "chef@test.invalid";
/// The Intraservice duty desk.
pub const DESK: &str = "desk@test.invalid";
/// The NIS assessors.
pub const ASSESSOR: &str = "nis@test.invalid";
/// The security unit.
pub const SECURITY: &str = "sakerhet@test.invalid";
/// On call.
pub const ON_CALL: &str = "beredskap@test.invalid";

/// A routing file: the roles of DOMAIN.md with test mailboxes, the desk
/// also on the webhook `ops`, and each first level waiting `ack_within`.
pub fn routing(webhook_url: &str, ack_within: &str) -> String {
    format!(
        r#"
[webhooks.ops]
url = "{webhook_url}"
format = "json"

[roles.intraservice_desk]
name = "Intraservice support"
email = ["{DESK}"]
webhooks = ["ops"]

[roles.manager]
name = "Närmaste chef (förvald)"
email = ["{DEFAULT_MANAGER}"]

[roles.manager.units."{UNIT}"]
name = "Enhetschef {UNIT}"
email = ["{UNIT_MANAGER}"]

[roles.nis_assessor]
name = "NIS-bedömare"
email = ["{ASSESSOR}"]

[roles.security_unit]
name = "Säkerhetsenheten"
email = ["{SECURITY}"]

[roles.on_call]
name = "Tjänsteman i beredskap"
email = ["{ON_CALL}"]

[[escalation.suspected_nis]]
roles = ["intraservice_desk", "manager"]
ack_within = "{ack_within}"
[[escalation.suspected_nis]]
roles = ["intraservice_desk", "manager", "nis_assessor", "on_call"]

[[escalation.needs_assessment]]
roles = ["manager", "nis_assessor"]
ack_within = "{ack_within}"
[[escalation.needs_assessment]]
roles = ["manager", "nis_assessor", "security_unit", "on_call"]

[[escalation.reportable]]
roles = ["nis_assessor", "security_unit", "manager"]
ack_within = "{ack_within}"
[[escalation.reportable]]
roles = ["nis_assessor", "security_unit", "manager", "on_call"]

[[escalation.warning]]
roles = ["nis_assessor", "manager"]
ack_within = "{ack_within}"
[[escalation.warning]]
roles = ["nis_assessor", "manager", "security_unit", "on_call"]

[[escalation.due]]
roles = ["nis_assessor", "manager", "security_unit"]
ack_within = "{ack_within}"
[[escalation.due]]
roles = ["nis_assessor", "manager", "security_unit", "on_call"]

[[escalation.overdue]]
roles = ["nis_assessor", "manager", "security_unit", "on_call"]

[[escalation.watchdog]]
roles = ["security_unit", "on_call"]
"#
    )
}

/// Options of one harness.
pub struct Options {
    /// `ack_within` of every first level.
    pub ack_within: &'static str,
    /// Run the deadline-timer too (escalation clocks).
    pub with_timer: bool,
    /// `NISVAKT_DELIVERY_BASE_DELAY_MS`.
    pub base_delay_ms: u64,
    /// `NISVAKT_DELIVERY_ATTEMPTS`.
    pub attempts: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ack_within: "1h",
            with_timer: false,
            base_delay_ms: 50,
            attempts: 4,
        }
    }
}

/// Everything running.
pub struct Harness {
    pub nats: NatsServer,
    pub notifier: ServiceProcess,
    pub timer: Option<ServiceProcess>,
    pub smtp: SmtpReceiver,
    pub webhook: WebhookReceiver,
    pub js: jetstream::Context,
    pub publisher: Publisher,
    pub alerts: jetstream::kv::Store,
    pub incidents: jetstream::kv::Store,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(options: Options) -> anyhow::Result<Harness> {
        let nats = NatsServer::start().await?;
        let client = nats.client().await?;
        let js = jetstream::new(client);
        topology::ensure(&js).await?;
        let alerts = topology::bucket_or_create(&js, topology::BUCKET_ALERTS).await?;
        let incidents = topology::bucket_or_create(&js, topology::BUCKET_INCIDENTS).await?;
        let smtp = SmtpReceiver::start().await?;
        let webhook = WebhookReceiver::start().await?;
        let dir = tempfile::tempdir()?;
        let routing_file = dir.path().join("routing.toml");
        std::fs::write(
            &routing_file,
            routing(&webhook.url("/ops"), options.ack_within),
        )?;
        let env = |extra: Vec<(&'static str, String)>| {
            let mut env = vec![
                ("NATS_URL", nats.url()),
                ("NISVAKT_ADMIN_ADDR", format!("127.0.0.1:{}", free_port())),
            ];
            env.extend(extra);
            env
        };
        let timer = if options.with_timer {
            Some(ServiceProcess::start(
                "nisvakt-deadline-timer",
                &env(vec![]),
            )?)
        } else {
            None
        };
        let notifier = ServiceProcess::start(
            "nisvakt-notifier",
            &env(vec![
                ("NISVAKT_ROUTING", routing_file.display().to_string()),
                ("NISVAKT_SMTP_URL", smtp.url()),
                ("NISVAKT_SMTP_FROM", "nisvakt <nisvakt@test.invalid>".into()),
                ("NISVAKT_DELIVERY_TIMEOUT_SECS", "5".into()),
                ("NISVAKT_DELIVERY_ATTEMPTS", options.attempts.to_string()),
                (
                    "NISVAKT_DELIVERY_BASE_DELAY_MS",
                    options.base_delay_ms.to_string(),
                ),
            ]),
        )?;
        let publisher = Publisher::new(js.clone(), "test", Arc::new(SystemClock));
        let h = Harness {
            nats,
            notifier,
            timer,
            smtp,
            webhook,
            js,
            publisher,
            alerts,
            incidents,
            _dir: dir,
        };
        h.wait_for_consumer(topology::INCIDENTS, "notifier-incidents")
            .await?;
        h.wait_for_consumer(topology::COMMANDS, "notifier-acks")
            .await?;
        if h.timer.is_some() {
            h.wait_for_consumer(topology::COMMANDS, "deadline-timer-commands")
                .await?;
            h.wait_for_consumer(topology::TIMERS, "deadline-timer-firings")
                .await?;
        }
        Ok(h)
    }

    /// Waits until a durable consumer exists (the service is up).
    pub async fn wait_for_consumer(&self, stream: &str, durable: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(s) = self.js.get_stream(stream).await
                && s.consumer_info(durable).await.is_ok()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "consumer {durable} on {stream} not there in 30 s:\n{}",
                    self.notifier.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a consumer has nothing pending and nothing unacked.
    pub async fn wait_idle(
        &self,
        stream: &str,
        durable: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut quiet = 0;
        loop {
            let s = self.js.get_stream(stream).await?;
            let info = s.consumer_info(durable).await?;
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                quiet += 1;
                if quiet >= 3 {
                    return Ok(());
                }
            } else {
                quiet = 0;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{durable} still busy after {timeout:?}: {} pending, {} unacked",
                    info.num_pending,
                    info.num_ack_pending
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stores the incident as the classifier does and publishes its
    /// snapshot as `IncidentAssessed` with the given message id.
    pub async fn publish_incident(&self, incident: &Incident, msg_id: &str) -> anyhow::Result<()> {
        self.store_incident(incident).await?;
        let pb = nisvakt_bus::convert::incident_to_pb(incident);
        self.publish_snapshot(&pb, msg_id).await
    }

    /// Writes the projection to `nis_incidents` (what firings are rendered from).
    pub async fn store_incident(&self, incident: &Incident) -> anyhow::Result<()> {
        let json = serde_json::to_vec(incident)?;
        self.incidents
            .put(subjects::token(incident.id.as_str()), json.into())
            .await
            .context("storing the incident")?;
        Ok(())
    }

    /// Publishes a wire snapshot as `IncidentAssessed`.
    pub async fn publish_snapshot(
        &self,
        incident: &pb::Incident,
        msg_id: &str,
    ) -> anyhow::Result<()> {
        self.publisher
            .publish(
                subjects::incident(&incident.id, "assessed"),
                msg_id,
                &pb::IncidentAssessed {
                    incident: Some(incident.clone()),
                    became_reportable: Vec::new(),
                    cause: "ticket".into(),
                },
                &TraceContext::new_root(),
            )
            .await?;
        Ok(())
    }

    /// Acknowledges an alert as an operator would.
    pub async fn ack(&self, alert_id: &str, by: &str) -> anyhow::Result<()> {
        self.publisher
            .publish(
                subjects::alert_ack(alert_id),
                &format!("cmd:ack:{alert_id}"),
                &pb::AcknowledgeAlert {
                    command_id: ulid::Ulid::generate().to_string(),
                    alert_id: alert_id.to_string(),
                    acked_by: by.to_string(),
                    note: "Vi tar det.".into(),
                    issued_at: None,
                },
                &TraceContext::new_root(),
            )
            .await?;
        Ok(())
    }

    /// An alert's stored state.
    pub async fn alert_state(&self, alert_id: &str) -> anyhow::Result<Option<AlertState>> {
        Ok(
            nisvakt_bus::kv::read::<AlertState>(&self.alerts, &format!("a.{alert_id}"))
                .await?
                .value,
        )
    }

    /// Waits until the alert's state satisfies `ok`.
    pub async fn wait_state(
        &self,
        alert_id: &str,
        timeout: Duration,
        ok: impl Fn(&AlertState) -> bool,
    ) -> anyhow::Result<AlertState> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.alert_state(alert_id).await?
                && ok(&s)
            {
                return Ok(s);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "alert {alert_id} not in the awaited state after {timeout:?}: {:?}",
                    self.alert_state(alert_id).await?
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every message on `filter` in `stream`, read from the start until
    /// `want` or the timeout.
    pub async fn collect(
        &self,
        stream: &str,
        filter: &str,
        want: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<jetstream::Message>> {
        let s = self.js.get_stream(stream).await?;
        let consumer = s
            .create_consumer(pull::Config {
                filter_subject: filter.to_string(),
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await?;
        let mut msgs = consumer.messages().await?;
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < want {
            match tokio::time::timeout_at(deadline, msgs.next()).await {
                Ok(Some(Ok(m))) => out.push(m),
                Ok(Some(Err(e))) => bail!("reading {stream}: {e}"),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(out)
    }

    /// The mails received so far for `address`.
    pub fn mails_to(&self, address: &str) -> Vec<ReceivedMail> {
        mails_to(&self.smtp.messages(), address)
    }

    /// Waits until a mail for `address` satisfies `ok`.
    pub async fn wait_mail(
        &self,
        address: &str,
        timeout: Duration,
        ok: impl Fn(&ReceivedMail) -> bool,
    ) -> anyhow::Result<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(m) = self.mails_to(address).into_iter().find(|m| ok(m)) {
                return Ok(m);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "no such mail to {address} in {timeout:?}; got subjects {:?}\n{}",
                    self.mails_to(address)
                        .iter()
                        .map(|m| m.subject.clone())
                        .collect::<Vec<_>>(),
                    self.notifier.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The mails among `all` addressed to `address` (envelope).
pub fn mails_to(all: &[ReceivedMail], address: &str) -> Vec<ReceivedMail> {
    all.iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(address)))
        .cloned()
        .collect()
}

/// A header of a received mail, decoded as plain text.
pub fn mail_header(m: &ReceivedMail, name: &str) -> String {
    m.header(name).unwrap_or_default().trim().to_string()
}

/// The shipped seed rule set, read from `rules/` as the classifier does.
pub fn seed_rules() -> Vec<nisvakt_domain::rules::RuleSet> {
    let file = workspace_root().join("rules/seed-routine.toml");
    vec![nisvakt_domain::rules::load_file(&file).expect("the shipped seed rule set loads")]
}

/// A ticket about `system` at `unit`, disrupted since `started`, with the
/// "Eventuell NIS-incident" subject and care blocked.
pub fn ticket(id: &str, system: &str, started: DateTime<Utc>) -> Ticket {
    Ticket {
        source: "intraservice".into(),
        ticket_id: id.into(),
        revision: 1,
        subject: format!("Eventuell NIS-incident: {system} går inte att nå"),
        description: Some("Ingen på enheten kommer åt systemet.".into()),
        reported_at: started,
        unit: Some(UNIT.into()),
        reporter_ref: None,
        system: Some(system.into()),
        category: None,
        disruption_started_at: started,
        disruption_ended_at: None,
        care_blocked: Some(true),
        patient_harm: None,
        status: TicketStatus::Open,
        identifiers_masked: 0,
    }
}

/// An incident folded by the domain core under the seed routine from one
/// ticket whose disruption began `hours_ago` (7 h: reportable under
/// `system_disrupted_6h`).
pub fn incident(id: &str, system: &str, hours_ago: i64, now: DateTime<Utc>) -> Incident {
    let mut inc = Incident::open(IncidentId::parse(id).expect("a valid incident id"), now);
    let fact = Fact::Ticket {
        receipt_id: format!("rcpt-{id}"),
        ticket: ticket(
            &format!("T-{id}"),
            system,
            now - chrono::Duration::hours(hours_ago),
        ),
        accepted_at: now,
    };
    inc.apply(&fact, &seed_rules(), &Lexicon::default_sv(), now);
    inc
}

/// A wire incident that is only suspected ("Eventuell NIS-incident"),
/// reported by [`UNIT`].
pub fn suspected(id: &str) -> pb::Incident {
    pb::Incident {
        id: id.into(),
        status: pb::IncidentStatus::Open as i32,
        system: "Planeringssystemet".into(),
        units: vec![UNIT.into()],
        ticket_count: 1,
        revision: 1,
        flags: Some(pb::IncidentFlags {
            suspected_nis: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The alert id the notifier gives an incident's alert for `reason`.
pub fn alert_for(incident_id: &str, reason: &str) -> String {
    nisvakt_notifier::service::alert_id(&format!("{incident_id}:{reason}"))
}

/// The seed routine's NIS stage 1 deadline of a wire incident.
pub fn stage_one(incident: &pb::Incident) -> pb::Deadline {
    incident
        .deadlines
        .iter()
        .find(|d| d.rule_set == "seed-routine" && d.duty == "nis" && d.stage == "1")
        .cloned()
        .expect("a reportable incident has a stage 1 deadline")
}

/// A firing of `deadline` as the deadline-timer publishes it: `kind` is
/// `warning`, `due` or `overdue`, meant for `intended`.
pub fn firing(
    incident_id: &str,
    deadline: &pb::Deadline,
    kind: pb::FiringKind,
    intended: DateTime<Utc>,
) -> pb::Firing {
    pb::Firing {
        timer: Some(pb::Timer {
            id: format!("dl-{}", deadline.id),
            kind: pb::TimerKind::Deadline as i32,
            incident_id: incident_id.into(),
            rule_set: deadline.rule_set.clone(),
            deadline: Some(deadline.clone()),
            due_at: deadline.due_at,
            generation: 1,
            ..Default::default()
        }),
        kind: kind as i32,
        sequence: 0,
        intended_at: Some(nisvakt_bus::clock::to_timestamp(intended)),
        fired_at: Some(nisvakt_bus::clock::to_timestamp(intended)),
        lateness_ms: 0,
        late: false,
    }
}

/// The alert id the notifier gives a deadline firing.
pub fn alert_for_firing(f: &pb::Firing, kind: &str) -> String {
    let timer = f.timer.clone().unwrap_or_default();
    let intended = f.intended_at.map(|t| t.seconds).unwrap_or_default();
    nisvakt_notifier::service::alert_id(&format!(
        "{}:{kind}:{}:{}:{intended}",
        timer.id, timer.generation, f.sequence
    ))
}

impl Harness {
    /// Publishes a firing on `nis.v1.deadline.<timer>.<kind>`.
    pub async fn publish_firing(&self, f: &pb::Firing, msg_id: &str) -> anyhow::Result<()> {
        let timer = f.timer.clone().unwrap_or_default();
        let trace = TraceContext::new_root();
        let firing = Some(f.clone());
        match f.kind() {
            pb::FiringKind::Warning => {
                self.publisher
                    .publish(
                        subjects::deadline(&timer.id, "warning"),
                        msg_id,
                        &pb::DeadlineWarning { firing },
                        &trace,
                    )
                    .await?
            }
            pb::FiringKind::Due => {
                self.publisher
                    .publish(
                        subjects::deadline(&timer.id, "due"),
                        msg_id,
                        &pb::DeadlineDue { firing },
                        &trace,
                    )
                    .await?
            }
            pb::FiringKind::Overdue => {
                self.publisher
                    .publish(
                        subjects::deadline(&timer.id, "overdue"),
                        msg_id,
                        &pb::DeadlineOverdue { firing },
                        &trace,
                    )
                    .await?
            }
            other => bail!("no firing of kind {other:?} in these tests"),
        };
        Ok(())
    }
}
