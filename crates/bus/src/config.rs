//! Configuration shared by every service, and the layering of all of it:
//! built-in defaults → an optional TOML file (`--config` /
//! `NISVAKT_CONFIG`) → environment variables → command-line flags. clap
//! provides flags, environment and defaults; `parse` adds the file by
//! filling in every option that is still at its default.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, ValueEnum};

/// How logs look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line for log shippers.
    Json,
}

/// Options every service takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Address of the admin server (/healthz, /readyz, /metrics).
    #[arg(long, env = "NISVAKT_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// Log format.
    #[arg(long, env = "NISVAKT_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax (RUST_LOG wins when set).
    #[arg(long, env = "NISVAKT_LOG", default_value = "info")]
    pub log: String,

    /// OTLP/gRPC endpoint for traces, e.g. http://127.0.0.1:4317; off when empty.
    #[arg(long, env = "NISVAKT_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Optional TOML file with any of these options (keys as the long flag
    /// names with `_` for `-`); flags and environment win over it.
    #[arg(long, env = "NISVAKT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Why configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A flag, variable or file value is not acceptable.
    #[error(transparent)]
    Clap(#[from] clap::Error),
}

/// Parses `T` from the process's arguments with the file layer applied.
/// Exits with a usage message on error, before anything is bound.
pub fn parse<T: CommandFactory + FromArgMatches>() -> T {
    match try_parse_from::<T, _, _>(std::env::args_os()) {
        Ok(t) => t,
        Err(Error::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// Parses `T` from `args` (the first is the program name) with the file
/// layer applied.
pub fn try_parse_from<T, I, A>(args: I) -> Result<T, Error>
where
    T: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = T::command();
    let matches = cmd.clone().try_get_matches_from(&args)?;
    let Some(path) = matches.get_one::<PathBuf>("config").cloned() else {
        return Ok(T::from_arg_matches(&matches)?);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| Error::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut injected: Vec<OsString> = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let Some(arg) = cmd.get_arguments().find(|a| a.get_id().as_str() == id) else {
            return Err(Error::Invalid {
                path,
                message: format!("unknown key `{key}`"),
            });
        };
        if id == "config" {
            continue;
        }
        // Flags and environment win over the file.
        match matches.value_source(&id) {
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable) => continue,
            _ => {}
        }
        let long = arg.get_long().unwrap_or(key.as_str()).to_string();
        let values: Vec<String> = match value {
            toml::Value::String(s) => vec![s.clone()],
            toml::Value::Integer(i) => vec![i.to_string()],
            toml::Value::Float(f) => vec![f.to_string()],
            toml::Value::Boolean(b) => vec![b.to_string()],
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            other => {
                return Err(Error::Invalid {
                    path,
                    message: format!("key `{key}`: unsupported value {other}"),
                });
            }
        };
        for v in values {
            injected.push(format!("--{long}={v}").into());
        }
    }
    let mut all = vec![args.first().cloned().unwrap_or_default()];
    all.extend(injected);
    all.extend(args.into_iter().skip(1));
    let matches = cmd.try_get_matches_from(all)?;
    Ok(T::from_arg_matches(&matches)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Demo {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value = "7")]
        window: u32,
    }

    #[test]
    fn the_file_fills_in_defaults_but_flags_win() {
        let dir = tempfile_dir();
        let path = dir.join("c.toml");
        std::fs::write(&path, "window = 9\nnats_url = \"nats://file:4222\"\n").unwrap();
        let d: Demo = try_parse_from([
            "demo",
            "--config",
            path.to_str().unwrap(),
            "--nats-url",
            "nats://flag:4222",
        ])
        .unwrap();
        assert_eq!(d.window, 9);
        assert_eq!(d.common.nats_url, "nats://flag:4222");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        let dir = tempfile_dir();
        let path = dir.join("c.toml");
        std::fs::write(&path, "windoww = 9\n").unwrap();
        let e =
            try_parse_from::<Demo, _, _>(["demo", "--config", path.to_str().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("unknown key `windoww`"), "{e}");
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("nisvakt-config-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
