//! The REST API (CONTRACT.md): tickets, operator commands, incident reads
//! and the server-sent event stream. Handlers only translate between HTTP
//! and `ops`; the rules live elsewhere. Every `/v1` route asks `auth`
//! first (401 without valid credentials, 403 for a role that may not);
//! the console's static files at `/` are public, its data calls are not.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use futures::Stream;
use nisvakt_bus::clock::to_timestamp;
use nisvakt_bus::{Shutdown, TraceContext};
use nisvakt_domain::ticket::{FieldError, ValidationErrors};
use nisvakt_proto::v1 as pb;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{self, Action, Auth};
use crate::ops::{Error, Intake};
use crate::watch::Hub;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The operations.
    pub intake: Intake,
    /// The live feed.
    pub hub: Hub,
    /// Body limit for 413.
    pub max_body_bytes: usize,
    /// Who may do what.
    pub auth: Auth,
}

/// The routes.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v1/tickets", post(post_ticket))
        .route("/v1/incidents", get(list_incidents))
        .route("/v1/incidents/{id}", get(get_incident))
        .route("/v1/incidents/{id}/assessment", post(post_assessment))
        .route("/v1/incidents/{id}/reports", post(post_report))
        .route("/v1/incidents/{id}/resolve", post(post_resolve))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/{id}/ack", post(post_ack))
        .route("/v1/stream", get(stream))
        .route("/", get(crate::console::index))
        .route("/console.js", get(crate::console::script))
        .route("/console.css", get(crate::console::style))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves the routes until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}

fn trace_of(headers: &HeaderMap) -> TraceContext {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .unwrap_or_else(TraceContext::new_root)
}

/// Checks the request's credentials for `action`; `body` is given where a
/// body signature may stand in for a token (tickets).
fn authorize(
    s: &AppState,
    headers: &HeaderMap,
    action: Action,
    body: Option<&[u8]>,
) -> Result<(), Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = match (header("x-nisvakt-signature"), body) {
        (Some(sig), Some(b)) => Some((sig, b)),
        _ => None,
    };
    match s.auth.check(action, header("authorization"), signature) {
        Ok(_) => Ok(()),
        Err(e) => Err(Box::new(auth_error(e))),
    }
}

fn auth_error(e: auth::Error) -> Response {
    match e {
        auth::Error::Unauthenticated(why) => (
            StatusCode::UNAUTHORIZED,
            [(http::header::WWW_AUTHENTICATE, "Bearer realm=\"nisvakt\"")],
            axum::Json(json!({
                "error": "unauthenticated",
                "message": why,
                "message_sv": "Inloggning krävs: skicka en giltig token (Authorization: Bearer …) eller en giltig X-Nisvakt-Signature.",
                "message_en": "Authentication required: send a valid token (Authorization: Bearer …) or a valid X-Nisvakt-Signature.",
            })),
        )
            .into_response(),
        auth::Error::Forbidden { role, action } => (
            StatusCode::FORBIDDEN,
            axum::Json(json!({
                "error": "forbidden",
                "message": format!("the role {role} may not {action}"),
                "message_sv": format!("Rollen {role} får inte göra detta."),
                "message_en": format!("The role {role} may not {action}."),
            })),
        )
            .into_response(),
        auth::Error::Config(why) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "config", "message": why})),
        )
            .into_response(),
    }
}

fn error_response(e: Error) -> Response {
    match e {
        Error::Invalid(v) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": "invalid_request",
                "message": v.to_string(),
                "fields": v.errors,
            })),
        )
            .into_response(),
        Error::NotFound(what) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "not_found", "message": format!("{what} not found")})),
        )
            .into_response(),
        Error::Unavailable(why) => {
            tracing::warn!(%why, "answering 503");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "unavailable", "message": format!("cannot persist now: {why}")})),
            )
                .into_response()
        }
    }
}

fn body_error(r: BytesRejection) -> Response {
    let status = r.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        (
            status,
            axum::Json(json!({"error": "too_large", "message": "the body is over the size limit"})),
        )
            .into_response()
    } else {
        (
            status,
            axum::Json(json!({"error": "bad_body", "message": r.body_text()})),
        )
            .into_response()
    }
}

