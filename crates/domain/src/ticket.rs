//! Tickets: the raw JSON of `POST /v1/tickets`, its validation, and the
//! validated, masked [`Ticket`] that the rest of nisvakt works with.
//!
//! "Parse, don't validate": [`validate`] turns a [`TicketInput`] into a
//! [`ValidTicket`] or a list naming every bad field at once, and
//! [`ValidTicket::into_masked`] is the only way to a [`Ticket`], so no
//! unmasked text or reporter e-mail can reach the bus. This module must not
//! decide reportability or correlation, and must not read clocks.

use crate::mask::mask_identifiers;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The kind of system a disruption hits; used to correlate tickets that name
/// no system and to route alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The care record system (journalsystem).
    RecordSystem,
    /// Planning and scheduling systems.
    PlanningSystem,
    /// Other line-of-business systems.
    BusinessSystem,
    /// E-mail (Outlook).
    Email,
    /// Mobile, IP and switchboard telephony.
    Telephony,
    /// The city network, wifi.
    Network,
    /// Computer and system log-in.
    Login,
    /// Anything else.
    Other,
}

impl Category {
    /// Every category, in the order the contract lists them.
    pub const ALL: [Category; 8] = [
        Category::RecordSystem,
        Category::PlanningSystem,
        Category::BusinessSystem,
        Category::Email,
        Category::Telephony,
        Category::Network,
        Category::Login,
        Category::Other,
    ];

    /// The wire name (`record_system`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::RecordSystem => "record_system",
            Category::PlanningSystem => "planning_system",
            Category::BusinessSystem => "business_system",
            Category::Email => "email",
            Category::Telephony => "telephony",
            Category::Network => "network",
            Category::Login => "login",
            Category::Other => "other",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a category (use one of {})",
                    Category::ALL.map(Category::as_str).join(", ")
                )
            })
    }
}

/// What a ticket (or an operator) says about harm to patients. A ticket's
/// value only raises a question; only an operator's confirmation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientHarm {
    /// No harm and no risk of it.
    None,
    /// Risk of serious care injury.
    Risk,
    /// Serious care injury occurred.
    Occurred,
    /// The reporter does not know.
    Unknown,
}

impl PatientHarm {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PatientHarm::None => "none",
            PatientHarm::Risk => "risk",
            PatientHarm::Occurred => "occurred",
            PatientHarm::Unknown => "unknown",
        }
    }

    /// Risk or occurrence: what the `patient_harm` criterion and lex Maria
    /// need (when an operator confirms it).
    pub fn is_harm(self) -> bool {
        matches!(self, PatientHarm::Risk | PatientHarm::Occurred)
    }
}

impl FromStr for PatientHarm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(PatientHarm::None),
            "risk" => Ok(PatientHarm::Risk),
            "occurred" => Ok(PatientHarm::Occurred),
            "unknown" => Ok(PatientHarm::Unknown),
            _ => Err(format!(
                "{s:?} is not a patient_harm value (use none, risk, occurred or unknown)"
            )),
        }
    }
}

/// The ticket's state in the ticketing system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Still being worked on.
    #[default]
    Open,
    /// Closed by the service desk.
    Resolved,
}

impl FromStr for TicketStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(TicketStatus::Open),
            "resolved" => Ok(TicketStatus::Resolved),
            _ => Err(format!("{s:?} is not a status (use open or resolved)")),
        }
    }
}

/// Identifies one ticket across its revisions: the pair the ticketing system
/// guarantees unique.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TicketKey {
    /// The sending system, e.g. `intraservice`.
    pub source: String,
    /// The ticket's id in that system.
    pub ticket_id: String,
}

impl fmt::Display for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.ticket_id)
    }
}

/// A validated, masked ticket: what intake publishes and the classifier
/// folds. Contains no personal identifiers and no reporter e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The sending system.
    pub source: String,
    /// The ticket's id in the sending system.
    pub ticket_id: String,
    /// Increases with each update; with the key it makes delivery idempotent.
    pub revision: u64,
    /// Masked subject line (ärenderad).
    pub subject: String,
    /// Masked free text.
    pub description: Option<String>,
    /// When the ticket was created.
    pub reported_at: DateTime<Utc>,
    /// Masked reporting unit.
    pub unit: Option<String>,
    /// Pseudonymous reporter: first 16 hex chars of sha256(lower-cased e-mail).
    pub reporter_ref: Option<String>,
    /// Masked name of the affected system as the reporter wrote it.
    pub system: Option<String>,
    /// The category as given by the sender (inference happens later).
    pub category: Option<Category>,
    /// Start of the disruption; `reported_at` when the sender gave none.
    pub disruption_started_at: DateTime<Utc>,
    /// End of the disruption; `None` while it goes on.
    pub disruption_ended_at: Option<DateTime<Utc>>,
    /// Whether intended care measures could not be carried out.
    pub care_blocked: Option<bool>,
    /// The reporter's view of patient harm (raises a question only).
    pub patient_harm: Option<PatientHarm>,
    /// Open or resolved in the ticketing system.
    pub status: TicketStatus,
    /// How many identifiers were masked across all text fields.
    pub identifiers_masked: u32,
}

