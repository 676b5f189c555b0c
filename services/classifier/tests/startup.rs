//! Bad configuration stops the real binary at start, before it connects:
//! the broker address points at a closed port, so an exit (rather than a
//! connect retry loop) shows the check came first, and the message names
//! the file, the key and the problem.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nisvakt_testkit::{free_port, service_bin, workspace_root};

/// Runs the classifier with `rules` and returns its exit success and stderr.
fn run_with(env: &[(&str, String)]) -> anyhow::Result<(bool, String)> {
    let mut child = Command::new(service_bin("nisvakt-classifier")?)
        .env("NATS_URL", format!("nats://127.0.0.1:{}", free_port()))
        .env("NISVAKT_ADMIN_ADDR", format!("127.0.0.1:{}", free_port()))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait()? {
            let out = child.wait_with_output()?;
            return Ok((
                status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("the classifier did not exit within 15 s on bad configuration");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bad_rule_file_stops_the_start_naming_file_and_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let seed = std::fs::read_to_string(workspace_root().join("rules/seed-routine.toml"))?;
    let bad = dir.path().join("bad-routine.toml");
    std::fs::write(
        &bad,
        seed.replace("threshold = \"2h\"", "threshold = \"2 timmar\""),
    )?;
    let (ok, stderr) = run_with(&[("NISVAKT_RULES", bad.display().to_string())])?;
    assert!(!ok);
    assert!(stderr.contains("bad-routine.toml"), "{stderr}");
    assert!(stderr.contains("criteria[1].threshold"), "{stderr}");
    assert!(stderr.contains("not a duration"), "{stderr}");
    Ok(())
}

#[test]
fn a_missing_rule_file_or_bad_window_stops_the_start() -> anyhow::Result<()> {
    let (ok, stderr) = run_with(&[("NISVAKT_RULES", "/nonexistent/rules.toml".into())])?;
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/rules.toml"), "{stderr}");
    let rules = workspace_root().join("rules").display().to_string();
    let (ok, stderr) = run_with(&[
        ("NISVAKT_RULES", rules),
        ("NISVAKT_CORRELATION_WINDOW", "soon".into()),
    ])?;
    assert!(!ok);
    assert!(stderr.contains("NISVAKT_CORRELATION_WINDOW"), "{stderr}");
    Ok(())
}
