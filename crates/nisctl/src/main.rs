//! `nisctl`: the operators' command line. Submits tickets, lists and shows
//! incidents (a table with Swedish headings and Europe/Stockholm times, or
//! `--json` for scripts), records assessments, reports stages, resolves,
//! acknowledges alerts and tails the live stream. It talks only to intake's
//! REST API and decides nothing itself: reportability and deadlines come
//! from the projection.

#![forbid(unsafe_code)]

mod client;
mod view;

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use serde_json::{Map, Value};

use client::Client;

/// Output language for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Svenska (default).
    Sv,
    /// English.
    En,
}

/// nisvakt från kommandoraden / nisvakt from the command line.
///
/// Talks to intake's REST API. Set NISVAKT_URL (default
/// http://127.0.0.1:8080) and NISVAKT_TOKEN (an operator token from
/// intake's NISVAKT_TOKENS; not needed when intake runs open, as after
/// `cargo xtask up`). Times are shown in Swedish time (Europe/Stockholm).
#[derive(Debug, Parser)]
#[command(name = "nisctl", version)]
struct Cli {
    /// Intake's address.
    #[arg(
        long,
        global = true,
        env = "NISVAKT_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Bearer token (operator, viewer, or ticketing for `submit`).
    #[arg(long, global = true, env = "NISVAKT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Language of the output: sv (default) or en.
    #[arg(
        long,
        global = true,
        env = "NISVAKT_LANG",
        value_enum,
        default_value = "sv"
    )]
    lang: Lang,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Submit a ticket, from flags or a JSON file (the body of POST /v1/tickets).
    Submit(Submit),
    /// List open incidents: reportability and the next deadline.
    List {
        /// Include resolved incidents.
        #[arg(long)]
        all: bool,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one incident: assessment with reasons, every deadline, timeline.
    Show {
        /// The incident id (inc_…).
        id: String,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List alerts that wait for acknowledgement.
    Alerts {
        /// Include acknowledged alerts.
        #[arg(long)]
        all: bool,
        /// Only this incident's alerts.
        #[arg(long)]
        incident: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Record a person's assessment of an incident.
    Assess {
        /// The incident id.
        id: String,
        /// Who assessed (your name).
        #[arg(long)]
        by: String,
        /// Could intended care measures not be carried out?
        #[arg(long)]
        care_blocked: Option<bool>,
        /// Patient harm: none, risk or occurred.
        #[arg(long, value_parser = ["none", "risk", "occurred"])]
        patient_harm: String,
        /// Were personal data exposed, lost or altered?
        #[arg(long)]
        personal_data_breach: Option<bool>,
        /// Does it concern security-sensitive activity?
        #[arg(long)]
        security_protection: Option<bool>,
        /// Why, in a sentence.
        #[arg(long)]
        reasoning: Option<String>,
    },
    /// Record that a stage was reported (e.g. skede 1 in IRON).
    Report {
        /// The incident id.
        id: String,
        /// The stage: 1, 2, 3, early_warning, …
        #[arg(long)]
        stage: String,
        /// The duty: nis, personal_data, lex_maria, security_protection.
        #[arg(long, default_value = "nis")]
        duty: String,
        /// Who reported (your name).
        #[arg(long)]
        by: String,
        /// How: tool, letter, phone or email.
        #[arg(long, default_value = "tool", value_parser = ["tool", "letter", "phone", "email"])]
        channel: String,
        /// When (RFC 3339); now when absent.
        #[arg(long)]
        at: Option<String>,
        /// Only this rule set; every active one with the duty and stage when absent.
        #[arg(long)]
        rule_set: Option<String>,
    },
    /// Resolve an incident.
    Resolve {
        /// The incident id.
        id: String,
        /// Who resolved it (your name).
        #[arg(long)]
        by: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
        /// When it was resolved (RFC 3339); now when absent.
        #[arg(long)]
        at: Option<String>,
    },
    /// Acknowledge an alert (stops its escalation).
    Ack {
        /// The alert id (alt_…).
        id: String,
        /// Who acknowledges (your name).
        #[arg(long)]
        by: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Follow incidents, deadlines and alerts live until Ctrl-C.
    Watch {
        /// Print each event's JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct Submit {
    /// A JSON file with the whole ticket; flags given as well override its fields.
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    /// The sending system.
    #[arg(long)]
    source: Option<String>,
    /// The ticket's id in that system.
    #[arg(long)]
    ticket_id: Option<String>,
    /// Revision of the ticket (raise it for each update).
    #[arg(long)]
    revision: Option<i64>,
    /// Subject line (ärenderad); write "Eventuell NIS-incident" when suspected.
    #[arg(long)]
    subject: Option<String>,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    /// Reporting unit.
    #[arg(long)]
    unit: Option<String>,
    /// Affected system.
    #[arg(long)]
    system: Option<String>,
    /// record_system, planning_system, business_system, email, telephony, network, login, other.
    #[arg(long)]
    category: Option<String>,
    /// When the ticket was created (RFC 3339); now when absent.
    #[arg(long)]
    reported_at: Option<String>,
    /// When the disruption began (RFC 3339).
    #[arg(long)]
    started_at: Option<String>,
    /// When it ended (RFC 3339); omit while it goes on.
    #[arg(long)]
    ended_at: Option<String>,
    /// Could intended care measures not be carried out?
    #[arg(long)]
    care_blocked: Option<bool>,
    /// none, risk, occurred or unknown.
    #[arg(long)]
    patient_harm: Option<String>,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ticket_body(s: Submit) -> Result<Value, client::Error> {
    let mut body: Map<String, Value> = match &s.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| client::Error::Input(format!("{}: {e}", path.display())))?;
            match serde_json::from_str(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(client::Error::Input(format!(
                        "{}: must hold one JSON object",
                        path.display()
                    )));
                }
                Err(e) => {
                    return Err(client::Error::Input(format!("{}: {e}", path.display())));
                }
            }
        }
        None => Map::new(),
    };
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(k.to_string(), v);
        }
    };
    set("source", s.source.map(Value::from));
    set("ticket_id", s.ticket_id.map(Value::from));
    set("revision", s.revision.map(Value::from));
    set("subject", s.subject.map(Value::from));
    set("description", s.description.map(Value::from));
    set("unit", s.unit.map(Value::from));
    set("system", s.system.map(Value::from));
    set("category", s.category.map(Value::from));
    set("reported_at", s.reported_at.map(Value::from));
    set("disruption_started_at", s.started_at.map(Value::from));
    set("disruption_ended_at", s.ended_at.map(Value::from));
    set("care_blocked", s.care_blocked.map(Value::from));
    set("patient_harm", s.patient_harm.map(Value::from));
    body.entry("source").or_insert_with(|| "nisctl".into());
    body.entry("reported_at").or_insert_with(|| now().into());
    Ok(Value::Object(body))
}

