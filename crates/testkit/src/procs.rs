//! The real service binaries as child processes: started with the
//! environment a test gives, killed (SIGKILL) on drop or on demand, their
//! output kept in a file for when a test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// The path of a workspace binary next to the running test executable
/// (`target/<profile>/`). `cargo xtask test` builds them first.
pub fn service_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("test executable has no target directory")?;
    let bin = dir.join(name);
    if !bin.is_file() {
        bail!(
            "{} is not built; run `cargo build --workspace --bins` first (`cargo xtask test` does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running service binary.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    child: Option<Child>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl ServiceProcess {
    /// Starts `name` (e.g. `nisvakt-classifier`) with `env`.
    pub fn start(name: &str, env: &[(&str, String)]) -> anyhow::Result<ServiceProcess> {
        let log = std::env::temp_dir().join(format!(
            "{name}-{}-{}.log",
            std::process::id(),
            crate::free_port()
        ));
        let mut p = ServiceProcess {
            name: name.to_string(),
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            log,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let bin = service_bin(&self.name)?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let err = out.try_clone()?;
        let child = Command::new(bin)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("NISVAKT_LOG", "info")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills it with SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with the same environment.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Asks it to stop with SIGTERM and waits for it to exit; returns
    /// whether it exited with status 0.
    pub fn terminate(&mut self) -> anyhow::Result<bool> {
        let Some(mut c) = self.child.take() else {
            return Ok(false);
        };
        let status = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("could not signal {}", self.name);
        }
        Ok(c.wait()?.success())
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("--- {} output ---\n{}", self.name, self.output());
        }
    }
}
