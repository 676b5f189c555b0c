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

pub mod plan;
pub mod service;

use std::net::SocketAddr;

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
}

/// The admin address when none is configured.
pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9102);

pub use service::run;
