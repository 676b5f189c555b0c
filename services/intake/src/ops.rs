//! What intake does, whichever door a request came through (HTTP, gRPC,
//! NATS): accept a validated ticket, persist an operator command, read the
//! incident projection and the alerts. Every write answers only after
//! JetStream confirmed it; when the broker cannot store or does not answer
//! within the persist timeout, the caller gets `Unavailable`, never a
//! receipt. Authentication is the doors' business, not this module's.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::kv::Store;
use chrono::{DateTime, Utc};
use nisvakt_bus::clock::to_timestamp;
use nisvakt_bus::{Runtime, TraceContext, convert, subjects, topology};
use nisvakt_domain::ticket::{FieldError, ValidTicket, ValidationErrors};
use nisvakt_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why an operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every bad field is named.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The incident or alert does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The broker could not persist or answer.
    #[error("cannot persist now: {0}")]
    Unavailable(String),
}

impl From<nisvakt_bus::Error> for Error {
    fn from(e: nisvakt_bus::Error) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl From<nisvakt_bus::kv::Error> for Error {
    fn from(e: nisvakt_bus::kv::Error) -> Self {
        Error::Unavailable(e.to_string())
    }
}

/// The answer to a submitted ticket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Receipt {
    /// The same for every repeat of one (source, ticket_id, revision).
    pub receipt_id: String,
    /// True when this revision was accepted before.
    pub duplicate: bool,
}

/// Intake's operations over one runtime.
#[derive(Debug, Clone)]
pub struct Intake {
    rt: Runtime,
    receipts: Store,
    incidents: Store,
    alerts: Store,
    /// Upper bound on any one broker round trip a caller waits for.
    timeout: Duration,
}

fn idempotency_hash(source: &str, ticket_id: &str, revision: u64) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(ticket_id.as_bytes());
    h.update([0]);
    h.update(revision.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Adds "is required" for a blank `value`.
fn require(errors: &mut Vec<FieldError>, name: &str, value: &str) {
    if value.trim().is_empty() {
        errors.push(field(name, "is required"));
    }
}

/// `Ok` when nothing was wrong, else every problem at once.
fn valid(errors: Vec<FieldError>) -> Result<(), Error> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors { errors }.into())
    }
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

impl Intake {
    /// Opens the buckets intake reads and writes. `timeout` bounds every
    /// operation a caller waits for, so a broker that is gone gives a quick
    /// `Unavailable` instead of a hanging request.
    pub async fn new(rt: Runtime, timeout: Duration) -> Result<Intake, Error> {
        let receipts = topology::bucket_or_create(&rt.js, topology::BUCKET_RECEIPTS).await?;
        let incidents = topology::bucket_or_create(&rt.js, topology::BUCKET_INCIDENTS).await?;
        let alerts = topology::bucket_or_create(&rt.js, topology::BUCKET_ALERTS).await?;
        Ok(Intake {
            rt,
            receipts,
            incidents,
            alerts,
            timeout,
        })
    }

