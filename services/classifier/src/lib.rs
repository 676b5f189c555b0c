//! The classifier: the single owner of every incident. It folds each fact
//! (tickets, operators' commands, thresholds reached) into the incident,
//! correlates tickets about one disruption into one incident, assesses it
//! under every active rule set, stores the projection in KV with revision
//! checks, and publishes what changed. The rules themselves are the pure
//! core in `nisvakt-domain`; this crate only moves facts in and events out.

pub mod service;

use std::net::SocketAddr;

use clap::Parser;
use nisvakt_bus::config::CommonArgs;

/// Owns every incident and judges it by the active rule sets.
#[derive(Debug, Clone, Parser)]
#[command(name = "nisvakt-classifier", version, about, long_about = None)]
pub struct Config {
    /// Options shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Active rule sets: a comma-separated list of TOML files or folders
    /// (a folder means every rule-set file in it); `builtin` means the two
    /// shipped files (rules/ as built into the binary). Each gives its own
    /// assessment and duties.
    #[arg(long, env = "NISVAKT_RULES", default_value = "builtin")]
    pub rules: String,

    /// The Swedish word lists (category inference, harm signals); the
    /// built-in list when not given.
    #[arg(long, env = "NISVAKT_LEXICON")]
    pub lexicon: Option<std::path::PathBuf>,

    /// Tickets about the same system whose disruptions lie within this of
    /// each other belong to one incident (e.g. 6h, 90m).
    #[arg(long, env = "NISVAKT_CORRELATION_WINDOW", default_value = "6h")]
    pub correlation_window: String,
}

/// The admin address when none is configured.
pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9101);

pub use service::run;
