//! The NATS door: tickets by request/reply on `nis.v1.ticket.submit`
//! (queue group `nisvakt-intake`, so replicas share the work). The request
//! body is exactly the JSON of `POST /v1/tickets`; the reply is
//! `{receipt_id, duplicate}` once JetStream stored the ticket, or
//! `{error, message, fields}` (`invalid_request` naming each bad field, or
//! `unavailable`).
//!
//! Who may publish on the subject is the broker's business (NATS accounts
//! and permissions in `deploy/`), not this module's. The submit subject is
//! captured by no stream, so an unmasked body is never stored; it must stay
//! that way.

use futures::StreamExt;
use nisvakt_bus::{Shutdown, TraceContext, subjects};
use serde_json::json;

use crate::ops::{Error as OpsError, Intake};

/// The queue group every intake replica joins.
pub const QUEUE_GROUP: &str = "nisvakt-intake";

/// Why the door could not open.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The subscription was refused.
    #[error("subscribing to {subject}: {reason}")]
    Subscribe {
        /// The subject.
        subject: &'static str,
        /// The client's words.
        reason: String,
    },
}

/// The reply to one request, as JSON bytes.
pub async fn answer(intake: &Intake, body: &[u8], trace: &TraceContext) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let result = match nisvakt_domain::ticket::parse_json(&text) {
        Ok(valid) => intake.submit(valid, "nats", trace).await,
        Err(v) => Err(OpsError::Invalid(v)),
    };
    let value = match result {
        Ok(receipt) => json!({ "receipt_id": receipt.receipt_id, "duplicate": receipt.duplicate }),
        Err(OpsError::Invalid(v)) => json!({
            "error": "invalid_request",
            "message": v.to_string(),
            "fields": v.errors,
        }),
        Err(OpsError::NotFound(w)) => json!({ "error": "not_found", "message": w }),
        Err(OpsError::Unavailable(w)) => {
            json!({ "error": "unavailable", "message": format!("cannot persist now: {w}") })
        }
    };
    value.to_string().into_bytes()
}

/// Subscribes and answers requests until shutdown; each request is handled
/// on its own task so a slow broker round trip does not hold up the next.
pub async fn start(
    client: async_nats::Client,
    intake: Intake,
    max_body_bytes: usize,
    shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let mut sub = client
        .queue_subscribe(subjects::TICKET_SUBMIT, QUEUE_GROUP.to_string())
        .await
        .map_err(|e| Error::Subscribe {
            subject: subjects::TICKET_SUBMIT,
            reason: e.to_string(),
        })?;
    tracing::info!(
        subject = subjects::TICKET_SUBMIT,
        "NATS ticket door listening"
    );
    Ok(tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = shutdown.wait() => break,
                m = sub.next() => m,
            };
            let Some(msg) = msg else { break };
            let Some(reply) = msg.reply.clone() else {
                tracing::warn!("a ticket on the NATS door had no reply subject; use request/reply");
                continue;
            };
            let client = client.clone();
            let intake = intake.clone();
            tokio::spawn(async move {
                let trace = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("traceparent"))
                    .and_then(|v| TraceContext::parse(v.as_str()))
                    .unwrap_or_else(TraceContext::new_root);
                let out = if msg.payload.len() > max_body_bytes {
                    json!({"error": "too_large", "message": format!("the body is over {max_body_bytes} bytes")})
                        .to_string()
                        .into_bytes()
                } else {
                    answer(&intake, &msg.payload, &trace).await
                };
                if let Err(e) = client.publish(reply, out.into()).await {
                    tracing::warn!(error = %e, "could not reply on the NATS ticket door");
                }
            });
        }
        let _ = sub.unsubscribe().await;
    }))
}
