//! `nisvakt-classifier`: parse configuration and load the rule sets (exit
//! on any error before anything is bound), start telemetry, run until
//! SIGTERM.

#![forbid(unsafe_code)]

use nisvakt_classifier::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = nisvakt_bus::config::parse();
    let _telemetry = nisvakt_bus::telemetry::init("nisvakt-classifier", &config.common);
    let shutdown = nisvakt_bus::Shutdown::new();
    shutdown.on_signals();
    match nisvakt_classifier::run(config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "nisvakt-classifier stopped with an error");
            eprintln!("nisvakt-classifier: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
