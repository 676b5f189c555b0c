//! E-mail over SMTP (lettre): one alert to one address, through a relay
//! given as a URL.
//!
//! URLs: `smtp://host[:port]` (plain to a loopback relay, STARTTLS
//! required anywhere else), `smtp://…?tls=none|starttls|opportunistic`,
//! `smtps://host[:port]` (TLS from the start), each with optional
//! `user:password@`. The subject is the Swedish title; the body is the
//! Swedish text, then the English. lettre encodes both for UTF-8. This
//! module must not retry (see `retry`), choose recipients, or log the
//! relay password.

use std::{fmt, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox,
        header::{ContentType, HeaderName, HeaderValue},
    },
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use nisvakt_proto::v1::{Alert, Severity};

use super::Error as DeliveryError;

/// Why the e-mail channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The relay URL is malformed (shown without its password).
    #[error("SMTP relay URL `{url}`: {problem}")]
    Url {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// The sender address is not an address.
    #[error("sender address `{0}` is not a valid mailbox")]
    From(String),
    /// TLS parameters could not be built.
    #[error("TLS for SMTP relay `{host}`: {source}")]
    Tls {
        /// The relay host.
        host: String,
        /// Why.
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text: for a relay on loopback or a trusted segment only.
    None,
    /// Upgrade with STARTTLS, or fail.
    StartTls,
    /// Upgrade with STARTTLS when offered (not safe against an attacker).
    Opportunistic,
    /// TLS from the first byte (`smtps://`, usually port 465).
    Wrapper,
}

/// A parsed relay URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Connection protection.
    pub tls: TlsMode,
    /// User name for AUTH, if any.
    pub user: Option<String>,
    /// Password for AUTH, if any.
    pub password: Option<String>,
}

impl fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl RelayUrl {
    /// Parses `smtp://` and `smtps://` URLs (see the module header).
    pub fn parse(url: &str) -> Result<RelayUrl, Error> {
        let invalid = |problem: &str| Error::Url {
            url: redact(url),
            problem: problem.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected smtp://host[:port] or smtps://host[:port]"))?;
        let implicit_tls = match scheme {
            "smtp" => false,
            "smtps" => true,
            _ => return Err(invalid("the scheme must be smtp or smtps")),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(invalid("a relay URL has no path"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| invalid("the port is not a number from 1 to 65535"))?,
            None if implicit_tls => 465,
            None => 25,
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                let user =
                    percent_decode(user).ok_or_else(|| invalid("bad %-escape in the user"))?;
                let password = percent_decode(password)
                    .ok_or_else(|| invalid("bad %-escape in the password"))?;
                (
                    (!user.is_empty()).then_some(user),
                    (!password.is_empty()).then_some(password),
                )
            }
        };
        let mut tls = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("tls", value)) if !implicit_tls => {
                    tls = Some(match value {
                        "none" => TlsMode::None,
                        "starttls" | "required" => TlsMode::StartTls,
                        "opportunistic" => TlsMode::Opportunistic,
                        _ => {
                            return Err(invalid("tls must be none, starttls or opportunistic"));
                        }
                    });
                }
                Some(("tls", _)) => {
                    return Err(invalid("smtps:// is always TLS; drop the tls parameter"));
                }
                _ => return Err(invalid("the only query parameter is tls")),
            }
        }
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "::1");
        let tls = match (implicit_tls, tls) {
            (true, _) => TlsMode::Wrapper,
            (false, Some(mode)) => mode,
            (false, None) if loopback => TlsMode::None,
            (false, None) => TlsMode::StartTls,
        };
        Ok(RelayUrl {
            host: host.to_owned(),
            port,
            tls,
            user,
            password,
        })
    }
}

/// The e-mail channel: a pooled connection to one relay.
#[derive(Clone)]
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    relay: String,
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("relay", &self.relay)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl EmailChannel {
    /// Connects lazily to the relay at `url`, sending as `from` (e.g.
    /// `nisvakt <nisvakt@example.se>`), giving up on a silent relay after
    /// `timeout`. Call it inside a Tokio runtime: the connection pool
    /// starts its clean-up task at once.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<EmailChannel, Error> {
        let relay = RelayUrl::parse(url)?;
        let from: Mailbox = from.parse().map_err(|_| Error::From(from.to_owned()))?;
        let tls_params = || {
            TlsParameters::new(relay.host.clone()).map_err(|source| Error::Tls {
                host: relay.host.clone(),
                source,
            })
        };
        let tls = match relay.tls {
            TlsMode::None => Tls::None,
            TlsMode::StartTls => Tls::Required(tls_params()?),
            TlsMode::Opportunistic => Tls::Opportunistic(tls_params()?),
            TlsMode::Wrapper => Tls::Wrapper(tls_params()?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(relay.host.clone())
                .port(relay.port)
                .tls(tls)
                .timeout(Some(timeout));
        if let Some(user) = &relay.user {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                relay.password.clone().unwrap_or_default(),
            ));
        }
        Ok(EmailChannel {
            transport: builder.build(),
            from,
            relay: format!("{}:{} ({:?})", relay.host, relay.port, relay.tls),
        })
    }

    /// Sends one alert to one address.
    pub async fn send(&self, alert: &Alert, to: &str) -> Result<(), DeliveryError> {
        let message = build_message(alert, &self.from, to)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// The message for one recipient: Swedish subject, Swedish then English
/// body, and headers that let a mail system sort and de-duplicate it.
pub fn build_message(alert: &Alert, from: &Mailbox, to: &str) -> Result<Message, DeliveryError> {
    let to: Mailbox = to
        .parse()
        .map_err(|_| DeliveryError::Permanent(format!("`{to}` is not an e-mail address")))?;
    let mut body = alert.body_sv.trim_end().to_owned();
    if !alert.body_en.trim().is_empty() {
        body.push_str("\n\n――――――――――――――――――――――――――――――――\n\n");
        body.push_str(alert.title_en.trim());
        body.push_str("\n\n");
        body.push_str(alert.body_en.trim_end());
    }
    body.push('\n');
    let token = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect()
    };
    let header = |name: &'static str, value: String| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
    };
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(alert.title_sv.trim())
        // The same alert at the same level always has the same id, so a
        // copy sent again after a crash can be recognised as one.
        .message_id(Some(format!(
            "<{}.l{}@nisvakt.invalid>",
            token(&alert.id),
            alert.level
        )))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(header("X-Nisvakt-Alert-Id", token(&alert.id)))
        .raw_header(header("X-Nisvakt-Incident-Id", token(&alert.incident_id)))
        .raw_header(header("X-Nisvakt-Reason", token(&alert.reason)))
        .raw_header(header("X-Nisvakt-Level", alert.level.to_string()));
    if matches!(alert.severity(), Severity::High | Severity::Critical) {
        builder = builder
            .raw_header(header("Importance", "high".to_owned()))
            .raw_header(header("X-Priority", "1".to_owned()));
    }
    builder
        .body(body)
        .map_err(|e| DeliveryError::Permanent(format!("cannot build the message: {e}")))
}

