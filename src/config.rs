//! Command-line and environment settings, with defaults that run the whole
//! product on the embedded `economy_params.yaml`: [`Cli`] is the whole
//! command line, the server's [`Config`] plus an optional subcommand.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    bridge::DEFAULT_QUEUE_CAPACITY,
    engine::{GlobalRegistry, ParamsError},
    priority::EngineCpu,
};

/// Default `--network-nice`: the lowest priority, so that on a saturated
/// machine the engine keeps its core (docs/benchmarks.md, "Issue 11: the
/// engine's own core"). At 10, the other threads still took about an eighth
/// of the engine's time.
pub const DEFAULT_NETWORK_NICE: i32 = 19;

/// Default `--command-nice`: between the engine (0) and the telemetry
/// fan-out (`--network-nice` 19).
pub const DEFAULT_COMMAND_NICE: i32 = 10;

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
    /// Write a recorded run's telemetry table (one row per recorded tick) as
    /// one Parquet or CSV file.
    Export(ExportArgs),
    /// Serve the public API from a broker, with no engine: telemetry comes
    /// from the engine node's snapshots, commands go to it by request-reply
    /// (docs/scale-out.md). Needs `--broker`.
    Relay(Box<RelayArgs>),
}

/// `watchtower export`'s settings.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The run's directory (under --data-dir).
    pub run_dir: PathBuf,
    /// The file format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The first tick to include (default: the first recorded).
    #[arg(long)]
    pub from_tick: Option<u64>,
    /// The last tick to include (default: the last recorded).
    #[arg(long)]
    pub to_tick: Option<u64>,
    /// Where to write (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The formats `watchtower export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Apache Parquet (snappy).
    Parquet,
    /// Comma-separated values with a header line; times in RFC 3339, UTC.
    Csv,
}

