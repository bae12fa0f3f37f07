//! `watchtower-bench`: load generator and benchmark runner for any server
//! that speaks `watchtower.v1` over gRPC.
//!
//! It uses only the public API (`ApplyCommand`, `SubscribeTelemetry`,
//! `ListParameters`, and `GetServerStats` where the server has it), so it can
//! measure other implementations of the same proto too.
//!
//! Layout, one file per job:
//! - `client`: connections, the subscriber fleet, the TPS probe and the
//!   command drivers (open and closed loop);
//! - `procfs`: CPU and RSS of a server process from `/proc`;
//! - `scenarios`: engine isolation, ApplyCommand, fan-out, slow readers;
//! - `smoke`: the CI smoke run (correctness only, nothing about speed);
//! - `soak`: the soak's load (subscribe/cancel cycles, reconnecting
//!   command clients), run and checked by `scripts/soak`;
//! - `run_all`: starts release servers, runs every scenario, writes the report;
//! - `report`: the Markdown tables and the SVG chart.

mod client;
mod procfs;
mod report;
mod run_all;
mod scenarios;
mod smoke;
mod soak;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load generator and benchmark runner for `watchtower.v1` servers.
#[derive(Debug, Parser)]
#[command(name = "watchtower-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Niceness the runtime's threads (the subscriber fleet's, the TPS
    /// probe's) add to the process's, 0 to 19. The fleet stands for
    /// watchers on other machines: with it below the command driver, whose
    /// threads keep the process's niceness, an operator's commands do not
    /// wait behind the load generator's own readers.
    #[arg(long, global = true, default_value_t = 0,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    fleet_nice: i32,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A few seconds of subscribers and commands; checks correctness only.
    Smoke(smoke::SmokeArgs),
    /// Engine TPS in alternating idle and load windows, as a ratio.
    Isolation(scenarios::IsolationArgs),
    /// ApplyCommand latency at a fixed rate (open loop) or max throughput
    /// with N concurrent callers (closed loop).
    Apply(scenarios::ApplyArgs),
    /// N subscribers at one interval: deliveries/s, staleness, server CPU/RSS.
    Fanout(scenarios::FanoutArgs),
    /// Healthy subscribers, then slow readers that never read.
    SlowReaders(scenarios::SlowArgs),
    /// Subscribe/cancel cycles, then commands from reconnecting clients;
    /// prints what was answered (`scripts/soak` runs and checks it).
    Soak(soak::SoakArgs),
    /// Start release servers, run every scenario, write docs/benchmarks.md
    /// and docs/benchmarks-fanout.svg.
    RunAll(run_all::RunAllArgs),
}

/// The server to drive, shared by the scenario subcommands.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Server address, `host:port` or a full `http://` URI.
    #[arg(long)]
    pub addr: String,
    /// The server's process id, for CPU and RSS from /proc (same machine only).
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Parses `5`, `2.5` or `500ms` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| e.to_string());
    }
    let secs = text.strip_suffix('s').unwrap_or(text);
    secs.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text} is not a duration (e.g. 5, 2.5s, 500ms)"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let fleet_nice = cli.fleet_nice;
    // The scenario runs on this thread, which keeps the process's
    // niceness, and so do the command driver's threads it starts.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || watchtower::priority::lower_this_thread(fleet_nice))
        .build()?
        .block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Smoke(args) => smoke::run(&args).await,
        Command::Isolation(args) => {
            let result = scenarios::isolation(&args).await?;
            println!("{}", report::isolation_table(&[result]));
            Ok(())
        }
        Command::Apply(args) => {
            let result = scenarios::apply(&args, "").await?;
            println!("{}", report::apply_table(&[result]));
            Ok(())
        }
        Command::Fanout(args) => {
            let result = scenarios::fanout(&args).await?;
            println!("{}", report::fanout_table(&[result]));
            Ok(())
        }
        Command::SlowReaders(args) => {
            let result = scenarios::slow_readers(&args).await?;
            println!("{}", report::slow_section(&result));
            Ok(())
        }
        Command::Soak(args) => soak::run(&args).await,
        Command::RunAll(args) => run_all::run(args).await,
    }
}
