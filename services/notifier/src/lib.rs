//! The notifier: routing, alert texts and delivery of alerts to people and
//! systems.

pub mod deliver;
pub mod render;
pub mod routing;

pub mod service;

use std::net::SocketAddr;

use clap::Parser;
use nisvakt_bus::config::CommonArgs;

/// Alerts the right people about incidents and deadlines, escalates until
/// someone acknowledges, and never sends the same alert twice.
#[derive(Debug, Clone, Parser)]
#[command(name = "nisvakt-notifier", version, about, long_about = None)]
pub struct Config {
    /// Options shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,

    /// The routing file: roles, contacts per unit, webhooks, escalation.
    #[arg(
        long,
        env = "NISVAKT_ROUTING",
        default_value = "deploy/routing.example.toml"
    )]
    pub routing: std::path::PathBuf,

    /// SMTP relay, e.g. smtp://127.0.0.1:2525 or
    /// smtp://user:pass@relay:587?tls=starttls; e-mail is off when unset.
    #[arg(long, env = "NISVAKT_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// The sender address of alert e-mails.
    #[arg(
        long,
        env = "NISVAKT_SMTP_FROM",
        default_value = "nisvakt <nisvakt@localhost>"
    )]
    pub smtp_from: String,

    /// Timeout of one delivery attempt, in seconds.
    #[arg(long, env = "NISVAKT_DELIVERY_TIMEOUT_SECS", default_value_t = 10)]
    pub delivery_timeout_secs: u64,

    /// Attempts per delivery (the first included) before the message is
    /// handed back for a later redelivery.
    #[arg(long, env = "NISVAKT_DELIVERY_ATTEMPTS", default_value_t = 4)]
    pub delivery_attempts: u32,

    /// The first retry waits up to this (ms); it doubles, with jitter.
    #[arg(long, env = "NISVAKT_DELIVERY_BASE_DELAY_MS", default_value_t = 500)]
    pub delivery_base_delay_ms: u64,
}

/// The admin address when none is configured.
pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9103);

pub use service::run;
