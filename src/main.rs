//! The `watchtower` binary: with no subcommand, the engine and gRPC server on
//! the embedded defaults; `watchtower healthcheck` asks a running one;
//! `watchtower replay` re-runs a recorded run from its directory;
//! `watchtower export` writes a recorded run's telemetry table.
//! `watchtower relay` serves the API from a broker, with no engine.

use std::{net::SocketAddr, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use tonic_health::pb::health_check_response::ServingStatus;
use watchtower::{
    Config,
    config::{Cli, Command, ExportArgs},
    healthcheck, logging,
    server::shutdown_signal,
    store::{export, replay},
};

/// jemalloc returns freed memory to the system and keeps fragmentation low
/// over a long run; with glibc's allocator the soak's RSS crept by ~28 MiB
/// over 1M commands (docs/reliability.md).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // Servers write their log from a thread of its own, below the engine.
    let server = |config: &Config| logging::Writer::Thread {
        nice: config.network_nice,
    };
    let _log = match &cli.command {
        None => logging::init(cli.config.log_format, server(&cli.config)),
        Some(Command::Relay(args)) => logging::init(args.config.log_format, server(&args.config)),
        Some(_) => logging::init(cli.config.log_format, logging::Writer::Caller),
    };
    match &cli.command {
        None => watchtower::app::network_runtime(&cli.config)
            .context("cannot start the network runtime")?
            .block_on(serve(&cli.config))
            .map(|()| ExitCode::SUCCESS),
        Some(Command::Healthcheck(args)) => Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(check_health(args.target(&cli.config)))),
        Some(Command::Replay {
            run_dir,
            to_tick,
            verify,
        }) => run_replay(run_dir, *to_tick, *verify),
        Some(Command::Export(args)) => run_export(args),
        Some(Command::Relay(args)) => watchtower::app::network_runtime(&args.config)
            .context("cannot start the network runtime")?
            .block_on(serve_relay(&args.config))
            .map(|()| ExitCode::SUCCESS),
    }
}

/// Binds the listener and runs until a shutdown signal, on the network
/// runtime (whose threads yield the CPU to the engine, `--network-nice`).
async fn serve(config: &Config) -> anyhow::Result<()> {
    // Before anything starts, so a SIGTERM during start-up is graceful.
    let shutdown = shutdown_signal();
    // Check the parameters before binding, so a bad file fails fast and alone.
    config.registry().context("invalid parameters")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let report = watchtower::run(listener, config, shutdown).await?;
    tracing::info!(ticks = report.ticks, "watchtower stopped");
    Ok(())
}

/// Binds the listener and runs a relay until a shutdown signal.
async fn serve_relay(config: &Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    watchtower::broker::relay::run(listener, config, shutdown).await?;
    tracing::info!("relay stopped");
    Ok(())
}

/// Prints the server's health status; success only when it is SERVING.
async fn check_health(addr: SocketAddr) -> ExitCode {
    match healthcheck::check(addr).await {
        Ok(ServingStatus::Serving) => {
            println!("{addr}: SERVING");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("{addr}: {}", status.as_str_name());
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("{:#}", anyhow::Error::from(err));
            ExitCode::FAILURE
        }
    }
}

/// `watchtower replay`: prints the final tick and digest; with `--verify`,
/// fails naming the first tick whose digest differs from the recorded one.
fn run_replay(
    run_dir: &std::path::Path,
    to_tick: Option<u64>,
    verify: bool,
) -> anyhow::Result<ExitCode> {
    let report = replay::replay(run_dir, to_tick, verify)
        .with_context(|| format!("cannot replay {}", run_dir.display()))?;
    println!("tick {} digest {:016x}", report.tick, report.digest);
    match report.divergence {
        Some(d) => {
            eprintln!(
                "diverged at tick {}: recorded digest {:016x}, replayed {:016x}",
                d.tick, d.recorded, d.replayed
            );
            Ok(ExitCode::FAILURE)
        }
        None if verify && report.verified == 0 => {
            eprintln!("no recorded digests to verify against");
            Ok(ExitCode::FAILURE)
        }
        None if verify => {
            println!("verified {} ticks: every digest matches", report.verified);
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// `watchtower export`: writes the table to `--out` or standard output, and
/// says on standard error what it wrote.
fn run_export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let out: Box<dyn std::io::Write + Send> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let exported = export::export(
        &args.run_dir,
        args.format,
        args.from_tick,
        args.to_tick,
        out,
    );
    if let (Err(_), Some(path)) = (&exported, &args.out) {
        // No half-written or empty file is left behind by a refused export.
        let _ = std::fs::remove_file(path);
    }
    let report = exported.with_context(|| format!("cannot export {}", args.run_dir.display()))?;
    eprintln!(
        "exported {} rows, ticks {} to {}",
        report.rows, report.first, report.last
    );
    Ok(ExitCode::SUCCESS)
}