/// `watchtower relay`'s settings: the server's own (listen address, tokens,
/// origins, TLS, limits) plus the broker. Engine settings (`--tps`,
/// `--data-dir`, `--params`, …) are read but unused.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// The relay's server settings.
    #[command(flatten)]
    pub config: Config,
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

    /// Record every this many ticks in the run's telemetry table
    /// (`telemetry/*.parquet`); 1 records every tick.
    #[arg(long, env = "WATCHTOWER_RECORD_EVERY", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub record_every: u64,

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
    /// Start with the engine paused at tick 0, to set parameters before tick
    /// 1; `ControlEngine` resumes or steps it.
    #[arg(long, env = "WATCHTOWER_START_PAUSED")]
    pub start_paused: bool,
    /// Most commands held for a later tick (`apply_at_tick`) at once.
    #[arg(long, env = "WATCHTOWER_MAX_SCHEDULED", default_value_t = crate::engine::schedule::DEFAULT_MAX_SCHEDULED)]
    pub max_scheduled: usize,
    /// How many of the latest command ids are remembered, so a retry with
    /// the same id is answered from the record instead of applied again; a
    /// retry of an older command is a new command. Bounds the memory the
    /// index takes (about a kilobyte an id).
    #[arg(long, env = "WATCHTOWER_IDEMPOTENCY_WINDOW", default_value_t = crate::engine::DEFAULT_IDEMPOTENCY_WINDOW,
          value_parser = parse_capacity)]
    pub idempotency_window: usize,

    /// Niceness added to every thread but the engine's and the command
    /// lane's (the network runtime, the store's writers, the log's), so that on a
    /// saturated machine the engine thread wins the CPU; 0 to 19, 0 = the
    /// engine's priority.
    /// Raising niceness needs no privilege.
    #[arg(long, env = "WATCHTOWER_NETWORK_NICE", default_value_t = DEFAULT_NETWORK_NICE,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub network_nice: i32,

    /// Niceness added to the command lane's thread, which accepts
    /// connections and serves those that carry no telemetry: below the
    /// engine, above the telemetry fan-out (`--network-nice`), so commands
    /// get the CPU before telemetry; 0 to 19.
    #[arg(long, env = "WATCHTOWER_COMMAND_NICE", default_value_t = DEFAULT_COMMAND_NICE,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub command_nice: i32,

    /// The CPU the engine thread runs on: `auto` (the default) pins it to
    /// the CPU, of those the process may use, that has served the fewest
    /// device interrupts (/proc/interrupts), since a device's interrupts
    /// take time from the ticks of an engine on their CPU; a number pins it
    /// to that CPU (numbered as in /proc/cpuinfo); `off` lets the kernel
    /// place it. The store's writers and the log's keep off a pinned engine's CPU
    /// (docs/operations.md, "The engine's CPU").
    #[arg(long, env = "WATCHTOWER_ENGINE_CPU", default_value_t = EngineCpu::Auto)]
    pub engine_cpu: EngineCpu,

    /// Tokio worker threads; 0 = one per core.
    #[arg(long, env = "WATCHTOWER_NETWORK_THREADS", default_value_t = 0)]
    pub network_threads: usize,

    /// YAML file of `key: value` overrides for economy_params.yaml.
    #[arg(long, env = "WATCHTOWER_PARAMS")]
    pub params: Option<PathBuf>,

    /// Seed of the economy's random stream.
    #[arg(long, env = "WATCHTOWER_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Origins allowed to call the API from a browser (gRPC-Web, WebSocket,
    /// CORS), as `scheme://host[:port]`. Repeat the flag or separate with
    /// commas; `*` allows any origin. Loopback origins on any port, and the
    /// page's own origin on an allowed host, are always allowed.
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

    /// Most bytes of encoded snapshots the history ring keeps (it also keeps
    /// at most `--history-cap` entries).
    #[arg(long, env = "WATCHTOWER_HISTORY_BYTES", default_value_t = 64 << 20)]
    pub history_bytes: usize,

    /// Tokens, origins, TLS and the command rate.
    #[command(flatten)]
    pub security: SecurityConfig,

    /// Connection limits.
    #[command(flatten)]
    pub transport: TransportConfig,

    /// The NATS broker that feeds relays (off by default).
    #[command(flatten)]
    pub broker: BrokerConfig,

    /// Log line format; `RUST_LOG` sets the level (default `info`).
    #[arg(long, env = "WATCHTOWER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Who may do what, and from where (docs/security.md).
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityConfig {
    /// Token that makes its bearer an operator (principal `operator`). Prefer
    /// the environment variable or `--tokens-file`: a flag's value is visible
    /// to every local user in the process list.
    #[arg(long, env = "WATCHTOWER_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<Secret>,

    /// Token that makes its bearer an observer (principal `observer`). With
    /// it set, callers without a token are refused.
    #[arg(long, env = "WATCHTOWER_OBSERVER_TOKEN", hide_env_values = true)]
    pub observer_token: Option<Secret>,

    /// YAML file of named principals: `principals: [{name, role, token |
    /// token_sha256}]`.
    #[arg(long, env = "WATCHTOWER_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// Let callers without a token steer on a non-loopback address. Without
    /// it, such a server refuses to start until an operator token is set.
    #[arg(long, env = "WATCHTOWER_ALLOW_ANONYMOUS_OPERATORS")]
    pub allow_anonymous_operators: bool,

    /// Host names browsers may use to reach the server (the `Host` header of
    /// gRPC-Web, WebSocket and dashboard requests), besides the loopback names
    /// and the listen addresses. Closes DNS rebinding.
    #[arg(
        long = "allowed-hosts",
        env = "WATCHTOWER_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// PEM certificate chain: serve the main listener and the legacy WebSocket
    /// port over TLS. Needs `--tls-key`.
    #[arg(long, env = "WATCHTOWER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "WATCHTOWER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates: with TLS on, require client certificates signed
    /// by one of them.
    #[arg(long, env = "WATCHTOWER_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Commands per second each principal may send (a token bucket with a
    /// burst of one second's worth); 0 = no limit.
    #[arg(long, env = "WATCHTOWER_COMMAND_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub command_rate: f64,
}

/// Connection limits of both listeners (docs/security.md has the table).
#[derive(Debug, Clone, clap::Args)]
pub struct TransportConfig {
    /// Seconds a connection may stay open with no request or stream before
    /// it is closed.
    #[arg(long, env = "WATCHTOWER_IDLE_TIMEOUT", default_value = "60", value_parser = parse_seconds)]
    pub idle_timeout: Duration,

    /// Seconds a client has to send a request's headers (HTTP/1.1) or to
    /// finish the TLS handshake (slowloris).
    #[arg(long, env = "WATCHTOWER_HEADER_TIMEOUT", default_value = "5", value_parser = parse_seconds)]
    pub header_timeout: Duration,

