//! Command-line and environment settings, with defaults that run the whole
//! product on the embedded `economy_params.yaml`: [`Cli`] is the whole
//! command line, the server's [`Config`] plus an optional subcommand.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    bridge::DEFAULT_QUEUE_CAPACITY,
    engine::{GlobalRegistry, ParamsError},
};

/// The `watchtower` command line: with no subcommand it runs the server on
/// [`Config`]; a subcommand runs a tool instead.
#[derive(Debug, Clone, Parser)]
#[command(name = "watchtower", version, about)]
pub struct Cli {
    /// The server's settings; a subcommand may read some of them.
    #[command(flatten)]
    pub config: Config,

    /// A tool to run instead of the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The tools `watchtower` runs instead of the server.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Asks a running server's gRPC health service whether it is SERVING;
    /// exits 0 if so, 1 otherwise (the container's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
}

/// `watchtower healthcheck`'s settings.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The server to ask; by default the `--listen` address, with an
    /// unspecified IP (0.0.0.0, ::) replaced by loopback.
    #[arg(long)]
    pub addr: Option<SocketAddr>,
}

impl HealthcheckArgs {
    /// The address to ask: `--addr`, or where a server on `config` listens.
    pub fn target(&self, config: &Config) -> SocketAddr {
        self.addr.unwrap_or_else(|| {
            let mut addr = config.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                    IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                });
            }
            addr
        })
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, `key=value` fields.
    Text,
    /// One JSON object per line, fields at the top level, for log pipelines.
    Json,
}

/// Watchtower's server settings. Every flag can also be set through the
/// environment variable named beside it.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "WATCHTOWER_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Ticks per second; 0 runs the engine as fast as it can.
    #[arg(long, env = "WATCHTOWER_TPS", default_value_t = 10.0, value_parser = parse_tps)]
    pub tps: f64,

    /// YAML file of `key: value` overrides for economy_params.yaml.
    #[arg(long, env = "WATCHTOWER_PARAMS")]
    pub params: Option<PathBuf>,

    /// Seed of the economy's random stream.
    #[arg(long, env = "WATCHTOWER_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Origins allowed to call the API from a browser (gRPC-Web, CORS).
    /// Repeat the flag or separate with commas; `*` allows any origin. The
    /// same origin and `http://localhost:*` / `http://127.0.0.1:*` are
    /// always allowed.
    #[arg(
        long = "cors-origin",
        env = "WATCHTOWER_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Address of the legacy JSON WebSocket listener (the Streamlit path;
    /// served at `/`), or `off`. `/ws` on the main listener is always served.
    #[arg(long, env = "WATCHTOWER_LEGACY_WS_LISTEN", default_value = "127.0.0.1:8765",
          value_parser = parse_optional_addr)]
    // Spelled out so clap treats `off` as a value, not a missing flag.
    pub legacy_ws_listen: std::option::Option<SocketAddr>,

    /// Most past snapshots a subscriber may ask for with `history`.
    #[arg(long, env = "WATCHTOWER_HISTORY_CAP", default_value_t = 600,
          value_parser = parse_history_cap)]
    pub history_cap: usize,

    /// Capacity of the command queue.
    #[arg(long, env = "WATCHTOWER_QUEUE_CAPACITY", default_value_t = DEFAULT_QUEUE_CAPACITY,
          value_parser = parse_capacity)]
    pub queue_capacity: usize,

    /// Log line format; `RUST_LOG` sets the level (default `info`).
    #[arg(long, env = "WATCHTOWER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Cli::parse_from(["watchtower"]).config
    }
}

fn parse_tps(text: &str) -> Result<f64, String> {
    let tps: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if tps.is_finite() && (0.0..=1_000_000.0).contains(&tps) {
        Ok(tps)
    } else {
        Err(format!("{text} is not in [0, 1000000]"))
    }
}

fn parse_optional_addr(text: &str) -> Result<Option<SocketAddr>, String> {
    match text {
        "off" | "none" | "" => Ok(None),
        _ => text
            .parse()
            .map(Some)
            .map_err(|e| format!("{text}: {e} (or `off`)")),
    }
}

fn parse_history_cap(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 0..=100_000) => Ok(n),
        _ => Err(format!("{text} is not in [0, 100000]")),
    }
}

fn parse_capacity(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 1..=1_000_000) => Ok(n),
        _ => Err(format!("{text} is not in [1, 1000000]")),
    }
}

/// A `--params` file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was refused.
    #[error(transparent)]
    Params(#[from] ParamsError),
}

impl Config {
    /// The registry this configuration starts with: the embedded defaults plus
    /// the `--params` overrides, each checked like a command.
    pub fn registry(&self) -> Result<GlobalRegistry, ConfigError> {
        let mut registry = GlobalRegistry::with_defaults();
        if let Some(path) = &self.params {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            registry.apply_overrides_yaml(&text, &path.display().to_string())?;
        }
        Ok(registry)
    }
}
