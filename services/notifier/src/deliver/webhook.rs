//! Webhooks: one alert POSTed to one named endpoint, as nisvakt's generic
//! JSON or as a Microsoft Teams–compatible Adaptive Card, optionally signed
//! with `X-Nisvakt-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! HTTP status decides retrying: 2xx delivered; 408, 429 and 5xx
//! transient; other 4xx permanent; redirects are not followed (a moved
//! endpoint is a configuration error). This module must not retry (see
//! `retry`), choose recipients, or log a secret.

use std::{collections::BTreeMap, sync::Once, time::Duration};

use chrono::DateTime;
use hmac::{Hmac, Mac};
use nisvakt_proto::v1::{Alert, Recipient, Severity};
use serde_json::{Value, json};
use sha2::Sha256;

use super::Error as DeliveryError;
use crate::routing::{Routing, Secret, Webhook, WebhookFormat};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Nisvakt-Signature";
/// The alert id header.
pub const ALERT_ID_HEADER: &str = "X-Nisvakt-Alert-Id";
/// The idempotency key: the same alert, level and webhook always give the
/// same key, so a receiver can drop a copy sent again after a crash.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Why the webhook channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for webhooks: {0}")]
    Client(#[source] reqwest::Error),
}

/// Installs rustls' ring provider for the process, once; reqwest is built
/// with `rustls-no-provider` and would panic without it. An already
/// installed provider is kept.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The webhook channel: one HTTP client and the webhooks by name.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    client: reqwest::Client,
    hooks: BTreeMap<String, Webhook>,
}

impl WebhookChannel {
    /// The webhooks of a routing, each request given up after `timeout`.
    pub fn new(routing: &Routing, timeout: Duration) -> Result<WebhookChannel, Error> {
        WebhookChannel::from_webhooks(routing.webhooks().cloned(), timeout)
    }

    /// A channel for the given webhooks.
    pub fn from_webhooks(
        hooks: impl IntoIterator<Item = Webhook>,
        timeout: Duration,
    ) -> Result<WebhookChannel, Error> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("nisvakt-notifier/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Client)?;
        Ok(WebhookChannel {
            client,
            hooks: hooks.into_iter().map(|h| (h.name.clone(), h)).collect(),
        })
    }

    /// POSTs one alert to the webhook named `name`.
    pub async fn send(
        &self,
        alert: &Alert,
        recipient: &Recipient,
        name: &str,
    ) -> Result<(), DeliveryError> {
        let hook = self
            .hooks
            .get(name)
            .ok_or_else(|| DeliveryError::Permanent(format!("no webhook named `{name}`")))?;
        let body = match hook.format {
            WebhookFormat::Json => json_body(alert, recipient),
            WebhookFormat::Teams => teams_card(alert),
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| DeliveryError::Permanent(format!("cannot encode the body: {e}")))?;
        let mut request = self
            .client
            .post(&hook.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header(ALERT_ID_HEADER, &alert.id)
            .header(
                IDEMPOTENCY_HEADER,
                format!("{}:{}:{}", alert.id, alert.level, hook.name),
            );
        if let Some(secret) = &hook.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let response = request.body(body).send().await.map_err(|e| {
            if e.is_builder() {
                DeliveryError::Permanent(format!("webhook `{name}`: bad request: {e}"))
            } else {
                DeliveryError::Transient(format!("webhook `{name}`: {e}"))
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = format!("webhook `{name}` answered HTTP {}", status.as_u16());
        Err(match status.as_u16() {
            408 | 429 => DeliveryError::Transient(detail),
            500..=599 => DeliveryError::Transient(detail),
            300..=399 => DeliveryError::Permanent(format!(
                "{detail}: redirects are not followed; put the final URL in the routing file"
            )),
            _ => DeliveryError::Permanent(detail),
        })
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn severity_id(alert: &Alert) -> String {
    alert
        .severity()
        .as_str_name()
        .trim_start_matches("SEVERITY_")
        .to_ascii_lowercase()
}

/// nisvakt's generic JSON alert: every field of the alert, both languages.
pub fn json_body(alert: &Alert, recipient: &Recipient) -> Value {
    let raised_at = alert
        .raised_at
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map(|t| t.to_rfc3339());
    json!({
        "type": "nisvakt.v1.alert",
        "alert_id": alert.id,
        "incident_id": alert.incident_id,
        "reason": alert.reason,
        "severity": severity_id(alert),
        "level": alert.level,
        "title_sv": alert.title_sv,
        "body_sv": alert.body_sv,
        "title_en": alert.title_en,
        "body_en": alert.body_en,
        "raised_at": raised_at,
        "dedup_key": alert.dedup_key,
        "recipient": {
            "role": recipient.role,
            "name": recipient.name,
            "webhook": recipient.webhook,
        },
    })
}

/// A Teams message with one Adaptive Card (1.4): the Swedish title and
/// text, and the English behind a "show" action. Accepted by Teams
/// workflows ("when a Teams webhook request is received") and by incoming
/// webhooks.
pub fn teams_card(alert: &Alert) -> Value {
    let color = match alert.severity() {
        Severity::Critical => "Attention",
        Severity::High | Severity::Warning => "Warning",
        _ => "Default",
    };
    let english = json!({
        "type": "AdaptiveCard",
        "body": text_blocks(&alert.title_en, &alert.body_en, "Default"),
    });
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": { "width": "Full" },
                "body": text_blocks(&alert.title_sv, &alert.body_sv, color),
                "actions": [{
                    "type": "Action.ShowCard",
                    "title": "English",
                    "card": english,
                }],
            },
        }],
    })
}

/// A heading, a line of ids, then one block per line of the body (a card
/// does not keep single line breaks); an empty line becomes spacing.
fn text_blocks(title: &str, body: &str, color: &str) -> Vec<Value> {
    let mut blocks = vec![json!({
        "type": "TextBlock",
        "text": title,
        "weight": "Bolder",
        "size": "Medium",
        "color": color,
        "wrap": true,
    })];
    let mut gap = true;
    for line in body.lines() {
        if line.trim().is_empty() {
            gap = true;
            continue;
        }
        blocks.push(json!({
            "type": "TextBlock",
            "text": line.trim_start(),
            "wrap": true,
            "spacing": if gap { "Medium" } else { "None" },
        }));
        gap = false;
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_teams_card_has_the_shape_teams_expects() {
        let alert = Alert {
            severity: Severity::Critical as i32,
            title_sv: "FÖRSENAD RAPPORT".into(),
            body_sv: "Rad ett\nRad två\n\nStycke två".into(),
            title_en: "OVERDUE".into(),
            body_en: "Line".into(),
            ..Alert::default()
        };
        let card = teams_card(&alert);
        let content = &card["attachments"][0]["content"];
        assert_eq!(card["type"], "message");
        assert_eq!(
            card["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(content["type"], "AdaptiveCard");
        assert_eq!(content["body"][0]["text"], "FÖRSENAD RAPPORT");
        assert_eq!(content["body"][0]["color"], "Attention");
        assert_eq!(content["body"][2]["text"], "Rad två");
        assert_eq!(content["body"][2]["spacing"], "None");
        assert_eq!(content["body"][3]["spacing"], "Medium");
        assert_eq!(content["actions"][0]["card"]["body"][0]["text"], "OVERDUE");
    }
}