async fn post_ticket(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            // Without credentials the caller learns nothing, not even the limit.
            if let Err(resp) = authorize(&s, &headers, Action::SubmitTicket, None)
                && headers.get("x-nisvakt-signature").is_none()
            {
                return *resp;
            }
            return body_error(r);
        }
    };
    if let Err(resp) = authorize(&s, &headers, Action::SubmitTicket, Some(&body)) {
        return *resp;
    }
    let text = String::from_utf8_lossy(&body);
    let valid = match nisvakt_domain::ticket::parse_json(&text) {
        Ok(v) => v,
        Err(v) => return error_response(Error::Invalid(v)),
    };
    match s.intake.submit(valid, "http", &trace_of(&headers)).await {
        Ok(r) => (StatusCode::ACCEPTED, axum::Json(r)).into_response(),
        Err(e) => error_response(e),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    include_resolved: bool,
}

async fn list_incidents(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(r) = authorize(&s, &headers, Action::Read, None) {
        return *r;
    }
    match s.intake.incidents(q.include_resolved).await {
        Ok(list) => axum::Json(json!({ "incidents": list })).into_response(),
        Err(e) => error_response(e),
    }
}

async fn get_incident(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorize(&s, &headers, Action::Read, None) {
        return *r;
    }
    match s.intake.incident(&id).await {
        Ok(Some(v)) => axum::Json(v).into_response(),
        Ok(None) => error_response(Error::NotFound(format!("incident {id}"))),
        Err(e) => error_response(e),
    }
}

/// An operator command's body: the caller may act, and the body is a
/// JSON object (else the response that says why).
fn command_body(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    authorize(s, headers, Action::Act, None)?;
    object(body)
}

/// Reads a JSON object body, naming the problem when it is not one.
fn object(
    body: Result<Bytes, BytesRejection>,
) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    let body = body.map_err(|r| Box::new(body_error(r)))?;
    let invalid = |m: &str| {
        Box::new(error_response(Error::Invalid(ValidationErrors {
            errors: vec![FieldError {
                field: "(body)".into(),
                message: m.into(),
            }],
        })))
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid("must be a JSON object")),
        Err(e) => Err(invalid(&format!("is not valid JSON: {e}"))),
    }
}

/// Typed reads of a JSON object that collect every problem.
struct Fields<'a> {
    obj: &'a serde_json::Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a serde_json::Map<String, Value>) -> Self {
        Fields {
            obj,
            errors: Vec::new(),
        }
    }
    fn bad(&mut self, f: &str, m: &str) {
        self.errors.push(FieldError {
            field: f.into(),
            message: m.into(),
        });
    }
    fn string(&mut self, f: &str) -> Option<String> {
        match self.obj.get(f) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) if f == "stage" => Some(n.to_string()),
            Some(_) => {
                self.bad(f, "must be a string");
                None
            }
        }
    }
    fn required(&mut self, f: &str) -> String {
        match self.string(f) {
            Some(s) if !s.trim().is_empty() => s,
            Some(_) => {
                self.bad(f, "must not be empty");
                String::new()
            }
            None => {
                if !self.errors.iter().any(|e| e.field == f) {
                    self.bad(f, "is required");
                }
                String::new()
            }
        }
    }
    fn bool(&mut self, f: &str) -> Option<bool> {
        match self.obj.get(f) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.bad(f, "must be true or false");
                None
            }
        }
    }
    fn time(&mut self, f: &str) -> Option<prost_types::Timestamp> {
        let s = self.string(f)?;
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(to_timestamp(t.with_timezone(&Utc))),
            Err(_) => {
                self.bad(f, "must be an RFC 3339 time, e.g. 2026-03-01T08:00:00Z");
                None
            }
        }
    }
    fn finish(self) -> Result<(), Error> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(ValidationErrors {
                errors: self.errors,
            }))
        }
    }
}

fn accepted(r: Result<String, Error>) -> Response {
    match r {
        Ok(id) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "command_id": id })),
        )
            .into_response(),
        Err(e) => error_response(e),
    }
}

