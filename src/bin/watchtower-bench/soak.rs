//! The soak's load (`scripts/soak` runs it and checks the server after):
//! telemetry streams opened, read once and cancelled, over and over, then
//! commands from clients that drop their connection and reconnect every few
//! hundred commands. It counts what the server answered, so the script can
//! hold the audit log to it; it judges nothing about speed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Args;
use tonic::Code;
use watchtower::pb::SubscribeTelemetryRequest;

use crate::client::{self, connect};

/// Arguments of `soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Server address, `host:port` or a full `http://` URI.
    #[arg(long)]
    pub addr: String,
    /// Subscribe / read one snapshot / cancel cycles.
    #[arg(long, default_value_t = 100_000)]
    pub cycles: u64,
    /// Commands in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub commands: u64,
    /// Concurrent clients in each phase.
    #[arg(long, default_value_t = 32)]
    pub clients: u64,
    /// Cycles or commands a client sends on one connection before it drops
    /// it and connects again.
    #[arg(long, default_value_t = 500)]
    pub per_connection: u64,
}

/// What the soak's clients saw.
#[derive(Debug, Default)]
struct Counts {
    cycles: AtomicU64,
    applied: AtomicU64,
    /// Refused at once with RESOURCE_EXHAUSTED (queue full) and retried.
    retried: AtomicU64,
    /// Any other error: a lost answer, if it ever happens.
    failed: AtomicU64,
    connections: AtomicU64,
}

/// Runs both phases and prints one `key=value` line the script reads.
pub async fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    phase(args, args.cycles, &counts, cycles).await?;
    let cycles_took = started.elapsed();
    phase(args, args.commands, &counts, commands).await?;
    let commands_took = started.elapsed() - cycles_took;
    println!(
        "soak cycles={} applied={} retried={} failed={} connections={} cycles_s={:.1} commands_s={:.1}",
        counts.cycles.load(Ordering::Relaxed),
        counts.applied.load(Ordering::Relaxed),
        counts.retried.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        counts.connections.load(Ordering::Relaxed),
        cycles_took.as_secs_f64(),
        commands_took.as_secs_f64(),
    );
    Ok(())
}

/// Splits `total` over the clients and runs `work` for each share.
async fn phase<F, Fut>(
    args: &SoakArgs,
    total: u64,
    counts: &Arc<Counts>,
    work: F,
) -> anyhow::Result<()>
where
    F: Fn(String, u64, u64, Arc<Counts>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let share = total / args.clients + u64::from(i < total % args.clients);
        let task = work(
            args.addr.clone(),
            share,
            args.per_connection,
            Arc::clone(counts),
        );
        tasks.push(tokio::spawn(task));
    }
    for task in tasks {
        task.await.context("a soak client")??;
    }
    Ok(())
}

/// `n` subscribe / first snapshot / cancel cycles, reconnecting every
/// `per_connection`.
async fn cycles(
    addr: String,
    n: u64,
    per_connection: u64,
    counts: Arc<Counts>,
) -> anyhow::Result<()> {
    let mut done = 0;
    while done < n {
        let mut client = connect(&addr).await?;
        counts.connections.fetch_add(1, Ordering::Relaxed);
        for _ in 0..per_connection.min(n - done) {
            let mut stream = client
                .subscribe_telemetry(SubscribeTelemetryRequest {
                    interval_ms: 10,
                    history: 0,
                })
                .await
                .context("subscribe")?
                .into_inner();
            stream
                .message()
                .await
                .context("a snapshot")?
                .context("an open stream")?;
            // Dropping the stream cancels it (RST_STREAM).
            drop(stream);
            counts.cycles.fetch_add(1, Ordering::Relaxed);
            done += 1;
        }
    }
    Ok(())
}

/// `n` commands, one at a time, reconnecting every `per_connection`.
async fn commands(
    addr: String,
    n: u64,
    per_connection: u64,
    counts: Arc<Counts>,
) -> anyhow::Result<()> {
    let mut done = 0;
    while done < n {
        let mut client = connect(&addr).await?;
        counts.connections.fetch_add(1, Ordering::Relaxed);
        let mut on_this = 0;
        while on_this < per_connection && done < n {
            match client.apply_command(client::command(done)).await {
                Ok(_) => {
                    counts.applied.fetch_add(1, Ordering::Relaxed);
                    on_this += 1;
                    done += 1;
                }
                Err(status) if status.code() == Code::ResourceExhausted => {
                    counts.retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(status) => {
                    eprintln!("soak: a command failed: {status:?}");
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    done += 1;
                    break;
                }
            }
        }
    }
    Ok(())
}