fn object(pairs: &[(&str, Option<Value>)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
            .collect(),
    )
}

fn path_id(id: &str) -> String {
    // Incident and alert ids are ULID-like; anything else is escaped.
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32 & 0xff)
            }
        })
        .collect()
}

async fn run(cli: Cli) -> Result<(), client::Error> {
    let lang = cli.lang;
    let c = Client::new(&cli.url, cli.token, lang)?;
    let sv = |sv: &str, en: &str| -> String {
        if lang == Lang::Sv {
            sv.into()
        } else {
            en.into()
        }
    };
    match cli.command {
        Command::Submit(s) => {
            let r = c.post("/v1/tickets", &ticket_body(s)?).await?;
            let dup = r["duplicate"].as_bool().unwrap_or(false);
            println!(
                "{} {}{}",
                sv("Mottaget:", "Accepted:"),
                r["receipt_id"].as_str().unwrap_or("?"),
                if dup {
                    sv(
                        " (fanns redan; inget nytt sparades)",
                        " (already had it; nothing new stored)",
                    )
                } else {
                    String::new()
                }
            );
        }
        Command::List { all, json } => {
            let r = c
                .get(if all {
                    "/v1/incidents?include_resolved=true"
                } else {
                    "/v1/incidents"
                })
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r["incidents"]).unwrap_or_default()
                );
            } else {
                print!(
                    "{}",
                    view::list(
                        r["incidents"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                        lang,
                        Utc::now()
                    )
                );
            }
        }
        Command::Show { id, json } => {
            let r = c.get(&format!("/v1/incidents/{}", path_id(&id))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", view::show(&r, lang, Utc::now()));
            }
        }
        Command::Alerts {
            all,
            incident,
            json,
        } => {
            let mut q = format!("/v1/alerts?include_acked={all}");
            if let Some(i) = incident {
                q.push_str(&format!("&incident_id={}", path_id(&i)));
            }
            let r = c.get(&q).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r["alerts"]).unwrap_or_default()
                );
            } else {
                print!(
                    "{}",
                    view::alerts(
                        r["alerts"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                        lang
                    )
                );
            }
        }
        Command::Assess {
            id,
            by,
            care_blocked,
            patient_harm,
            personal_data_breach,
            security_protection,
            reasoning,
        } => {
            let body = object(&[
                ("assessed_by", Some(by.into())),
                ("care_blocked", care_blocked.map(Value::from)),
                ("patient_harm", Some(patient_harm.into())),
                (
                    "personal_data_breach",
                    personal_data_breach.map(Value::from),
                ),
                ("security_protection", security_protection.map(Value::from)),
                ("reasoning", reasoning.map(Value::from)),
            ]);
            let r = c
                .post(&format!("/v1/incidents/{}/assessment", path_id(&id)), &body)
                .await?;
            accepted(&r, lang);
        }
        Command::Report {
            id,
            stage,
            duty,
            by,
            channel,
            at,
            rule_set,
        } => {
            let body = object(&[
                ("duty", Some(duty.into())),
                ("stage", Some(stage.into())),
                ("reported_by", Some(by.into())),
                ("channel", Some(channel.into())),
                ("reported_at", at.map(Value::from)),
                ("rule_set", rule_set.map(Value::from)),
            ]);
            let r = c
                .post(&format!("/v1/incidents/{}/reports", path_id(&id)), &body)
                .await?;
            accepted(&r, lang);
        }
        Command::Resolve { id, by, note, at } => {
            let body = object(&[
                ("resolved_by", Some(by.into())),
                ("note", note.map(Value::from)),
                ("resolved_at", at.map(Value::from)),
            ]);
            let r = c
                .post(&format!("/v1/incidents/{}/resolve", path_id(&id)), &body)
                .await?;
            accepted(&r, lang);
        }
        Command::Ack { id, by, note } => {
            let body = object(&[
                ("acked_by", Some(by.into())),
                ("note", note.map(Value::from)),
            ]);
            let r = c
                .post(&format!("/v1/alerts/{}/ack", path_id(&id)), &body)
                .await?;
            accepted(&r, lang);
        }
        Command::Watch { json } => watch(&c, json, lang).await?,
    }
    Ok(())
}