async fn post_assessment(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let obj = match command_body(&s, &headers, body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let mut f = Fields::new(&obj);
    let assessed_by = f.string("assessed_by").unwrap_or_default();
    let harm = match f.string("patient_harm").as_deref() {
        None => pb::PatientHarm::Unspecified,
        Some("none") => pb::PatientHarm::None,
        Some("risk") => pb::PatientHarm::Risk,
        Some("occurred") => pb::PatientHarm::Occurred,
        Some(_) => {
            f.bad("patient_harm", "must be one of none, risk, occurred");
            pb::PatientHarm::Unspecified
        }
    };
    let cmd = pb::RecordAssessment {
        incident_id: id,
        assessed_by,
        care_blocked: f.bool("care_blocked"),
        patient_harm: harm as i32,
        personal_data_breach: f.bool("personal_data_breach"),
        security_protection: f.bool("security_protection"),
        reasoning: f.string("reasoning").unwrap_or_default(),
        ..Default::default()
    };
    if let Err(e) = f.finish() {
        return error_response(e);
    }
    accepted(s.intake.record_assessment(cmd, &trace_of(&headers)).await)
}

async fn post_report(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let obj = match command_body(&s, &headers, body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let mut f = Fields::new(&obj);
    let channel = match f.string("channel").as_deref() {
        Some("tool") => pb::ReportChannel::Tool,
        Some("letter") => pb::ReportChannel::Letter,
        Some("phone") => pb::ReportChannel::Phone,
        Some("email") => pb::ReportChannel::Email,
        Some(_) => {
            f.bad("channel", "must be one of tool, letter, phone, email");
            pb::ReportChannel::Unspecified
        }
        None => pb::ReportChannel::Unspecified,
    };
    let cmd = pb::ReportStage {
        incident_id: id,
        duty: f.string("duty").unwrap_or_default(),
        stage: f.string("stage").unwrap_or_default(),
        reported_at: f.time("reported_at"),
        reported_by: f.string("reported_by").unwrap_or_default(),
        channel: channel as i32,
        rule_set: f.string("rule_set").unwrap_or_default(),
        ..Default::default()
    };
    if let Err(e) = f.finish() {
        return error_response(e);
    }
    accepted(s.intake.report_stage(cmd, &trace_of(&headers)).await)
}

async fn post_resolve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let obj = match command_body(&s, &headers, body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let mut f = Fields::new(&obj);
    let cmd = pb::ResolveIncident {
        incident_id: id,
        resolved_at: f.time("resolved_at"),
        resolved_by: f.required("resolved_by"),
        note: f.string("note").unwrap_or_default(),
        ..Default::default()
    };
    if let Err(e) = f.finish() {
        return error_response(e);
    }
    accepted(s.intake.resolve(cmd, &trace_of(&headers)).await)
}

async fn post_ack(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let obj = match command_body(&s, &headers, body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let mut f = Fields::new(&obj);
    let cmd = pb::AcknowledgeAlert {
        alert_id: id,
        acked_by: f.required("acked_by"),
        note: f.string("note").unwrap_or_default(),
        ..Default::default()
    };
    if let Err(e) = f.finish() {
        return error_response(e);
    }
    accepted(s.intake.acknowledge(cmd, &trace_of(&headers)).await)
}

#[derive(Debug, Deserialize)]
struct AlertQuery {
    incident_id: Option<String>,
    #[serde(default)]
    include_acked: bool,
    limit: Option<usize>,
}

async fn list_alerts(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AlertQuery>,
) -> Response {
    if let Err(r) = authorize(&s, &headers, Action::Read, None) {
        return *r;
    }
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    match s
        .intake
        .alerts(q.incident_id.as_deref(), q.include_acked, limit)
        .await
    {
        Ok(list) => axum::Json(json!({ "alerts": list })).into_response(),
        Err(e) => error_response(e),
    }
}

async fn stream(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&s, &headers, Action::Read, None) {
        return *r;
    }
    event_stream(s.hub.subscribe()).into_response()
}

fn event_stream(
    rx: tokio::sync::broadcast::Receiver<crate::watch::Item>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(item) => {
                let data = json!({
                    "subject": item.subject,
                    "type": item.ce_type,
                    "incident_id": item.incident_id(),
                });
                SseEvent::default().event("change").data(data.to_string())
            }
            // Fell behind: the console reloads from the projection.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => SseEvent::default()
                .event("reload")
                .data(json!({ "missed": n }).to_string()),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(ev), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