    /// Seconds between HTTP/2 keepalive pings, which find peers that vanished
    /// without closing the connection (also used for TCP keepalive).
    #[arg(long, env = "WATCHTOWER_KEEPALIVE_INTERVAL", default_value = "20", value_parser = parse_seconds)]
    pub keepalive_interval: Duration,

    /// Seconds to wait for a keepalive ping's answer before closing.
    #[arg(long, env = "WATCHTOWER_KEEPALIVE_TIMEOUT", default_value = "20", value_parser = parse_seconds)]
    pub keepalive_timeout: Duration,

    /// Most open connections, both listeners together; more are refused at
    /// once (and never more than the process's descriptor limit allows).
    #[arg(long, env = "WATCHTOWER_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = parse_capacity)]
    pub max_connections: usize,

    /// Most concurrent telemetry subscribers (gRPC streams plus WebSocket
    /// sessions); a new one beyond it gets RESOURCE_EXHAUSTED.
    #[arg(long, env = "WATCHTOWER_MAX_SUBSCRIBERS", default_value_t = 25_000,
          value_parser = parse_capacity)]
    pub max_subscribers: usize,

    /// Most concurrent streams on one HTTP/2 connection.
    #[arg(long, env = "WATCHTOWER_MAX_STREAMS_PER_CONNECTION", default_value_t = 256,
          value_parser = parse_streams)]
    pub max_streams_per_connection: u32,
}

/// The NATS broker between an engine node and its relays
/// (docs/scale-out.md). Whoever can publish on the prefix's command subject
/// is trusted to name the caller's principal and role: the broker's own
/// credentials are the trust boundary.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerConfig {
    /// NATS server URL(s), comma-separated (`nats://host:4222`,
    /// `tls://host:4222`). On the engine node it publishes snapshots and
    /// answers forwarded commands; a relay needs it.
    #[arg(long = "broker", env = "WATCHTOWER_BROKER", value_delimiter = ',')]
    pub urls: Vec<String>,

    /// Subject prefix shared by one engine node and its relays: snapshots
    /// on `PREFIX.snapshot`, the catalogue on `PREFIX.catalogue`, commands
    /// on `PREFIX.command`. One prefix per engine node.
    #[arg(
        long = "broker-prefix",
        env = "WATCHTOWER_BROKER_PREFIX",
        default_value = "watchtower"
    )]
    pub prefix: String,

    /// NATS credentials file (JWT and NKey seed).
    #[arg(long = "broker-creds", env = "WATCHTOWER_BROKER_CREDS")]
    pub creds: Option<PathBuf>,

    /// NATS token. Prefer the environment variable.
    #[arg(
        long = "broker-token",
        env = "WATCHTOWER_BROKER_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<Secret>,

    /// PEM CA certificates to verify the NATS server's TLS certificate;
    /// makes TLS required.
    #[arg(long = "broker-tls-ca", env = "WATCHTOWER_BROKER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Seconds a relay waits for the engine node to answer a forwarded
    /// command when the caller set no deadline.
    #[arg(long = "broker-request-timeout", env = "WATCHTOWER_BROKER_REQUEST_TIMEOUT",
          default_value = "10", value_parser = parse_seconds)]
    pub request_timeout: Duration,
}

/// A credential: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            Err("a token may not be empty".to_owned())
        } else {
            Ok(Self(text.to_owned()))
        }
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && (0.0..=1_000_000.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text} is not in [0, 1000000]")),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{text} is not a number of seconds in (0, 86400]")),
    }
}

fn parse_streams(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n @ 1..=100_000) => Ok(n),
        _ => Err(format!("{text} is not in [1, 100000]")),
    }
}

fn parse_data_dir(text: &str) -> Result<Option<PathBuf>, String> {
    match text {
        "off" | "none" | "" => Ok(None),
        _ => Ok(Some(PathBuf::from(text))),
    }
}

impl Default for Config {
    fn default() -> Self {
        Cli::parse_from(["watchtower"]).config
    }
}

/// The fastest target pace `--tps` and `ControlEngine`'s `set_tps` accept.
pub const MAX_TPS: f64 = 1_000_000.0;

fn parse_tps(text: &str) -> Result<f64, String> {
    let tps: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if tps.is_finite() && (0.0..=MAX_TPS).contains(&tps) {
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
