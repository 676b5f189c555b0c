//! `nisvakt-intake`: parse configuration (exit on a usage error before
//! anything is bound), start telemetry, run until SIGTERM.

#![forbid(unsafe_code)]

use nisvakt_intake::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = nisvakt_bus::config::parse();
    let _telemetry = nisvakt_bus::telemetry::init("nisvakt-intake", &config.common);
    let shutdown = nisvakt_bus::Shutdown::new();
    shutdown.on_signals();
    match nisvakt_intake::run(config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "nisvakt-intake stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}
