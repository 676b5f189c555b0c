//! Delivery: one alert to one recipient over one channel (e-mail or a
//! webhook), with retries in [`retry`].
//!
//! The service loop calls [`Channel::deliver`] and records every attempt;
//! this module says whether a failure is worth retrying. It must not decide
//! who gets an alert (that is `routing`), write alert text (that is
//! `render`), or remember what was already sent (that is the caller's
//! delivery ledger).

pub mod email;
pub mod retry;
pub mod webhook;

use futures::future::BoxFuture;
use nisvakt_proto::v1::{Alert, Recipient};

pub use email::EmailChannel;
pub use retry::{Attempt, AttemptOutcome, RetryPolicy, deliver_with_retry};
pub use webhook::WebhookChannel;

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The receiver refused for good (HTTP 4xx except 408/429, SMTP 5xx, a
    /// bad address, a missing channel): retrying sends the same refusal.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The receiver was unreachable, slow or busy (HTTP 5xx, 408, 429,
    /// SMTP 4xx, network errors): worth another attempt.
    #[error("transient failure: {0}")]
    Transient(String),
}

/// The name the notifier's loop uses for [`Error`].
pub type DeliveryError = Error;

impl Error {
    /// True when retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Permanent(_))
    }
}

/// Where one recipient is reached: exactly one address or webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An e-mail address.
    Email(String),
    /// A webhook name from the routing file.
    Webhook(String),
}

impl Target {
    /// The target of a recipient. Routing gives each recipient exactly one;
    /// a recipient with both or neither is refused rather than half sent.
    pub fn of(recipient: &Recipient) -> Result<Target, Error> {
        match (recipient.email.trim(), recipient.webhook.trim()) {
            (email, "") if !email.is_empty() => Ok(Target::Email(email.to_owned())),
            ("", webhook) if !webhook.is_empty() => Ok(Target::Webhook(webhook.to_owned())),
            ("", "") => Err(Error::Permanent(format!(
                "recipient `{}` ({}) has neither an e-mail address nor a webhook",
                recipient.name, recipient.role
            ))),
            _ => Err(Error::Permanent(format!(
                "recipient `{}` ({}) has both an e-mail address and a webhook; \
                 give each its own recipient",
                recipient.name, recipient.role
            ))),
        }
    }

    /// The channel name of `DeliveryResult.channel`: `email` or `webhook`.
    pub fn channel(&self) -> &'static str {
        match self {
            Target::Email(_) => "email",
            Target::Webhook(_) => "webhook",
        }
    }

    /// The address or webhook name, for `DeliveryResult.target`.
    pub fn address(&self) -> &str {
        match self {
            Target::Email(address) | Target::Webhook(address) => address,
        }
    }
}

/// Something that can deliver an alert to a recipient.
pub trait Channel: Send + Sync {
    /// Delivers one alert to one recipient, once; retrying is the
    /// caller's (see [`deliver_with_retry`]).
    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        recipient: &'a Recipient,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// Every configured channel behind one [`Channel`]: picks e-mail or the
/// webhook by the recipient's target.
pub struct Deliverer {
    email: Option<EmailChannel>,
    webhook: Option<WebhookChannel>,
}

impl Deliverer {
    /// Channels left out refuse their recipients with a permanent error.
    pub fn new(email: Option<EmailChannel>, webhook: Option<WebhookChannel>) -> Deliverer {
        Deliverer { email, webhook }
    }
}

impl Channel for Deliverer {
    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        recipient: &'a Recipient,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match Target::of(recipient)? {
                Target::Email(address) => match &self.email {
                    Some(email) => email.send(alert, &address).await,
                    None => Err(Error::Permanent(
                        "no SMTP relay is configured for e-mail recipients".to_owned(),
                    )),
                },
                Target::Webhook(name) => match &self.webhook {
                    Some(webhook) => webhook.send(alert, recipient, &name).await,
                    None => Err(Error::Permanent("no webhooks are configured".to_owned())),
                },
            }
        })
    }
}

impl Channel for EmailChannel {
    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        recipient: &'a Recipient,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match Target::of(recipient)? {
                Target::Email(address) => self.send(alert, &address).await,
                Target::Webhook(name) => Err(Error::Permanent(format!(
                    "the e-mail channel cannot deliver to webhook `{name}`"
                ))),
            }
        })
    }
}

impl Channel for WebhookChannel {
    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        recipient: &'a Recipient,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match Target::of(recipient)? {
                Target::Webhook(name) => self.send(alert, recipient, &name).await,
                Target::Email(address) => Err(Error::Permanent(format!(
                    "the webhook channel cannot deliver to e-mail address `{address}`"
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(email: &str, webhook: &str) -> Recipient {
        Recipient {
            role: "manager".into(),
            name: "Chef".into(),
            email: email.into(),
            webhook: webhook.into(),
        }
    }

    #[test]
    fn a_recipient_has_exactly_one_target() {
        assert_eq!(
            Target::of(&recipient("a@b.se", "")),
            Ok(Target::Email("a@b.se".into()))
        );
        assert_eq!(
            Target::of(&recipient("", "teams")),
            Ok(Target::Webhook("teams".into()))
        );
        assert!(Target::of(&recipient("", "")).is_err_and(|e| e.is_permanent()));
        assert!(Target::of(&recipient("a@b.se", "teams")).is_err_and(|e| e.is_permanent()));
    }

    #[tokio::test]
    async fn a_missing_channel_is_a_permanent_error() {
        let deliverer = Deliverer::new(None, None);
        let alert = Alert::default();
        let result = deliverer.deliver(&alert, &recipient("a@b.se", "")).await;
        assert!(result.is_err_and(|e| e.is_permanent()));
    }
}
