//! nisctl's only way out: the intake REST API over HTTP with a bearer
//! token. Turns every failure into an `Error` that says what to do next, in
//! Swedish or English. It must not print anything itself and never shows
//! the token.

use std::time::Duration;

use serde_json::Value;

use crate::Lang;

/// Why a call failed, with the advice an operator needs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens at the URL.
    #[error("{0}")]
    Unreachable(String),
    /// 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 400 with the fields named.
    #[error("{0}")]
    Invalid(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 503 or another server-side failure.
    #[error("{0}")]
    Server(String),
    /// A file or an argument nisctl could not use.
    #[error("{0}")]
    Input(String),
}

/// An API client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Long-lived requests (the event stream) have no overall timeout.
    stream_http: reqwest::Client,
    base: String,
    token: Option<String>,
    lang: Lang,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>, lang: Lang) -> Result<Client, Error> {
        let build = |timeout: Option<Duration>| {
            let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
            if let Some(t) = timeout {
                b = b.timeout(t);
            }
            b.build()
                .map_err(|e| Error::Input(format!("HTTP client: {e}")))
        };
        Ok(Client {
            http: build(Some(Duration::from_secs(30)))?,
            stream_http: build(None)?,
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.trim().is_empty()),
            lang,
        })
    }

    fn says(&self, sv: String, en: String) -> String {
        match self.lang {
            Lang::Sv => sv,
            Lang::En => en,
        }
    }

    fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let r = http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        if e.is_connect() || e.is_timeout() {
            Error::Unreachable(self.says(
                format!(
                    "kan inte nå intake på {}. Kör den? Starta hela systemet med `cargo xtask up`, \
                     eller ange rätt adress med --url / NISVAKT_URL.",
                    self.base
                ),
                format!(
                    "cannot reach intake at {}. Is it running? Start the whole system with \
                     `cargo xtask up`, or give the right address with --url / NISVAKT_URL.",
                    self.base
                ),
            ))
        } else {
            Error::Server(format!("{}: {e}", self.base))
        }
    }

    async fn answer(&self, r: reqwest::Response) -> Result<Value, Error> {
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let message = body["message"].as_str().unwrap_or("").to_string();
        match status {
            200..=299 => Ok(body),
            401 => Err(Error::Unauthenticated(self.says(
                format!(
                    "intake kräver en token ({message}). Sätt NISVAKT_TOKEN eller använd --token \
                     med en operatörs- eller läsartoken från NISVAKT_TOKENS."
                ),
                format!(
                    "intake needs a token ({message}). Set NISVAKT_TOKEN or pass --token with an \
                     operator or viewer token from NISVAKT_TOKENS."
                ),
            ))),
            403 => Err(Error::Forbidden(self.says(
                format!("din token får inte göra detta ({message}). Använd en operatörstoken."),
                format!("your token may not do this ({message}). Use an operator token."),
            ))),
            400 => {
                let fields = body["fields"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|f| {
                                format!(
                                    "  {}: {}",
                                    f["field"].as_str().unwrap_or("?"),
                                    f["message"].as_str().unwrap_or("")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default();
                Err(Error::Invalid(self.says(
                    format!("intake tog inte emot det; rätta dessa fält:\n{fields}"),
                    format!("intake refused it; fix these fields:\n{fields}"),
                )))
            }
            404 => Err(Error::NotFound(self.says(
                format!("finns inte ({message}). `nisctl list` visar öppna incidenter."),
                format!("not found ({message}). `nisctl list` shows open incidents."),
            ))),
            413 => Err(Error::Input(self.says(
                "ärendet är för stort för intake (NISVAKT_MAX_BODY_BYTES).".into(),
                "the ticket is too large for intake (NISVAKT_MAX_BODY_BYTES).".into(),
            ))),
            503 => Err(Error::Server(self.says(
                format!("intake kan inte spara just nu ({message}). Kontrollera att NATS körs och försök igen; inget sparades."),
                format!("intake cannot persist right now ({message}). Check that NATS is running and try again; nothing was stored."),
            ))),
            s => Err(Error::Server(format!("HTTP {s}: {message}"))),
        }
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, Error> {
        let r = self
            .request(&self.http, reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.answer(r).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let r = self
            .request(&self.http, reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.answer(r).await
    }

    /// Opens `GET /v1/stream`; the response body is the event stream.
    pub async fn stream(&self) -> Result<reqwest::Response, Error> {
        let r = self
            .request(&self.stream_http, reqwest::Method::GET, "/v1/stream")
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if r.status().is_success() {
            Ok(r)
        } else {
            Err(self
                .answer(r)
                .await
                .err()
                .unwrap_or_else(|| Error::Server("stream refused".into())))
        }
    }
}