    /// Runs `fut` under the persist timeout.
    async fn bounded<T>(&self, fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Unavailable(format!(
                "the broker did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// The runtime (clock, metrics).
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Masks and publishes one ticket revision; idempotent on (source,
    /// ticket_id, revision). Answers only once JetStream stored it.
    pub async fn submit(
        &self,
        valid: ValidTicket,
        channel: &str,
        trace: &TraceContext,
    ) -> Result<Receipt, Error> {
        let r = self
            .bounded(self.submit_unbounded(valid, channel, trace))
            .await;
        if r.is_err() {
            self.rt
                .metrics
                .inc("nisvakt_tickets_total", &[("result", "unavailable")]);
        }
        r
    }

    async fn submit_unbounded(
        &self,
        valid: ValidTicket,
        channel: &str,
        trace: &TraceContext,
    ) -> Result<Receipt, Error> {
        let hash = idempotency_hash(&valid.source, &valid.ticket_id, valid.revision);
        let receipt_id = format!("rcp_{hash}");
        let key = format!("r.{hash}");
        let seen = self
            .receipts
            .get(&key)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        if seen.is_some() {
            self.rt
                .metrics
                .inc("nisvakt_tickets_total", &[("result", "duplicate")]);
            return Ok(Receipt {
                receipt_id,
                duplicate: true,
            });
        }
        let ticket = valid.into_masked();
        let msg_id = format!(
            "ticket:{}:{}:{}",
            ticket.source, ticket.ticket_id, ticket.revision
        );
        let event = pb::TicketAccepted {
            receipt_id: receipt_id.clone(),
            ticket: Some(convert::ticket_to_pb(&ticket)),
            accepted_at: Some(to_timestamp(self.rt.clock.now())),
            channel: channel.to_string(),
        };
        let published = self
            .rt
            .publisher
            .publish(subjects::TICKET_ACCEPTED, &msg_id, &event, trace)
            .await?;
        // The stream holds the ticket now; the receipt only extends
        // de-duplication beyond the stream's window, so its failure is logged.
        if let Err(e) = self.receipts.put(&key, receipt_id.clone().into()).await {
            tracing::warn!(error = %e, "receipt not recorded; de-duplication relies on the stream window");
        }
        self.rt.metrics.inc(
            "nisvakt_tickets_total",
            &[(
                "result",
                if published.duplicate {
                    "duplicate"
                } else {
                    "accepted"
                },
            )],
        );
        Ok(Receipt {
            receipt_id,
            duplicate: published.duplicate,
        })
    }

    async fn require_incident(&self, id: &str) -> Result<(), Error> {
        let found = self
            .bounded(async {
                self.incidents
                    .get(subjects::token(id))
                    .await
                    .map_err(|e| Error::Unavailable(e.to_string()))
            })
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!("incident {id}"))),
        }
    }

    async fn command<E: nisvakt_proto::Event>(
        &self,
        subject: String,
        command_id: &str,
        event: &E,
        trace: &TraceContext,
    ) -> Result<String, Error> {
        self.bounded(async {
            self.rt
                .publisher
                .publish(subject, &format!("cmd:{command_id}"), event, trace)
                .await
                .map_err(Error::from)
        })
        .await?;
        self.rt
            .metrics
            .inc("nisvakt_commands_total", &[("type", E::TYPE)]);
        Ok(command_id.to_string())
    }

    /// Persists a person's judgement of an incident.
    pub async fn record_assessment(
        &self,
        mut cmd: pb::RecordAssessment,
        trace: &TraceContext,
    ) -> Result<String, Error> {
        let mut errors = Vec::new();
        require(&mut errors, "assessed_by", &cmd.assessed_by);
        if cmd.patient_harm() == pb::PatientHarm::Unknown {
            errors.push(field(
                "patient_harm",
                "must be none, risk or occurred (a person's judgement)",
            ));
        }
        valid(errors)?;
        self.require_incident(&cmd.incident_id).await?;
        cmd.command_id = ulid::Ulid::generate().to_string();
        cmd.issued_at
            .get_or_insert_with(|| to_timestamp(self.rt.clock.now()));
        let id = cmd.command_id.clone();
        self.command(
            subjects::incident_command(&cmd.incident_id, "assessment"),
            &id,
            &cmd,
            trace,
        )
        .await
    }

    /// Persists that a stage of a duty was reported.
    pub async fn report_stage(
        &self,
        mut cmd: pb::ReportStage,
        trace: &TraceContext,
    ) -> Result<String, Error> {
        let mut errors = Vec::new();
        if !["nis", "personal_data", "lex_maria", "security_protection"]
            .contains(&cmd.duty.as_str())
        {
            errors.push(field(
                "duty",
                "must be one of nis, personal_data, lex_maria, security_protection",
            ));
        }
        require(&mut errors, "stage", &cmd.stage);
        require(&mut errors, "reported_by", &cmd.reported_by);
        if cmd.channel() == pb::ReportChannel::Unspecified {
            errors.push(field(
                "channel",
                "must be one of tool, letter, phone, email",
            ));
        }
        valid(errors)?;
        self.require_incident(&cmd.incident_id).await?;
        let now = to_timestamp(self.rt.clock.now());
        cmd.command_id = ulid::Ulid::generate().to_string();
        cmd.issued_at = Some(now);
        cmd.reported_at.get_or_insert(now);
        let id = cmd.command_id.clone();
        self.command(
            subjects::incident_command(&cmd.incident_id, "report"),
            &id,
            &cmd,
            trace,
        )
        .await
    }

    /// Persists that an incident was resolved.
    pub async fn resolve(
        &self,
        mut cmd: pb::ResolveIncident,
        trace: &TraceContext,
    ) -> Result<String, Error> {
        let mut errors = Vec::new();
        require(&mut errors, "resolved_by", &cmd.resolved_by);
        valid(errors)?;
        self.require_incident(&cmd.incident_id).await?;
        let now = to_timestamp(self.rt.clock.now());
        cmd.command_id = ulid::Ulid::generate().to_string();
        cmd.issued_at = Some(now);
        cmd.resolved_at.get_or_insert(now);
        let id = cmd.command_id.clone();
        self.command(
            subjects::incident_command(&cmd.incident_id, "resolve"),
            &id,
            &cmd,
            trace,
        )
        .await
    }

    /// Persists an acknowledgement of an alert.
    pub async fn acknowledge(
        &self,
        mut cmd: pb::AcknowledgeAlert,
        trace: &TraceContext,
    ) -> Result<String, Error> {
        let mut errors = Vec::new();
        require(&mut errors, "acked_by", &cmd.acked_by);
        require(&mut errors, "alert_id", &cmd.alert_id);
        valid(errors)?;
        cmd.command_id = ulid::Ulid::generate().to_string();
        cmd.issued_at = Some(to_timestamp(self.rt.clock.now()));
        let id = cmd.command_id.clone();
        self.command(subjects::alert_ack(&cmd.alert_id), &id, &cmd, trace)
            .await
    }

    /// One incident's projection (JSON as the classifier stored it).
    pub async fn incident(&self, id: &str) -> Result<Option<serde_json::Value>, Error> {
        let raw = self
            .bounded(async {
                self.incidents
                    .get(subjects::token(id))
                    .await
                    .map_err(|e| Error::Unavailable(e.to_string()))
            })
            .await?;
        raw.map(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| Error::Unavailable(format!("corrupt incident {id}: {e}")))
        })
        .transpose()
    }

    /// Every incident, newest first; resolved ones only when asked.
    pub async fn incidents(&self, include_resolved: bool) -> Result<Vec<serde_json::Value>, Error> {
        // A whole listing gets a few round trips' worth of time.
        let limit = self.timeout * 4;
        tokio::time::timeout(limit, self.incidents_unbounded(include_resolved))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Unavailable(format!(
                    "listing incidents took over {} ms",
                    limit.as_millis()
                )))
            })
    }

    async fn incidents_unbounded(
        &self,
        include_resolved: bool,
    ) -> Result<Vec<serde_json::Value>, Error> {
        use futures::StreamExt;
        let mut keys = self
            .incidents
            .keys()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| Error::Unavailable(e.to_string()))?;
            if let Some(v) = self.incident(&k).await? {
                let resolved = v.get("status").and_then(|s| s.as_str()) == Some("resolved");
                if include_resolved || !resolved {
                    out.push(v);
                }
            }
        }
        out.sort_by(|a, b| {
            let key = |v: &serde_json::Value| {
                v.get("opened_at")
                    .and_then(|s| s.as_str())
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|d| d.with_timezone(&Utc))
            };
            key(b).cmp(&key(a))
        });
        Ok(out)
    }
}