impl Ticket {
    /// The key that stays the same across revisions.
    pub fn key(&self) -> TicketKey {
        TicketKey {
            source: self.source.clone(),
            ticket_id: self.ticket_id.clone(),
        }
    }

    /// `source/ticket_id@revision`: the idempotency key of this delivery
    /// (e.g. the `Nats-Msg-Id`), the same before and after masking.
    pub fn idempotency_key(&self) -> String {
        idempotency_key(&self.source, &self.ticket_id, self.revision)
    }
}

/// `source/ticket_id@revision`, the contract's idempotency key as one string.
pub fn idempotency_key(source: &str, ticket_id: &str, revision: u64) -> String {
    format!("{source}/{ticket_id}@{revision}")
}

/// The `reporter` object of the ticket JSON. Only the e-mail is used, and
/// only to derive a pseudonymous reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReporterInput {
    /// The reporter's name; dropped on validation.
    pub name: Option<String>,
    /// The reporter's e-mail; hashed into `reporter_ref`.
    pub email: Option<String>,
}

/// The body of `POST /v1/tickets` as the sender wrote it: every field
/// optional and every enum a string, so that validation can name each
/// problem instead of failing on the first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketInput {
    /// Required.
    pub source: Option<String>,
    /// Required.
    pub ticket_id: Option<String>,
    /// Optional, non-negative; 0 when absent.
    pub revision: Option<i64>,
    /// Required.
    pub subject: Option<String>,
    /// Optional free text.
    pub description: Option<String>,
    /// Required, RFC 3339.
    pub reported_at: Option<String>,
    /// Optional unit name.
    pub unit: Option<String>,
    /// Optional `{name, email}`.
    pub reporter: Option<ReporterInput>,
    /// Optional affected system.
    pub system: Option<String>,
    /// Optional category (wire name).
    pub category: Option<String>,
    /// Optional RFC 3339; defaults to `reported_at`.
    pub disruption_started_at: Option<String>,
    /// Optional RFC 3339; absent or null while ongoing.
    pub disruption_ended_at: Option<String>,
    /// Optional.
    pub care_blocked: Option<bool>,
    /// Optional (wire name).
    pub patient_harm: Option<String>,
    /// Optional (`open`/`resolved`).
    pub status: Option<String>,
}

/// One bad field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The JSON field name, e.g. `reported_at` or `reporter.email`.
    pub field: String,
    /// What is wrong, in words a sender can act on.
    pub message: String,
}

/// Every problem found in one ticket, so the sender can fix them all at once
/// (the body of a `400` answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("invalid ticket: {}", .errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors {
    /// One entry per bad field, in field order.
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// Whether the named field has an error (handy in tests and handlers).
    pub fn has(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

/// The module's error type: validation reports every field at once.
pub type Error = ValidationErrors;

/// A ticket whose fields are all well-formed but whose text is not yet
/// masked. Only [`ValidTicket::into_masked`] turns it into a [`Ticket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidTicket {
    /// The sending system.
    pub source: String,
    /// The ticket's id there.
    pub ticket_id: String,
    /// Revision, 0 when absent.
    pub revision: u64,
    /// Unmasked subject.
    pub subject: String,
    /// Unmasked description.
    pub description: Option<String>,
    /// When the ticket was created.
    pub reported_at: DateTime<Utc>,
    /// Unmasked unit.
    pub unit: Option<String>,
    /// Reporter e-mail, to be hashed.
    pub reporter_email: Option<String>,
    /// Unmasked system name.
    pub system: Option<String>,
    /// Category if given.
    pub category: Option<Category>,
    /// Start of disruption (defaulted).
    pub disruption_started_at: DateTime<Utc>,
    /// End of disruption.
    pub disruption_ended_at: Option<DateTime<Utc>>,
    /// Care blocked as reported.
    pub care_blocked: Option<bool>,
    /// Patient harm as reported.
    pub patient_harm: Option<PatientHarm>,
    /// Ticket status.
    pub status: TicketStatus,
}

