//! The `watchtower` binary: engine and gRPC server on the embedded defaults,
//! or, with `replay`, a recorded run re-run from its directory.

use std::{io::IsTerminal, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use watchtower::{Config, config::Tool, server::shutdown_signal, store::replay};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let config = Config::parse();
    if let Some(Tool::Replay {
        run_dir,
        to_tick,
        verify,
    }) = &config.command
    {
        return run_replay(run_dir, *to_tick, *verify);
    }
    // Before anything starts, so a SIGTERM during start-up is graceful.
    let shutdown = shutdown_signal();
    // Check the parameters before binding, so a bad file fails fast and alone.
    config.registry().context("invalid parameters")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let report = watchtower::run(listener, &config, shutdown).await?;
    tracing::info!(ticks = report.ticks, "watchtower stopped");
    Ok(ExitCode::SUCCESS)
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
