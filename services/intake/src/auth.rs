//! Who may do what at intake's doors: bearer tokens per role
//! (`NISVAKT_TOKENS`) and an HMAC-SHA256 signature of the body
//! (`X-Nisvakt-Signature`, secret `NISVAKT_WEBHOOK_SECRET`) that grants the
//! `ticketing` role. Every comparison of a secret is constant-time.
//!
//! This module decides identity and permission only. It never logs a token,
//! a secret or a signature, and it knows nothing of HTTP status codes or
//! gRPC statuses: the doors translate its `Error`.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What a caller may do. `Operator` includes everything `Viewer` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The ticketing system: may only submit tickets.
    Ticketing,
    /// NIS assessors, the security unit, on-call managers: read and act.
    Operator,
    /// Dashboards and onlookers: read only.
    Viewer,
}

impl Role {
    /// The role's name in `NISVAKT_TOKENS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ticketing => "ticketing",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role, Error> {
        match s.trim() {
            "ticketing" => Ok(Role::Ticketing),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            other => Err(Error::Config(format!(
                "unknown role {other:?} in NISVAKT_TOKENS (use ticketing, operator or viewer)"
            ))),
        }
    }
}

/// What a request wants to do; each door names it per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Submit a ticket.
    SubmitTicket,
    /// Read incidents, alerts, the stream.
    Read,
    /// Record an assessment, report a stage, resolve, acknowledge.
    Act,
}

impl Action {
    /// Whether `role` may do this. Operators may also submit a ticket (a
    /// report that reached them by phone); the ticketing system may do
    /// nothing else.
    pub fn allowed_for(self, role: Role) -> bool {
        match self {
            Action::SubmitTicket => matches!(role, Role::Ticketing | Role::Operator),
            Action::Read => matches!(role, Role::Operator | Role::Viewer),
            Action::Act => role == Role::Operator,
        }
    }
}

/// Why a caller was turned away, or why the configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No credentials, or credentials that match nothing (HTTP 401).
    #[error("authentication required: {0}")]
    Unauthenticated(&'static str),
    /// Valid credentials for a role that may not do this (HTTP 403).
    #[error("the role {role} may not {action}")]
    Forbidden {
        /// The caller's role.
        role: &'static str,
        /// What was asked, in words.
        action: &'static str,
    },
    /// `NISVAKT_TOKENS` or the secret cannot be used.
    #[error("{0}")]
    Config(String),
}

/// A secret from the environment; its `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text (for building the verifier only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret(***)"
        })
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// The credentials intake accepts. Empty (no tokens, no secret) means open.
#[derive(Clone, Default)]
pub struct Auth {
    /// SHA-256 of each token with its role: comparing fixed-length digests
    /// keeps the comparison constant-time whatever the token's length.
    tokens: Vec<([u8; 32], Role)>,
    /// The webhook secret, when set.
    webhook_secret: Option<Vec<u8>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .field("webhook_secret", &self.webhook_secret.is_some())
            .finish()
    }
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// Equal without an early exit: the time taken does not depend on where
/// two digests first differ.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// Reads `role=token,role=token,…` (a role may appear several times) and
    /// the webhook secret. Blank values count as unset.
    pub fn from_config(
        tokens: Option<&Secret>,
        webhook_secret: Option<&Secret>,
    ) -> Result<Auth, Error> {
        let mut auth = Auth::default();
        for pair in tokens
            .map(Secret::expose)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (role, token) = pair.split_once('=').ok_or_else(|| {
                Error::Config(
                    "NISVAKT_TOKENS must look like ticketing=…,operator=…,viewer=… (an entry has no '=')"
                        .into(),
                )
            })?;
            let role: Role = role.parse()?;
            let token = token.trim();
            if token.is_empty() {
                return Err(Error::Config(format!(
                    "a {} entry in NISVAKT_TOKENS has an empty token",
                    role.as_str()
                )));
            }
            auth.tokens.push((digest(token.as_bytes()), role));
        }
        auth.webhook_secret = webhook_secret
            .map(|s| s.expose().trim())
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec());
        Ok(auth)
    }

    /// True when neither tokens nor a webhook secret are configured: every
    /// request is let through (for a laptop; logged loudly at start).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.webhook_secret.is_none()
    }

    /// The role of a bearer token, if it is one of ours.
    pub fn role_of_token(&self, token: &str) -> Option<Role> {
        let d = digest(token.trim().as_bytes());
        // Compare with every entry so the time does not tell which matched.
        let mut found = None;
        for (t, role) in &self.tokens {
            if ct_eq(t, &d) && found.is_none() {
                found = Some(*role);
            }
        }
        found
    }

    /// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body`
    /// under the webhook secret.
    pub fn signature_valid(&self, signature: &str, body: &[u8]) -> bool {
        let Some(secret) = &self.webhook_secret else {
            return false;
        };
        let Some(hex_sig) = signature.trim().strip_prefix("sha256=") else {
            return false;
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&sig).is_ok()
    }

    /// Decides a request: `authorization` is the raw `Authorization` value
    /// (or gRPC metadata), `signature` the `X-Nisvakt-Signature` value and
    /// `body` the raw body it signs (tickets only).
    pub fn check(
        &self,
        action: Action,
        authorization: Option<&str>,
        signature: Option<(&str, &[u8])>,
    ) -> Result<Option<Role>, Error> {
        if self.is_open() {
            return Ok(None);
        }
        let role = if let Some(value) = authorization {
            let token = value
                .trim()
                .strip_prefix("Bearer ")
                .or_else(|| value.trim().strip_prefix("bearer "))
                .ok_or(Error::Unauthenticated(
                    "the Authorization header must be `Bearer <token>`",
                ))?;
            self.role_of_token(token)
                .ok_or(Error::Unauthenticated("the token is not valid"))?
        } else if let Some((sig, body)) = signature {
            if self.signature_valid(sig, body) {
                Role::Ticketing
            } else {
                return Err(Error::Unauthenticated(
                    "the X-Nisvakt-Signature does not match the body",
                ));
            }
        } else {
            return Err(Error::Unauthenticated(
                "send `Authorization: Bearer <token>` or an X-Nisvakt-Signature",
            ));
        };
        if action.allowed_for(role) {
            Ok(Some(role))
        } else {
            Err(Error::Forbidden {
                role: role.as_str(),
                action: match action {
                    Action::SubmitTicket => "submit tickets",
                    Action::Read => "read incidents",
                    Action::Act => "act on incidents",
                },
            })
        }
    }
}

