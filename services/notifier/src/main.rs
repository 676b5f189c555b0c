//! `nisvakt-notifier`: parse configuration and load routing (exit on any
//! error before anything is bound), start telemetry, run until SIGTERM.

#![forbid(unsafe_code)]

use nisvakt_notifier::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = nisvakt_bus::config::parse();
    let _telemetry = nisvakt_bus::telemetry::init("nisvakt-notifier", &config.common);
    let shutdown = nisvakt_bus::Shutdown::new();
    shutdown.on_signals();
    match nisvakt_notifier::run(config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "nisvakt-notifier stopped with an error");
            eprintln!("nisvakt-notifier: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
