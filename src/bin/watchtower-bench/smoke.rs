//! The CI smoke run: a handful of subscribers and commands for a few
//! seconds. It checks correctness only (every call succeeds, ticks rise,
//! every subscriber gets data, no more snapshots encoded than ticks
//! published) and says nothing about speed.

use std::{sync::atomic::Ordering, time::Duration};

use anyhow::Context;
use clap::Args;
use watchtower::pb::ListParametersRequest;

use crate::{
    client::{self, Fleet, Probe, connect, server_stats},
    parse_duration,
};

/// Arguments of `smoke`.
#[derive(Debug, Clone, Args)]
pub struct SmokeArgs {
    /// Server address, `host:port` or a full `http://` URI.
    #[arg(long)]
    pub addr: String,
    /// Subscribers.
    #[arg(long, default_value_t = 5)]
    pub subscribers: usize,
    /// Commands, sent one after another.
    #[arg(long, default_value_t = 10)]
    pub commands: u64,
    /// How long the subscribers read.
    #[arg(long, default_value = "2", value_parser = parse_duration)]
    pub duration: Duration,
}

/// Runs the smoke; an error names every check that failed.
pub async fn run(args: &SmokeArgs) -> anyhow::Result<()> {
    let addr = &args.addr;
    let mut failures = Vec::new();
    let mut control = connect(addr).await?;

    let parameters = control
        .list_parameters(ListParametersRequest {})
        .await
        .context("ListParameters")?
        .into_inner()
        .parameters;
    if !parameters.iter().any(|p| p.key == client::COMMAND_KEY) {
        failures.push(format!("ListParameters has no {}", client::COMMAND_KEY));
    }

    let probe = Probe::start(addr, 10).await?;
    let fleet = Fleet::start(addr, args.subscribers, 2, 50).await?;
    let before = server_stats(&mut control).await?;

    for n in 0..args.commands {
        match control.apply_command(client::command(n)).await {
            Ok(r) if r.get_ref().response.as_ref().is_some_and(|r| r.success) => {}
            Ok(r) => failures.push(format!("command {n} not applied: {:?}", r.into_inner())),
            Err(s) => failures.push(format!("command {n} failed: {s}")),
        }
    }
    tokio::time::sleep(args.duration).await;
    let live = fleet
        .wait_live(args.subscribers, Duration::from_secs(10))
        .await;
    let after = server_stats(&mut control).await?;

    let ticks: Vec<u64> = probe.samples().iter().map(|s| s.tick).collect();
    match (ticks.first(), ticks.last()) {
        (Some(first), Some(last)) if last > first => {}
        _ => failures.push(format!("ticks did not rise: {ticks:?}")),
    }
    if ticks.windows(2).any(|w| w[1] <= w[0]) {
        failures.push("a stream repeated or went back a tick".to_owned());
    }
    if live != args.subscribers {
        failures.push(format!(
            "{live} of {} subscribers got data; first error: {:?}",
            args.subscribers,
            fleet.shared.first_error.lock().map(|e| e.clone())
        ));
    }
    for (i, count) in fleet.shared.per_subscriber.iter().enumerate() {
        if count.load(Ordering::Relaxed) == 0 {
            failures.push(format!("subscriber {i} got nothing"));
        }
    }
    let received: u64 = fleet
        .shared
        .per_subscriber
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    match (before, after) {
        (Some(before), Some(after)) => {
            // Ticks start at 0 or 1 depending on the server; allow one more.
            if after.snapshots_encoded > after.latest_tick + 1 {
                failures.push(format!(
                    "encoded {} snapshots but only {} ticks were published",
                    after.snapshots_encoded, after.latest_tick
                ));
            }
            if after.latest_tick <= before.latest_tick {
                failures.push("GetServerStats latest_tick did not rise".to_owned());
            }
            if after.snapshots_delivered < received {
                failures.push(format!(
                    "server delivered {} but subscribers received {received}",
                    after.snapshots_delivered
                ));
            }
            println!(
                "smoke: GetServerStats encoded={} delivered={} latest_tick={} active_subscribers={}",
                after.snapshots_encoded,
                after.snapshots_delivered,
                after.latest_tick,
                after.active_subscribers
            );
        }
        _ => println!("smoke: GetServerStats is not implemented; skipped its checks"),
    }
    fleet.stop().await;
    probe.stop().await;

    println!(
        "smoke: {} commands, {live}/{} subscribers live, {received} snapshots received, ticks {:?}..{:?}",
        args.commands,
        args.subscribers,
        ticks.first(),
        ticks.last()
    );
    if failures.is_empty() {
        println!("smoke: ok");
        Ok(())
    } else {
        anyhow::bail!("smoke failed:\n  {}", failures.join("\n  "))
    }
}