/// `sha256=<hex>` of `body` under `secret`: what a sender puts in
/// `X-Nisvakt-Signature` (used by tests, the benchmark and nisctl).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::from_config(
            Some(&Secret(
                "ticketing=tick-0001,operator=oper-0001,operator=oper-0002,viewer=view-0001".into(),
            )),
            Some(&Secret("hush-hush".into())),
        )
        .unwrap()
    }

    #[test]
    fn every_role_gets_exactly_what_it_may_do() {
        let a = auth();
        let bearer = |t: &str| format!("Bearer {t}");
        assert_eq!(
            a.check(Action::SubmitTicket, Some(&bearer("tick-0001")), None),
            Ok(Some(Role::Ticketing))
        );
        assert!(matches!(
            a.check(Action::Read, Some(&bearer("tick-0001")), None),
            Err(Error::Forbidden { .. })
        ));
        assert!(
            a.check(Action::Act, Some(&bearer("oper-0002")), None)
                .is_ok()
        );
        assert!(
            a.check(Action::Read, Some(&bearer("view-0001")), None)
                .is_ok()
        );
        assert!(matches!(
            a.check(Action::Act, Some(&bearer("view-0001")), None),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(
            a.check(Action::Read, Some(&bearer("nope-nope")), None),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            a.check(Action::Read, None, None),
            Err(Error::Unauthenticated(_))
        ));
    }

    #[test]
    fn a_signature_of_the_body_grants_the_ticketing_role_only() {
        let a = auth();
        let body = br#"{"x":1}"#;
        let sig = sign(b"hush-hush", body);
        assert_eq!(
            a.check(Action::SubmitTicket, None, Some((&sig, body))),
            Ok(Some(Role::Ticketing))
        );
        assert!(
            a.check(Action::SubmitTicket, None, Some((&sig, b"{}")))
                .is_err()
        );
        assert!(a.check(Action::Read, None, Some((&sig, body))).is_err());
        assert!(!a.signature_valid("sha256=zz", body));
    }

    #[test]
    fn nothing_configured_means_open_and_bad_config_is_named() {
        assert!(Auth::from_config(None, None).unwrap().is_open());
        assert!(
            Auth::from_config(Some(&Secret(" ".into())), None)
                .unwrap()
                .is_open()
        );
        assert!(Auth::from_config(Some(&Secret("admin=abcdefgh".into())), None).is_err());
        assert!(Auth::from_config(Some(&Secret("operator".into())), None).is_err());
        assert!(format!("{:?}", Secret("x".into())).contains("***"));
    }
}
