//! The four service binaries started together against one broker, on free
//! loopback ports, with the shipped rule sets and the example routing:
//! the system end-to-end tests talk to. Stopped (SIGKILL) on drop.

use crate::{ServiceProcess, free_port, workspace_root};

/// The running services and where they listen.
#[derive(Debug)]
pub struct Services {
    /// `nisvakt-intake`.
    pub intake: ServiceProcess,
    /// `nisvakt-classifier`.
    pub classifier: ServiceProcess,
    /// `nisvakt-deadline-timer`.
    pub timer: ServiceProcess,
    /// `nisvakt-notifier`.
    pub notifier: ServiceProcess,
    /// Intake's REST base URL, `http://127.0.0.1:<port>`.
    pub http: String,
    /// Intake's gRPC address, `127.0.0.1:<port>`.
    pub grpc: String,
    /// Admin addresses of intake, classifier, deadline-timer and notifier.
    pub admin: Vec<String>,
}

impl Services {
    /// Starts all four against `nats_url`; `intake_env` is added to
    /// intake's environment (tokens, secrets). Does not wait for readiness:
    /// callers poll intake the way their test needs (with or without a
    /// token).
    pub fn start(nats_url: &str, intake_env: &[(&str, String)]) -> anyhow::Result<Services> {
        let root = workspace_root();
        let admin: Vec<String> = (0..4)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        fn env<'a>(
            nats_url: &str,
            admin: &str,
            extra: Vec<(&'a str, String)>,
        ) -> Vec<(&'a str, String)> {
            let mut env = vec![
                ("NATS_URL", nats_url.to_string()),
                ("NISVAKT_ADMIN_ADDR", admin.to_string()),
            ];
            env.extend(extra);
            env
        }
        let http_port = free_port();
        let grpc = format!("127.0.0.1:{}", free_port());
        let mut intake_vars = vec![
            ("NISVAKT_HTTP_ADDR", format!("127.0.0.1:{http_port}")),
            ("NISVAKT_GRPC_ADDR", grpc.clone()),
        ];
        intake_vars.extend(intake_env.iter().map(|(k, v)| (*k, v.clone())));
        let intake =
            ServiceProcess::start("nisvakt-intake", &env(nats_url, &admin[0], intake_vars))?;
        let classifier = ServiceProcess::start(
            "nisvakt-classifier",
            &env(
                nats_url,
                &admin[1],
                vec![("NISVAKT_RULES", root.join("rules").display().to_string())],
            ),
        )?;
        let timer =
            ServiceProcess::start("nisvakt-deadline-timer", &env(nats_url, &admin[2], vec![]))?;
        let notifier = ServiceProcess::start(
            "nisvakt-notifier",
            &env(
                nats_url,
                &admin[3],
                vec![(
                    "NISVAKT_ROUTING",
                    root.join("deploy/routing.example.toml")
                        .display()
                        .to_string(),
                )],
            ),
        )?;
        Ok(Services {
            intake,
            classifier,
            timer,
            notifier,
            http: format!("http://127.0.0.1:{http_port}"),
            grpc,
            admin,
        })
    }
}