/// One alert as the console and `nisctl` see it: the notifier's record in
/// `nis_alerts` (`a.<alert_id>`) with the protobuf alert decoded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AlertView {
    /// `alt_…`.
    pub id: String,
    /// The incident concerned.
    pub incident_id: String,
    /// Why it was raised (`reportable`, `due`, …).
    pub reason: String,
    /// `info`, `warning`, `high` or `critical`.
    pub severity: String,
    /// Escalation level reached (0 first).
    pub level: u32,
    /// Swedish title.
    pub title_sv: String,
    /// Swedish body.
    pub body_sv: String,
    /// English title.
    pub title_en: String,
    /// English body.
    pub body_en: String,
    /// When it was raised (RFC 3339).
    pub raised_at: Option<String>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
    /// When (RFC 3339).
    pub acked_at: Option<String>,
}

/// The notifier's stored value for one alert (only what intake reads).
#[derive(Debug, Deserialize)]
struct StoredAlert {
    #[serde(default)]
    level: u32,
    #[serde(default)]
    acked_by: Option<String>,
    #[serde(default)]
    acked_at: Option<DateTime<Utc>>,
    alert: String,
}

fn alert_view(raw: &[u8]) -> Option<AlertView> {
    use prost::Message as _;
    let stored: StoredAlert = serde_json::from_slice(raw).ok()?;
    let bytes = hex::decode(&stored.alert).ok()?;
    let a = pb::Alert::decode(bytes.as_slice()).ok()?;
    let severity = match a.severity() {
        pb::Severity::Unspecified | pb::Severity::Info => "info",
        pb::Severity::Warning => "warning",
        pb::Severity::High => "high",
        pb::Severity::Critical => "critical",
    };
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Some(AlertView {
        raised_at: a
            .raised_at
            .as_ref()
            .and_then(nisvakt_bus::clock::from_timestamp)
            .map(rfc),
        id: a.id,
        incident_id: a.incident_id,
        reason: a.reason,
        severity: severity.to_string(),
        level: stored.level,
        title_sv: a.title_sv,
        body_sv: a.body_sv,
        title_en: a.title_en,
        body_en: a.body_en,
        acked_by: stored.acked_by.filter(|s| !s.is_empty()),
        acked_at: stored.acked_at.map(rfc),
    })
}