impl ValidTicket {
    /// The idempotency key, so intake can de-duplicate before masking.
    pub fn idempotency_key(&self) -> String {
        idempotency_key(&self.source, &self.ticket_id, self.revision)
    }

    /// Masks subject, description, system and unit, counts the identifiers
    /// found, and replaces the reporter by a pseudonymous reference.
    pub fn into_masked(self) -> Ticket {
        let mut found = 0;
        let mut m = |s: String| {
            let masked = mask_identifiers(&s);
            found += masked.found;
            masked.text
        };
        let subject = m(self.subject);
        let description = self.description.map(&mut m);
        let system = self.system.map(&mut m);
        let unit = self.unit.map(&mut m);
        Ticket {
            source: self.source,
            ticket_id: self.ticket_id,
            revision: self.revision,
            subject,
            description,
            reported_at: self.reported_at,
            unit,
            reporter_ref: self.reporter_email.as_deref().map(reporter_ref),
            system,
            category: self.category,
            disruption_started_at: self.disruption_started_at,
            disruption_ended_at: self.disruption_ended_at,
            care_blocked: self.care_blocked,
            patient_harm: self.patient_harm,
            status: self.status,
            identifiers_masked: found,
        }
    }
}

/// The first 16 hex characters of sha256 of the trimmed, lower-cased e-mail:
/// lets operators see that two tickets came from the same person without
/// carrying the address.
pub fn reporter_ref(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    hex::encode(digest)[..16].to_string()
}

/// Checks every field of a ticket body and returns all problems at once.
///
/// Required: `source`, `ticket_id`, `subject`, `reported_at`, none of them
/// blank. Times must be RFC 3339; the disruption must not end before it
/// starts; enum values must be known; the revision must not be negative.
/// Blank optional strings are treated as absent.
pub fn validate(input: TicketInput) -> Result<ValidTicket, ValidationErrors> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.to_string(),
            message,
        })
    };

    let source = required("source", input.source, &mut bad);
    let ticket_id = required("ticket_id", input.ticket_id, &mut bad);
    let revision = match input.revision {
        None => Some(0),
        Some(r) => match u64::try_from(r) {
            Ok(r) => Some(r),
            Err(_) => {
                bad("revision", format!("{r} is negative (use 0 or more)"));
                None
            }
        },
    };
    let subject = required("subject", input.subject, &mut bad);
    let reported_raw_missing = input
        .reported_at
        .as_deref()
        .is_none_or(|v| v.trim().is_empty());
    if reported_raw_missing {
        if input.reported_at.is_none() {
            bad("reported_at", "is required".to_string());
        } else {
            bad("reported_at", "must not be empty".to_string());
        }
    }
    let reported_at = time("reported_at", input.reported_at, &mut bad);
    let started = time(
        "disruption_started_at",
        input.disruption_started_at,
        &mut bad,
    );
    let ended = time("disruption_ended_at", input.disruption_ended_at, &mut bad);
    let start = started.or(reported_at);
    if let (Some(start), Some(end)) = (start, ended)
        && end < start
    {
        let from = if started.is_some() {
            "disruption_started_at"
        } else {
            "reported_at"
        };
        bad(
            "disruption_ended_at",
            format!(
                "{} is before {from} {}",
                end.to_rfc3339(),
                start.to_rfc3339()
            ),
        );
    }
    let category = parse_enum::<Category>("category", input.category, &mut bad);
    let patient_harm = parse_enum::<PatientHarm>("patient_harm", input.patient_harm, &mut bad);
    let status = parse_enum::<TicketStatus>("status", input.status, &mut bad);
    let reporter_email = input
        .reporter
        .and_then(|r| r.email)
        .filter(|e| !e.trim().is_empty());
    if let Some(email) = &reporter_email
        && !email.contains('@')
    {
        bad("reporter.email", "is not an e-mail address".to_string());
    }

    let opt = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    match (source, ticket_id, revision, subject, reported_at, start) {
        (
            Some(source),
            Some(ticket_id),
            Some(revision),
            Some(subject),
            Some(reported_at),
            Some(start),
        ) if errors.is_empty() => Ok(ValidTicket {
            source: source.trim().to_string(),
            ticket_id: ticket_id.trim().to_string(),
            revision,
            subject,
            description: opt(input.description),
            reported_at,
            unit: opt(input.unit).map(|u| u.trim().to_string()),
            reporter_email,
            system: opt(input.system).map(|s| s.trim().to_string()),
            category,
            disruption_started_at: start,
            disruption_ended_at: ended,
            care_blocked: input.care_blocked,
            patient_harm,
            status: status.unwrap_or_default(),
        }),
        _ => Err(ValidationErrors { errors }),
    }
}

