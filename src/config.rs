//! Command-line and environment settings, with defaults that run the whole
//! product on the embedded `economy_params.yaml`.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

use crate::{
    bridge::DEFAULT_QUEUE_CAPACITY,
    engine::{GlobalRegistry, ParamsError},
};

/// Watchtower's settings. Every flag can also be set through the environment
/// variable named beside it.
#[derive(Debug, Clone, Parser)]
#[command(name = "watchtower", version, about)]
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