fn accepted(r: &Value, lang: Lang) {
    let id = r["command_id"].as_str().unwrap_or("?");
    match lang {
        Lang::Sv => {
            println!("Sparat (kommando {id}). `nisctl show` visar resultatet när det är behandlat.")
        }
        Lang::En => {
            println!("Stored (command {id}). `nisctl show` shows the result once processed.")
        }
    }
}

async fn watch(c: &Client, json: bool, lang: Lang) -> Result<(), client::Error> {
    let r = c.stream().await?;
    eprintln!(
        "{}",
        match lang {
            Lang::Sv => "Följer intake live (Ctrl-C avslutar) …",
            Lang::En => "Following intake live (Ctrl-C stops) …",
        }
    );
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| client::Error::Server(format!("the stream broke: {e}")))?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let block: String = buf.drain(..i + 2).collect();
            let data = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\n");
            if data.is_empty() {
                continue;
            }
            if json {
                println!("{data}");
            } else if let Ok(v) = serde_json::from_str::<Value>(&data) {
                println!("{}", view::event_line(&v, lang, Utc::now()));
            }
        }
    }
    Err(client::Error::Server(match lang {
        Lang::Sv => "intake stängde strömmen; kör `nisctl watch` igen.".into(),
        Lang::En => "intake closed the stream; run `nisctl watch` again.".into(),
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let lang = cli.lang;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let prefix = match lang {
                Lang::Sv => "fel",
                Lang::En => "error",
            };
            eprintln!("nisctl: {prefix}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses an RFC 3339 string from the projection.
pub fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let s = Submit {
            file: None,
            source: None,
            ticket_id: Some("T-1".into()),
            revision: None,
            subject: Some("Växeln".into()),
            description: None,
            unit: None,
            system: None,
            category: None,
            reported_at: None,
            started_at: None,
            ended_at: None,
            care_blocked: Some(true),
            patient_harm: None,
        };
        let b = ticket_body(s).unwrap();
        assert_eq!(b["ticket_id"], "T-1");
        assert_eq!(b["source"], "nisctl");
        assert_eq!(b["care_blocked"], true);
        assert!(b["reported_at"].is_string());
        assert_eq!(path_id("inc_01H/x"), "inc_01H%2Fx");
    }
}