impl Intake {
    /// The alerts the notifier keeps, newest first: only unacknowledged ones
    /// unless `include_acked`, only one incident's when `incident` is given,
    /// at most `limit`.
    pub async fn alerts(
        &self,
        incident: Option<&str>,
        include_acked: bool,
        limit: usize,
    ) -> Result<Vec<AlertView>, Error> {
        let bound = self.timeout * 4;
        tokio::time::timeout(bound, async {
            use futures::StreamExt;
            let mut keys = self
                .alerts
                .keys()
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            let mut out = Vec::new();
            while let Some(k) = keys.next().await {
                let k = k.map_err(|e| Error::Unavailable(e.to_string()))?;
                if !k.starts_with("a.") {
                    continue;
                }
                let raw = self
                    .alerts
                    .get(&k)
                    .await
                    .map_err(|e| Error::Unavailable(e.to_string()))?;
                let Some(view) = raw.as_deref().and_then(alert_view) else {
                    continue;
                };
                if incident.is_some_and(|i| i != view.incident_id) {
                    continue;
                }
                if !include_acked && view.acked_by.is_some() {
                    continue;
                }
                out.push(view);
            }
            // RFC 3339 in UTC with one format sorts as text.
            out.sort_by(|a, b| b.raised_at.cmp(&a.raised_at));
            out.truncate(limit);
            Ok(out)
        })
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable(format!(
                "listing alerts took over {} ms",
                bound.as_millis()
            )))
        })
    }
}
