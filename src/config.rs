//! Command-line and environment settings, with defaults that run the whole
//! product on the embedded `economy_params.yaml`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};

use crate::{
    bridge::DEFAULT_QUEUE_CAPACITY,
    engine::{GlobalRegistry, ParamsError},
};

/// Watchtower's settings. Every flag can also be set through the environment
/// variable named beside it.
#[derive(Debug, Clone, Parser)]
#[command(name = "watchtower", version, about)]
pub struct Config {
    /// A tool to run instead of the server; none starts the server.
    #[command(subcommand)]
    pub command: Option<Tool>,

    /// Directory where every run is recorded (manifest, audit log, digests,
    /// checkpoints), or `off` to keep everything in memory.
    #[arg(long, env = "WATCHTOWER_DATA_DIR", default_value = "./watchtower-data",
          value_parser = parse_data_dir)]
    // Spelled out so clap treats `off` as a value, not a missing flag.
    pub data_dir: std::option::Option<PathBuf>,

    /// Save the whole engine state every this many ticks (0: only at
    /// graceful shutdown).
    #[arg(long, env = "WATCHTOWER_CHECKPOINT_EVERY", default_value_t = 1000)]
    pub checkpoint_every: u64,

    /// Continue a recorded run instead of starting one: `latest` or a run id
    /// (a directory under --data-dir). Seed and parameters come from the run.
    #[arg(long, env = "WATCHTOWER_RESUME")]
    pub resume: Option<String>,

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
}

/// Tools the binary runs instead of the server.
#[derive(Debug, Clone, Subcommand)]
pub enum Tool {
    /// Re-run a recorded run from its directory, without a server, and
    /// print its final tick and state digest.
    Replay {
        /// The run's directory (under --data-dir).
        run_dir: PathBuf,
        /// Stop after this tick (default: the last recorded tick).
        #[arg(long)]
        to_tick: Option<u64>,
        /// Compare every tick's digest with the recorded one; exit non-zero
        /// naming the first tick that differs.
        #[arg(long)]
        verify: bool,
    },
}

fn parse_data_dir(text: &str) -> Result<Option<PathBuf>, String> {
    match text {
        "off" | "none" | "" => Ok(None),
        _ => Ok(Some(PathBuf::from(text))),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::parse_from(["watchtower"])
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