fn required(
    field: &str,
    value: Option<String>,
    bad: &mut dyn FnMut(&str, String),
) -> Option<String> {
    match value {
        None => {
            bad(field, "is required".to_string());
            None
        }
        Some(v) if v.trim().is_empty() => {
            bad(field, "must not be empty".to_string());
            None
        }
        Some(v) => Some(v),
    }
}

fn time(
    field: &str,
    value: Option<String>,
    bad: &mut dyn FnMut(&str, String),
) -> Option<DateTime<Utc>> {
    let v = value.filter(|v| !v.trim().is_empty())?;
    match DateTime::parse_from_rfc3339(v.trim()) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            bad(
                field,
                format!("{v:?} is not an RFC 3339 time like 2026-03-29T14:05:00+02:00 ({e})"),
            );
            None
        }
    }
}

fn parse_enum<T: FromStr<Err = String>>(
    field: &str,
    value: Option<String>,
    bad: &mut dyn FnMut(&str, String),
) -> Option<T> {
    let v = value.filter(|v| !v.trim().is_empty())?;
    match v.trim().parse() {
        Ok(t) => Some(t),
        Err(message) => {
            bad(field, message);
            None
        }
    }
}

/// Reads a JSON body and validates it, naming every bad field — including
/// fields of the wrong JSON type, which plain serde would stop at.
///
/// This is the one path intake uses for HTTP, gRPC-as-JSON and NATS.
pub fn parse_json(body: &str) -> Result<ValidTicket, ValidationErrors> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| ValidationErrors {
        errors: vec![FieldError {
            field: "(body)".to_string(),
            message: format!("is not valid JSON: {e}"),
        }],
    })?;
    let Some(obj) = value.as_object() else {
        return Err(ValidationErrors {
            errors: vec![FieldError {
                field: "(body)".to_string(),
                message: "must be a JSON object".to_string(),
            }],
        });
    };
    let mut type_errors = Vec::new();
    let mut string = |field: &str| -> Option<String> {
        match obj.get(field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                type_errors.push(FieldError {
                    field: field.to_string(),
                    message: format!("must be a string, not {other}"),
                });
                None
            }
        }
    };
    let source = string("source");
    let ticket_id = string("ticket_id");
    let subject = string("subject");
    let description = string("description");
    let reported_at = string("reported_at");
    let unit = string("unit");
    let system = string("system");
    let category = string("category");
    let disruption_started_at = string("disruption_started_at");
    let disruption_ended_at = string("disruption_ended_at");
    let patient_harm = string("patient_harm");
    let status = string("status");
    let revision = match obj.get("revision") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(r) => Some(r),
            None => {
                type_errors.push(FieldError {
                    field: "revision".to_string(),
                    message: format!("must be a whole number, not {v}"),
                });
                None
            }
        },
    };
    let care_blocked = match obj.get("care_blocked") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(v) => {
            type_errors.push(FieldError {
                field: "care_blocked".to_string(),
                message: format!("must be true or false, not {v}"),
            });
            None
        }
    };
    let reporter = match obj.get("reporter") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Object(r)) => {
            let mut field = |name: &str| match r.get(name) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(v) => {
                    type_errors.push(FieldError {
                        field: format!("reporter.{name}"),
                        message: format!("must be a string, not {v}"),
                    });
                    None
                }
            };
            Some(ReporterInput {
                name: field("name"),
                email: field("email"),
            })
        }
        Some(v) => {
            type_errors.push(FieldError {
                field: "reporter".to_string(),
                message: format!("must be an object {{name, email}}, not {v}"),
            });
            None
        }
    };
    let typed_fields: Vec<String> = type_errors.iter().map(|e| e.field.clone()).collect();
    let input = TicketInput {
        source,
        ticket_id,
        revision,
        subject,
        description,
        reported_at,
        unit,
        reporter,
        system,
        category,
        disruption_started_at,
        disruption_ended_at,
        care_blocked,
        patient_harm,
        status,
    };
    match validate(input) {
        Ok(valid) if type_errors.is_empty() => Ok(valid),
        Ok(_) => Err(ValidationErrors {
            errors: type_errors,
        }),
        Err(mut e) => {
            // A field of the wrong type also shows up as "is required"; keep
            // only the more precise type error for it.
            e.errors.retain(|f| !typed_fields.contains(&f.field));
            type_errors.append(&mut e.errors);
            Err(ValidationErrors {
                errors: type_errors,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn full() -> TicketInput {
        TicketInput {
            source: Some("intraservice".into()),
            ticket_id: Some("INC-1".into()),
            revision: Some(3),
            subject: Some("Eventuell NIS-incident: journalen nere, pat 811218-9876".into()),
            description: Some("Patient 19811218-9876 fick inte sin medicin".into()),
            reported_at: Some("2026-03-29T10:00:00+02:00".into()),
            unit: Some("Hemsjukvård Centrum".into()),
            reporter: Some(ReporterInput {
                name: Some("Anna Andersson".into()),
                email: Some(" Anna.Andersson@Example.se ".into()),
            }),
            system: Some("Journalsystemet".into()),
            category: Some("record_system".into()),
            disruption_started_at: Some("2026-03-29T07:30:00Z".into()),
            disruption_ended_at: None,
            care_blocked: Some(true),
            patient_harm: Some("risk".into()),
            status: Some("open".into()),
        }
    }

    #[test]
    fn a_complete_ticket_validates_and_masks_every_text_field() {
        let t = validate(full()).unwrap().into_masked();
        assert_eq!(t.revision, 3);
        assert_eq!(
            t.reported_at,
            Utc.with_ymd_and_hms(2026, 3, 29, 8, 0, 0).unwrap()
        );
        assert_eq!(
            t.disruption_started_at,
            Utc.with_ymd_and_hms(2026, 3, 29, 7, 30, 0).unwrap()
        );
        assert_eq!(t.identifiers_masked, 2);
        assert!(!t.subject.contains("9876"));
        assert!(!t.description.as_deref().unwrap_or("").contains("9876"));
        assert_eq!(t.category, Some(Category::RecordSystem));
        assert_eq!(t.patient_harm, Some(PatientHarm::Risk));
        assert_eq!(
            t.reporter_ref,
            Some(reporter_ref("anna.andersson@example.se"))
        );
        assert_eq!(t.reporter_ref.as_deref().map(str::len), Some(16));
        assert_eq!(t.idempotency_key(), "intraservice/INC-1@3");
    }

    #[test]
    fn the_disruption_start_defaults_to_the_report_time() {
        let mut input = full();
        input.disruption_started_at = None;
        let t = validate(input).unwrap();
        assert_eq!(t.disruption_started_at, t.reported_at);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let input = TicketInput {
            source: None,
            ticket_id: Some("  ".into()),
            revision: Some(-1),
            subject: None,
            reported_at: Some("igår".into()),
            disruption_started_at: Some("2026-13-01T00:00:00Z".into()),
            category: Some("printer".into()),
            patient_harm: Some("maybe".into()),
            status: Some("closed".into()),
            ..TicketInput::default()
        };
        let errors = validate(input).unwrap_err();
        for field in [
            "source",
            "ticket_id",
            "revision",
            "subject",
            "reported_at",
            "disruption_started_at",
            "category",
            "patient_harm",
            "status",
        ] {
            assert!(errors.has(field), "{field} missing from {errors}");
        }
        assert!(errors.to_string().contains("\"printer\""));
    }

    #[test]
    fn an_end_before_its_start_is_rejected() {
        let mut input = full();
        input.disruption_ended_at = Some("2026-03-29T07:00:00Z".into());
        let errors = validate(input).unwrap_err();
        assert_eq!(errors.errors.len(), 1);
        assert!(errors.has("disruption_ended_at"));
    }

    #[test]
    fn an_empty_reported_at_is_named_once() {
        let mut input = full();
        input.reported_at = Some("".into());
        let errors = validate(input).unwrap_err();
        assert_eq!(errors.errors.len(), 1, "{errors}");
    }

    #[test]
    fn json_with_wrong_types_names_those_fields() {
        let body = r#"{"source":"intraservice","ticket_id":42,"subject":"x",
            "reported_at":"2026-03-29T10:00:00Z","revision":"two","care_blocked":"ja",
            "reporter":{"name":"A","email":7}}"#;
        let errors = parse_json(body).unwrap_err();
        for field in ["ticket_id", "revision", "care_blocked", "reporter.email"] {
            assert!(errors.has(field), "{field}: {errors}");
        }
        assert!(
            !errors.errors.iter().any(|e| e.message == "is required"),
            "{errors}"
        );
        assert!(parse_json("[]").is_err());
        assert!(parse_json("{").is_err());
    }

    #[test]
    fn a_minimal_json_ticket_is_accepted() {
        let body = r#"{"source":"intraservice","ticket_id":"1","subject":"Outlook nere",
            "reported_at":"2026-03-29T10:00:00Z","disruption_ended_at":null}"#;
        let t = parse_json(body).unwrap();
        assert_eq!(t.revision, 0);
        assert_eq!(t.status, TicketStatus::Open);
        assert_eq!(t.disruption_ended_at, None);
    }
}
