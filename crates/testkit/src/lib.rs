//! Test harness shared by every test that needs the real thing: a real
//! `nats-server` on a free loopback port with a temporary store (killed on
//! drop), and the real service binaries as child processes.
//!
//! Nothing here is a mock; what cannot run here is said so where it is used.

pub mod baseline;
pub mod nats;
pub mod procs;
pub mod smtp;
pub mod system;
pub mod webhook;

pub use nats::NatsServer;
pub use procs::{ServiceProcess, service_bin};
pub use system::Services;

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The workspace root (where `Cargo.toml` with `[workspace]` is).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}
