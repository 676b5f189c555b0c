//! The deadline-timer: keeps every pending threshold, deadline and
//! escalation clock durably and publishes each firing once, on time, across
//! restarts of itself and of the broker.
//!
//! Durability is the broker's: each firing is a JetStream message schedule
//! (`nis.v1.timer.sched.<timer>.<slot>`, `Nats-Schedule: @at …`) that the
//! broker turns into `nis.v1.timer.fire.<timer>.<slot>` at its second, even
//! if the moment passed while the broker was down. This service only plans
//! (from incident snapshots and timer commands), claims each firing in KV
//! so it is published once even with two replicas, and publishes the
//! `nis.v1.deadline.>` event. It decides nothing about duties: the plan is
//! whatever the classifier's snapshot says.
//!
//! Modules: `plan` (pure: timers, slots, reconciliation diff, watchdog
//! selection), `record` (the KV records), `projection` (reading the
//! classifier's JSON projections), `service` (consumers and the one firing
//! path), `sweep` (the reconciler and the watchdog).

pub mod plan;
pub mod projection;
pub mod record;
pub mod service;
pub mod sweep;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use nisvakt_bus::config::CommonArgs;

/// Keeps every threshold and deadline clock and fires it on time, once.
#[derive(Debug, Clone, Parser)]
#[command(name = "nisvakt-deadline-timer", version, about, long_about = None)]
pub struct Config {
    /// Options shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,

    /// A firing later than this (milliseconds) is marked `late`.
    #[arg(long, env = "NISVAKT_LATE_TOLERANCE_MS", default_value_t = 2000)]
    pub late_tolerance_ms: i64,

    /// How many firings are handled at once (pull loops sharing the
    /// durable firing consumer). A burst of moments in one second drains
    /// this many times faster than one at a time.
    #[arg(long, env = "NISVAKT_FIRING_CONCURRENCY", default_value_t = 16)]
    pub firing_concurrency: usize,

    /// How often the reconciler compares every incident's open duties with
    /// the pending timers and repairs drift (e.g. `60s`, `5m`).
    #[arg(long, env = "NISVAKT_RECONCILE_EVERY", default_value = "60s", value_parser = parse_every)]
    pub reconcile_every: Duration,

    /// How often the watchdog looks for moments that should have fired.
    #[arg(long, env = "NISVAKT_WATCHDOG_EVERY", default_value = "10s", value_parser = parse_every)]
    pub watchdog_every: Duration,

    /// A moment not fired this long after it passed raises the watchdog,
    /// which then fires it itself (late, never dropped).
    #[arg(long, env = "NISVAKT_WATCHDOG_TOLERANCE", default_value = "30s", value_parser = parse_every)]
    pub watchdog_tolerance: Duration,

    /// A firing the broker produced but the service has not handled after
    /// this long is fired by the watchdog as well.
    #[arg(long, env = "NISVAKT_WATCHDOG_STUCK_AFTER", default_value = "5m", value_parser = parse_every)]
    pub watchdog_stuck_after: Duration,
}

/// Reads `90s`, `5m`, `1h` (the domain's duration syntax) as a positive
/// interval.
fn parse_every(s: &str) -> Result<Duration, String> {
    let d = nisvakt_domain::time::parse_duration(s).map_err(|e| e.to_string())?;
    d.to_std()
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} must be longer than zero"))
}

/// The admin address when none is configured.
pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9102);

pub use service::run;