/// SMTP 5xx is permanent; 4xx, timeouts, TLS and connection trouble are
/// worth another try.
fn classify(error: lettre::transport::smtp::Error) -> DeliveryError {
    if error.is_permanent() {
        DeliveryError::Permanent(format!("SMTP relay refused: {error}"))
    } else {
        DeliveryError::Transient(format!("SMTP: {error}"))
    }
}

fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => match rest.rsplit_once('@') {
            Some((info, host)) => {
                let user = info.split(':').next().unwrap_or("");
                if info.contains(':') {
                    format!("{scheme}://{user}:***@{host}")
                } else {
                    format!("{scheme}://{user}@{host}")
                }
            }
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_choose_safe_tls_by_default() {
        let local = RelayUrl::parse("smtp://127.0.0.1:2525").expect("valid");
        assert_eq!(
            (local.host.as_str(), local.port, local.tls),
            ("127.0.0.1", 2525, TlsMode::None)
        );
        let remote = RelayUrl::parse("smtp://relay.example.se").expect("valid");
        assert_eq!((remote.port, remote.tls), (25, TlsMode::StartTls));
        let explicit = RelayUrl::parse("smtp://relay.example.se:587?tls=starttls").expect("valid");
        assert_eq!((explicit.port, explicit.tls), (587, TlsMode::StartTls));
        let plain = RelayUrl::parse("smtp://relay.example.se?tls=none").expect("valid");
        assert_eq!(plain.tls, TlsMode::None);
        let wrapped = RelayUrl::parse("smtps://nisvakt:p%40ss@relay.example.se").expect("valid");
        assert_eq!((wrapped.port, wrapped.tls), (465, TlsMode::Wrapper));
        assert_eq!(wrapped.user.as_deref(), Some("nisvakt"));
        assert_eq!(wrapped.password.as_deref(), Some("p@ss"));
        assert!(!format!("{wrapped:?}").contains("p@ss"));
    }

    #[test]
    fn bad_relay_urls_are_refused_without_showing_the_password() {
        for (url, problem) in [
            ("http://relay", "the scheme must be smtp or smtps"),
            ("smtp://", "no host"),
            ("smtp://relay:99999", "the port is not a number"),
            ("smtp://relay?tls=maybe", "tls must be none"),
            (
                "smtp://u:hunter2@relay?x=1",
                "the only query parameter is tls",
            ),
        ] {
            let error = RelayUrl::parse(url).expect_err(url).to_string();
            assert!(error.contains(problem), "{url}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn the_message_keeps_swedish_text_and_marks_urgent_alerts() {
        let alert = Alert {
            id: "alt_abc".into(),
            incident_id: "inc_1".into(),
            reason: "due".into(),
            severity: Severity::Critical as i32,
            level: 1,
            title_sv: "FRISTEN GÅR UT NU: Skede 1 – Journalsystemet".into(),
            body_sv: "Åtgärda nu: rapportera i IRON.".into(),
            title_en: "DEADLINE NOW".into(),
            body_en: "Report now.".into(),
            ..Alert::default()
        };
        let from: Mailbox = "nisvakt <nisvakt@example.invalid>"
            .parse()
            .expect("mailbox");
        let message = build_message(&alert, &from, "chef@example.invalid").expect("builds");
        let raw = String::from_utf8(message.formatted()).expect("utf-8");
        assert!(
            raw.contains("Message-ID: <alt_abc.l1@nisvakt.invalid>"),
            "{raw}"
        );
        assert!(raw.contains("X-Nisvakt-Reason: due"));
        assert!(raw.contains("Importance: high"));
        assert!(
            raw.contains("Subject: FRISTEN =?utf-8?b?R8OFUg==?= UT NU"),
            "{raw}"
        );
        assert!(build_message(&alert, &from, "not an address").is_err_and(|e| e.is_permanent()));
    }
}
