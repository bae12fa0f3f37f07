//! The `watchtower` binary: engine and gRPC server on the embedded defaults.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use watchtower::{Config, server::shutdown_signal};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let config = Config::parse();
    // Check the parameters before binding, so a bad file fails fast and alone.
    config.registry().context("invalid parameters")?;
    watchtower::app::network_runtime(&config)
        .context("cannot start the network runtime")?
        .block_on(serve(&config))
}

/// Binds the listener and runs until a shutdown signal.
async fn serve(config: &Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let report = watchtower::run(listener, config, shutdown_signal()).await?;
    tracing::info!(ticks = report.ticks, "watchtower stopped");
    Ok(())
}
