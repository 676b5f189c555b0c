//! The real `nisctl` binary against the whole running system (a real
//! nats-server and the four real service binaries, authentication on):
//! submit, list, show, alerts, ack, report, resolve, watch, and errors that
//! say what to do. Every wait has a timeout.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::bail;
use nisvakt_testkit::{NatsServer, ServiceProcess, free_port, workspace_root};
use serde_json::Value;

const OPERATOR: &str = "cli-operator-token";
const VIEWER: &str = "cli-viewer-token";

struct System {
    _nats: NatsServer,
    _procs: Vec<ServiceProcess>,
    url: String,
}

async fn system() -> anyhow::Result<System> {
    let nats = NatsServer::start().await?;
    let root = workspace_root();
    let http_port = free_port();
    let env = |extra: &[(&'static str, String)]| {
        let mut e = vec![
            ("NATS_URL", nats.url()),
            ("NISVAKT_ADMIN_ADDR", format!("127.0.0.1:{}", free_port())),
        ];
        e.extend_from_slice(extra);
        e
    };
    let procs = vec![
        ServiceProcess::start(
            "nisvakt-intake",
            &env(&[
                ("NISVAKT_HTTP_ADDR", format!("127.0.0.1:{http_port}")),
                ("NISVAKT_GRPC_ADDR", format!("127.0.0.1:{}", free_port())),
                (
                    "NISVAKT_TOKENS",
                    format!("operator={OPERATOR},viewer={VIEWER}"),
                ),
            ]),
        )?,
        ServiceProcess::start(
            "nisvakt-classifier",
            &env(&[("NISVAKT_RULES", root.join("rules").display().to_string())]),
        )?,
        ServiceProcess::start("nisvakt-deadline-timer", &env(&[]))?,
        ServiceProcess::start(
            "nisvakt-notifier",
            &env(&[(
                "NISVAKT_ROUTING",
                root.join("deploy/routing.example.toml")
                    .display()
                    .to_string(),
            )]),
        )?,
    ];
    let sys = System {
        _nats: nats,
        _procs: procs,
        url: format!("http://127.0.0.1:{http_port}"),
    };
    eventually("intake to answer", || {
        let o = nisctl(&sys.url, Some(OPERATOR), &["list", "--json"]);
        o.ok.then_some(())
    })
    .await?;
    Ok(sys)
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn nisctl(url: &str, token: Option<&str>, args: &[&str]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nisctl"));
    c.env_remove("NISVAKT_TOKEN")
        .env_remove("NISVAKT_LANG")
        .env("NISVAKT_URL", url)
        .args(args);
    if let Some(t) = token {
        c.env("NISVAKT_TOKEN", t);
    }
    match c.output() {
        Ok(o) => Out {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        },
        Err(e) => Out {
            ok: false,
            stdout: String::new(),
            stderr: e.to_string(),
        },
    }
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[test]
fn without_intake_nisctl_says_how_to_start_it() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let o = nisctl(&url, None, &["list"]);
    assert!(!o.ok);
    assert!(o.stderr.contains("cargo xtask up"), "{}", o.stderr);
    assert!(o.stderr.contains("kan inte nå intake"), "{}", o.stderr);
    let o = nisctl(&url, None, &["--lang", "en", "list"]);
    assert!(o.stderr.contains("cannot reach intake"), "{}", o.stderr);
    let help = nisctl(&url, None, &["--help"]);
    for cmd in [
        "submit", "list", "show", "assess", "report", "resolve", "ack", "watch",
    ] {
        assert!(help.stdout.contains(cmd), "{cmd} missing from --help");
    }
}

#[tokio::test]
async fn an_operator_runs_an_incident_from_ticket_to_resolution_with_nisctl() -> anyhow::Result<()>
{
    let sys = system().await?;
    let url = sys.url.as_str();
    // Errors say what to do.
    let o = nisctl(url, None, &["list"]);
    assert!(!o.ok && o.stderr.contains("NISVAKT_TOKEN"), "{}", o.stderr);
    let o = nisctl(url, Some(VIEWER), &["resolve", "inc_x", "--by", "Eva"]);
    assert!(!o.ok && o.stderr.contains("operatörstoken"), "{}", o.stderr);

    // A live tail from the start.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_nisctl"))
        .env("NISVAKT_URL", url)
        .env("NISVAKT_TOKEN", OPERATOR)
        .args(["watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = watch.stdout.take().expect("piped");
    // Connected once it says so on stderr: only then is the ticket sent, so
    // the tail must see the incident open.
    let stderr = watch.stderr.take().expect("piped");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = ready_tx.send(line);
        }
    });
    let first = ready_rx.recv_timeout(Duration::from_secs(20));
    assert!(
        first
            .as_deref()
            .is_ok_and(|l| l.contains("Följer intake live")),
        "watch did not start: {first:?}"
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let started = (chrono::Utc::now() - chrono::Duration::hours(7)).to_rfc3339();
    let o = nisctl(
        url,
        Some(OPERATOR),
        &[
            "submit",
            "--source",
            "intraservice",
            "--ticket-id",
            "CLI-1",
            "--subject",
            "Eventuell NIS-incident: journalen nere",
            "--system",
            "Journalsystemet",
            "--unit",
            "Hemsjukvården Centrum",
            "--started-at",
            &started,
            "--care-blocked",
            "true",
        ],
    );
    assert!(
        o.ok && o.stdout.starts_with("Mottaget: rcp_"),
        "{} {}",
        o.stdout,
        o.stderr
    );

    let id = eventually("the incident to be listed", || {
        let o = nisctl(url, Some(VIEWER), &["list", "--json"]);
        let v: Value = serde_json::from_str(&o.stdout).ok()?;
        v.as_array()?.first()?["id"].as_str().map(str::to_string)
    })
    .await?;
    let table = nisctl(url, Some(VIEWER), &["list"]);
    assert!(
        table.stdout.contains("RAPPORTERINGSPLIKTIG") && table.stdout.contains(&id),
        "{}",
        table.stdout
    );
    let shown = eventually("skede 1 in show", || {
        let o = nisctl(url, Some(VIEWER), &["show", &id]);
        o.stdout.contains("Skede 1").then_some(o.stdout)
    })
    .await?;
    assert!(
        shown.contains("RAPPORTERINGSPLIKTIG") && shown.contains("SENAST"),
        "{shown}"
    );

    // Acknowledge an alert.
    let alert = eventually("an alert", || {
        let o = nisctl(
            url,
            Some(OPERATOR),
            &["alerts", "--json", "--incident", &id],
        );
        let v: Value = serde_json::from_str(&o.stdout).ok()?;
        v.as_array()?.first()?["id"].as_str().map(str::to_string)
    })
    .await?;
    let o = nisctl(url, Some(OPERATOR), &["ack", &alert, "--by", "Eva Ek"]);
    assert!(o.ok && o.stdout.starts_with("Sparat"), "{}", o.stderr);
    eventually("the ack to be recorded", || {
        let o = nisctl(url, Some(OPERATOR), &["alerts", "--all", "--json"]);
        let v: Value = serde_json::from_str(&o.stdout).ok()?;
        v.as_array()?
            .iter()
            .any(|a| a["id"] == alert.as_str() && a["acked_by"] == "Eva Ek")
            .then_some(())
    })
    .await?;

    // Report skede 1, assess, resolve.
    let o = nisctl(
        url,
        Some(OPERATOR),
        &["report", &id, "--stage", "1", "--by", "Eva Ek"],
    );
    assert!(o.ok, "{}", o.stderr);
    eventually("skede 1 met", || {
        let o = nisctl(url, Some(VIEWER), &["show", &id, "--json"]);
        let v: Value = serde_json::from_str(&o.stdout).ok()?;
        v["deadlines"]
            .as_array()?
            .iter()
            .any(|d| d["duty"] == "nis" && d["stage"] == "1" && d["status"] == "met")
            .then_some(())
    })
    .await?;
    let o = nisctl(
        url,
        Some(OPERATOR),
        &[
            "assess",
            &id,
            "--by",
            "Eva Ek",
            "--patient-harm",
            "none",
            "--care-blocked",
            "true",
        ],
    );
    assert!(o.ok, "{}", o.stderr);
    let o = nisctl(
        url,
        Some(OPERATOR),
        &["assess", &id, "--by", "Eva Ek", "--patient-harm", "maybe"],
    );
    assert!(!o.ok, "clap refuses an unknown harm");
    let o = nisctl(
        url,
        Some(OPERATOR),
        &["resolve", &id, "--by", "Eva Ek", "--note", "Åtgärdat"],
    );
    assert!(o.ok, "{}", o.stderr);

    // The tail saw it all happen.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("IncidentResolved")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = watch.kill();
                bail!("watch did not show the resolution; saw {seen:?}");
            }
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        seen.iter().any(|l| l.contains("IncidentOpened")),
        "{seen:?}"
    );
    Ok(())
}
