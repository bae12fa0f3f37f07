//! The scenarios: engine isolation, ApplyCommand latency and throughput,
//! telemetry fan-out, and slow readers. Each one drives a running server
//! through its public API and returns plain figures; `report` renders them.

use std::time::{Duration, Instant};

use clap::Args;

use crate::{
    Target,
    client::{
        CommandLoad, CommandWindow, DEFAULT_STREAMS_PER_CONNECTION, Fleet, Pace, Percentiles,
        Probe, TpsWindow, connect, server_stats,
    },
    parse_duration,
    procfs::{self, CpuUse},
};

/// Interval of the TPS probe's own subscription.
const PROBE_INTERVAL_MS: u32 = 100;
/// Interval of the fan-out's transit probe: the shortest allowed, so the
/// probe is due whenever a snapshot is published and its staleness is the
/// publish-to-receipt time alone, under the same load.
const TRANSIT_PROBE_INTERVAL_MS: u32 = 10;

/// Arguments of `isolation`.
#[derive(Debug, Clone, Args)]
pub struct IsolationArgs {
    #[command(flatten)]
    pub target: Target,
    /// Commands per second during load windows (open loop).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Subscribers opened for each load window.
    #[arg(long, default_value_t = 0)]
    pub subscribers: usize,
    /// Their interval, ms.
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u32,
    /// Idle/load window pairs.
    #[arg(long, default_value_t = 3)]
    pub windows: usize,
    /// Length of each measured window.
    #[arg(long, default_value = "5", value_parser = parse_duration)]
    pub window: Duration,
    /// Time before each window is measured (load ramps up, idle settles).
    #[arg(long, default_value = "1", value_parser = parse_duration)]
    pub settle: Duration,
    /// Subscriber streams per HTTP/2 connection.
    #[arg(long, default_value_t = DEFAULT_STREAMS_PER_CONNECTION)]
    pub per_connection: usize,
    /// Open the subscribers on these servers instead, spread evenly (relays
    /// of the engine node at `--addr`, docs/scale-out.md); the TPS probe and
    /// the commands stay on `--addr`. Repeat or separate with commas.
    #[arg(long = "subscribe-addr", value_delimiter = ',')]
    pub subscribe_addrs: Vec<String>,
}

/// One idle window and the load window after it.
#[derive(Debug, Clone)]
pub struct WindowPair {
    /// Engine TPS while idle.
    pub idle: TpsWindow,
    /// Engine TPS under load.
    pub load: TpsWindow,
    /// Commands during the load window.
    pub commands: CommandWindow,
    /// Subscribers live during the load window.
    pub live: usize,
    /// Their deliveries per second.
    pub deliveries_per_s: f64,
    /// Their staleness.
    pub staleness: Percentiles,
    /// Server CPU in the idle window.
    pub idle_cpu: Option<CpuUse>,
    /// Server CPU in the load window.
    pub load_cpu: Option<CpuUse>,
    /// This load generator's CPU in the load window, % of one core.
    pub bench_cpu: Option<f64>,
}

/// Result of `isolation`.
#[derive(Debug, Clone)]
pub struct IsolationResult {
    /// The arguments.
    pub args: IsolationArgs,
    /// The server's configuration, for the report (e.g. `--tps 0`).
    pub server_label: String,
    /// Each pair of windows, in order.
    pub pairs: Vec<WindowPair>,
}

impl IsolationResult {
    /// Mean idle TPS, mean load TPS, and load/idle.
    pub fn summary(&self) -> (f64, f64, f64) {
        let n = self.pairs.len().max(1) as f64;
        let idle = self.pairs.iter().map(|p| p.idle.tps).sum::<f64>() / n;
        let load = self.pairs.iter().map(|p| p.load.tps).sum::<f64>() / n;
        (idle, load, if idle > 0.0 { load / idle } else { 0.0 })
    }
}

/// Engine TPS in alternating idle and load windows.
pub async fn isolation(args: &IsolationArgs) -> anyhow::Result<IsolationResult> {
    let addr = &args.target.addr;
    let probe = Probe::start(addr, PROBE_INTERVAL_MS).await?;
    let pid = args.target.server_pid;
    let mut pairs = Vec::new();
    for _ in 0..args.windows {
        tokio::time::sleep(args.settle).await;
        let s0 = pid.and_then(procfs::sample);
        let t0 = Instant::now();
        tokio::time::sleep(args.window).await;
        let idle = probe.tps(t0, Instant::now());
        let s1 = pid.and_then(procfs::sample);
        let idle_cpu = s0.zip(s1).map(|(a, b)| procfs::cpu_between(&a, &b));

        let fleets = start_fleets(args).await?;
        let load = CommandLoad::start(addr, Pace::Rate(args.rate), 4).await?;
        tokio::time::sleep(args.settle).await;
        load.shared.reset();
        fleets.iter().for_each(Fleet::reset);
        let s0 = pid.and_then(procfs::sample);
        let me0 = procfs::sample_self();
        let t0 = Instant::now();
        tokio::time::sleep(args.window).await;
        let t1 = Instant::now();
        let s1 = pid.and_then(procfs::sample);
        let me1 = procfs::sample_self();
        let tps = probe.tps(t0, t1);
        let commands = load.shared.window();
        let (live, deliveries, staleness) = fleets_window(&fleets);
        load.stop().await;
        for fleet in fleets {
            fleet.stop().await;
        }
        pairs.push(WindowPair {
            idle,
            load: tps,
            commands,
            live,
            deliveries_per_s: deliveries as f64 / t1.duration_since(t0).as_secs_f64(),
            staleness,
            idle_cpu,
            load_cpu: s0.zip(s1).map(|(a, b)| procfs::cpu_between(&a, &b)),
            bench_cpu: me0.zip(me1).map(|(a, b)| procfs::cpu_between(&a, &b).total),
        });
    }
    probe.stop().await;
    Ok(IsolationResult {
        args: args.clone(),
        server_label: String::new(),
        pairs,
    })
}

/// The load windows' subscribers: on `--addr`, or spread over
/// `--subscribe-addr`; each fleet waits until all of its streams are live.
async fn start_fleets(args: &IsolationArgs) -> anyhow::Result<Vec<Fleet>> {
    if args.subscribers == 0 {
        return Ok(Vec::new());
    }
    let addrs = if args.subscribe_addrs.is_empty() {
        std::slice::from_ref(&args.target.addr)
    } else {
        &args.subscribe_addrs[..]
    };
    let mut fleets = Vec::with_capacity(addrs.len());
    for (i, addr) in addrs.iter().enumerate() {
        // The remainder goes to the first servers, one each.
        let n = args.subscribers / addrs.len() + usize::from(i < args.subscribers % addrs.len());
        let fleet = Fleet::start(addr, n, args.per_connection, args.interval_ms).await?;
        fleet.wait_live(n, Duration::from_secs(60)).await;
        fleets.push(fleet);
    }
    Ok(fleets)
}

/// Live subscribers, deliveries and staleness over every fleet's window.
fn fleets_window(fleets: &[Fleet]) -> (usize, u64, Percentiles) {
    let mut live = 0;
    let mut deliveries = 0;
    let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
    for fleet in fleets {
        let (d, h) = fleet.window();
        live += fleet.shared.live.load(std::sync::atomic::Ordering::Relaxed);
        deliveries += d;
        match &mut merged {
            Some(all) => all
                .add(&h)
                .expect("the fleets' histograms share their bounds"),
            None => merged = Some(h),
        }
    }
    let staleness = merged.as_ref().map(Percentiles::of).unwrap_or_default();
    (live, deliveries, staleness)
}

/// Arguments of `apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: Target,
    /// Open loop: commands per second.
    #[arg(
        long,
        conflicts_with = "concurrency",
        required_unless_present = "concurrency"
    )]
    pub rate: Option<f64>,
    /// Closed loop: concurrent callers.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Measured time.
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured time first.
    #[arg(long, default_value = "2", value_parser = parse_duration)]
    pub warmup: Duration,
    /// HTTP/2 connections the commands are spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
}

/// Result of `apply`.
#[derive(Debug, Clone)]
pub struct ApplyResult {
    /// The arguments.
    pub args: ApplyArgs,
    /// A label for the server configuration (e.g. `RUST_LOG=info`).
    pub label: String,
    /// Outcomes in the measured window.
    pub window: CommandWindow,
    /// Seconds measured.
    pub seconds: f64,
    /// Engine TPS during the window.
    pub tps: TpsWindow,
    /// Server CPU during the window.
    pub cpu: Option<CpuUse>,
}

impl ApplyResult {
    /// Applied commands per second.
    pub fn throughput(&self) -> f64 {
        self.window.ok as f64 / self.seconds.max(1e-9)
    }

    /// Mean tick duration in the window, ms.
    pub fn tick_ms(&self) -> f64 {
        if self.tps.tps > 0.0 {
            1000.0 / self.tps.tps
        } else {
            f64::NAN
        }
    }
}

/// ApplyCommand latency at a fixed rate, or throughput with N callers.
pub async fn apply(args: &ApplyArgs, label: &str) -> anyhow::Result<ApplyResult> {
    let addr = &args.target.addr;
    let pace = match (args.rate, args.concurrency) {
        (Some(rate), _) => Pace::Rate(rate),
        (None, Some(n)) => Pace::Concurrency(n),
        (None, None) => anyhow::bail!("give --rate or --concurrency"),
    };
    let probe = Probe::start(addr, PROBE_INTERVAL_MS).await?;
    let load = CommandLoad::start(addr, pace, args.connections).await?;
    tokio::time::sleep(args.warmup).await;
    load.shared.reset();
    let s0 = args.target.server_pid.and_then(procfs::sample);
    let t0 = Instant::now();
    tokio::time::sleep(args.duration).await;
    let t1 = Instant::now();
    let window = load.shared.window();
    let s1 = args.target.server_pid.and_then(procfs::sample);
    let tps = probe.tps(t0, t1);
    load.stop().await;
    probe.stop().await;
    Ok(ApplyResult {
        args: args.clone(),
        label: label.to_owned(),
        window,
        seconds: t1.duration_since(t0).as_secs_f64(),
        tps,
        cpu: s0.zip(s1).map(|(a, b)| procfs::cpu_between(&a, &b)),
    })
}

/// Arguments of `fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: Target,
    /// Subscribers.
    #[arg(long)]
    pub subscribers: usize,
    /// Their interval, ms (100 = 10 Hz).
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u32,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = DEFAULT_STREAMS_PER_CONNECTION)]
    pub per_connection: usize,
    /// Measured time.
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time after every subscriber is live, before measuring.
    #[arg(long, default_value = "2", value_parser = parse_duration)]
    pub settle: Duration,
}

/// Counters from `GetServerStats` over a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatsDelta {
    /// Snapshots encoded in the window.
    pub encoded: u64,
    /// Snapshot messages handed to streams in the window.
    pub delivered: u64,
    /// Ticks published in the window (latest_tick delta).
    pub ticks: u64,
}

/// Result of `fanout`.
#[derive(Debug, Clone)]
pub struct FanoutResult {
    /// The arguments.
    pub args: FanoutArgs,
    /// The server's configuration, for the report (e.g. `--tps 0`).
    pub server_label: String,
    /// Subscribers that got data.
    pub live: usize,
    /// Subscribers that failed.
    pub failed: usize,
    /// First failure, if any.
    pub first_error: Option<String>,
    /// Time to open every stream and get a first snapshot, s.
    pub ramp_s: f64,
    /// Snapshots received per second, all subscribers.
    pub deliveries_per_s: f64,
    /// Staleness of received snapshots.
    pub staleness: Percentiles,
    /// Staleness of a stream that is always due (the transit probe): the
    /// publish-to-receipt part of `staleness`; the rest is waiting for the
    /// interval.
    pub transit: Percentiles,
    /// Engine TPS before the subscribers came.
    pub idle_tps: TpsWindow,
    /// Engine TPS during the window.
    pub tps: TpsWindow,
    /// Server CPU in the window.
    pub cpu: Option<CpuUse>,
    /// This load generator's CPU in the window, % of one core.
    pub bench_cpu: Option<f64>,
    /// Server RSS before the subscribers, KiB.
    pub rss_idle_kib: Option<u64>,
    /// Server RSS at the end of the window, KiB.
    pub rss_kib: Option<u64>,
    /// GetServerStats over the window, if the server has it.
    pub stats: Option<StatsDelta>,
}

impl FanoutResult {
    /// CPU of the server's network threads (all but the engine) per
    /// snapshot the server handed to a stream (GetServerStats), or else per
    /// snapshot received, µs.
    pub fn cpu_per_delivery_us(&self) -> Option<f64> {
        let core_share = self.cpu?.server()? / 100.0;
        let per_s = self.stats.map_or(self.deliveries_per_s, |d| {
            d.delivered as f64 / self.args.duration.as_secs_f64()
        });
        (per_s > 0.0).then(|| core_share / per_s * 1e6)
    }

    /// RSS growth per subscriber, bytes.
    pub fn rss_per_subscriber(&self) -> Option<f64> {
        let (idle, now) = (self.rss_idle_kib?, self.rss_kib?);
        Some((now as f64 - idle as f64) * 1024.0 / self.args.subscribers.max(1) as f64)
    }
}

async fn stats_now(
    client: &mut crate::client::Client,
) -> Option<watchtower::pb::GetServerStatsResponse> {
    server_stats(client).await.ok().flatten()
}

fn stats_delta(
    a: Option<watchtower::pb::GetServerStatsResponse>,
    b: Option<watchtower::pb::GetServerStatsResponse>,
) -> Option<StatsDelta> {
    let (a, b) = (a?, b?);
    Some(StatsDelta {
        encoded: b.snapshots_encoded.saturating_sub(a.snapshots_encoded),
        delivered: b.snapshots_delivered.saturating_sub(a.snapshots_delivered),
        ticks: b.latest_tick.saturating_sub(a.latest_tick),
    })
}

/// Waits until the server reports at most `n` open streams (or 15 s pass),
/// so the next scenario starts from a clean server.
async fn drain_streams(client: &mut crate::client::Client, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        match stats_now(client).await {
            Some(s) if s.active_subscribers > n => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return,
        }
    }
}

/// N subscribers: deliveries, staleness, server CPU and RSS, encode-once.
pub async fn fanout(args: &FanoutArgs) -> anyhow::Result<FanoutResult> {
    let addr = &args.target.addr;
    let pid = args.target.server_pid;
    let mut control = connect(addr).await?;
    let probe = Probe::start(addr, PROBE_INTERVAL_MS).await?;
    let transit = Probe::start(addr, TRANSIT_PROBE_INTERVAL_MS).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let idle_tps = probe.tps(t0, Instant::now());
    let rss_idle_kib = pid.and_then(procfs::rss_kib);

    let ramp = Instant::now();
    let fleet = Fleet::start(
        addr,
        args.subscribers,
        args.per_connection,
        args.interval_ms,
    )
    .await?;
    let live = fleet
        .wait_live(args.subscribers, Duration::from_secs(120))
        .await;
    let ramp_s = ramp.elapsed().as_secs_f64();
    tokio::time::sleep(args.settle).await;

    fleet.reset();
    let stats0 = stats_now(&mut control).await;
    let s0 = pid.and_then(procfs::sample);
    let me0 = procfs::sample_self();
    let t0 = Instant::now();
    tokio::time::sleep(args.duration).await;
    let t1 = Instant::now();
    let (deliveries, staleness) = fleet.window();
    let s1 = pid.and_then(procfs::sample);
    let me1 = procfs::sample_self();
    let stats1 = stats_now(&mut control).await;
    let tps = probe.tps(t0, t1);

    let result = FanoutResult {
        args: args.clone(),
        server_label: String::new(),
        live,
        failed: fleet
            .shared
            .failed
            .load(std::sync::atomic::Ordering::Relaxed),
        first_error: fleet
            .shared
            .first_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default(),
        ramp_s,
        deliveries_per_s: deliveries as f64 / t1.duration_since(t0).as_secs_f64(),
        staleness: Percentiles::of(&staleness),
        transit: transit.staleness(t0, t1),
        idle_tps,
        tps,
        cpu: s0.zip(s1).map(|(a, b)| procfs::cpu_between(&a, &b)),
        bench_cpu: me0.zip(me1).map(|(a, b)| procfs::cpu_between(&a, &b).total),
        rss_idle_kib,
        rss_kib: s1.map(|s| s.rss_kib),
        stats: stats_delta(stats0, stats1),
    };
    fleet.stop().await;
    probe.stop().await;
    transit.stop().await;
    drain_streams(&mut control, 0).await;
    Ok(result)
}

/// Arguments of `slow-readers`.
#[derive(Debug, Clone, Args)]
pub struct SlowArgs {
    #[command(flatten)]
    pub target: Target,
    /// Subscribers that keep reading.
    #[arg(long, default_value_t = 1000)]
    pub healthy: usize,
    /// Subscribers that open a stream and never read it, each on its own
    /// connection with h2's default 64 KiB windows.
    #[arg(long, default_value_t = 1000)]
    pub slow: usize,
    /// Interval of every subscriber, ms.
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u32,
    /// Streams per connection for the healthy subscribers.
    #[arg(long, default_value_t = DEFAULT_STREAMS_PER_CONNECTION)]
    pub per_connection: usize,
    /// Measured time with healthy subscribers only.
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub baseline: Duration,
    /// Measured time after the slow readers joined.
    #[arg(long, default_value = "20", value_parser = parse_duration)]
    pub with_slow: Duration,
}

/// Healthy subscribers' view of one phase.
#[derive(Debug, Clone, Default)]
pub struct SlowPhase {
    /// Snapshots per second, all healthy subscribers.
    pub deliveries_per_s: f64,
    /// Their staleness.
    pub staleness: Percentiles,
    /// Engine TPS.
    pub tps: TpsWindow,
    /// Server CPU.
    pub cpu: Option<CpuUse>,
}

/// Result of `slow-readers`.
#[derive(Debug, Clone)]
pub struct SlowResult {
    /// The arguments.
    pub args: SlowArgs,
    /// Healthy subscribers live.
    pub healthy_live: usize,
    /// Slow streams opened.
    pub slow_opened: usize,
    /// Seconds to open the slow streams.
    pub slow_open_s: f64,
    /// Before the slow readers.
    pub baseline: SlowPhase,
    /// With them.
    pub with_slow: SlowPhase,
    /// Server RSS before any subscriber, KiB.
    pub rss_idle_kib: Option<u64>,
    /// (seconds since the baseline started, RSS KiB), twice a second.
    pub rss_series: Vec<(f64, u64)>,
    /// When the slow readers were added, seconds on the same clock.
    pub slow_at_s: f64,
    /// Open streams the server reported with the slow readers in place.
    pub active_subscribers: Option<u64>,
}

async fn measure_phase(
    fleet: &Fleet,
    probe: &Probe,
    pid: Option<u32>,
    length: Duration,
    origin: Instant,
    series: &mut Vec<(f64, u64)>,
) -> SlowPhase {
    fleet.reset();
    let s0 = pid.and_then(procfs::sample);
    let t0 = Instant::now();
    while t0.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(kib) = pid.and_then(procfs::rss_kib) {
            series.push((origin.elapsed().as_secs_f64(), kib));
        }
    }
    let t1 = Instant::now();
    let s1 = pid.and_then(procfs::sample);
    let (deliveries, staleness) = fleet.window();
    SlowPhase {
        deliveries_per_s: deliveries as f64 / t1.duration_since(t0).as_secs_f64(),
        staleness: Percentiles::of(&staleness),
        tps: probe.tps(t0, t1),
        cpu: s0.zip(s1).map(|(a, b)| procfs::cpu_between(&a, &b)),
    }
}

/// Healthy subscribers, measured before and after slow readers join.
pub async fn slow_readers(args: &SlowArgs) -> anyhow::Result<SlowResult> {
    let addr = &args.target.addr;
    let pid = args.target.server_pid;
    let mut control = connect(addr).await?;
    let probe = Probe::start(addr, PROBE_INTERVAL_MS).await?;
    let rss_idle_kib = pid.and_then(procfs::rss_kib);
    let fleet = Fleet::start(addr, args.healthy, args.per_connection, args.interval_ms).await?;
    let healthy_live = fleet.wait_live(args.healthy, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let origin = Instant::now();
    let mut series = Vec::new();
    let baseline = measure_phase(&fleet, &probe, pid, args.baseline, origin, &mut series).await;
    let slow_at_s = origin.elapsed().as_secs_f64();
    let opened = Instant::now();
    let slow = Fleet::start_slow(addr, args.slow, args.interval_ms).await?;
    let slow_open_s = opened.elapsed().as_secs_f64();
    let with_slow = measure_phase(&fleet, &probe, pid, args.with_slow, origin, &mut series).await;
    let active_subscribers = stats_now(&mut control).await.map(|s| s.active_subscribers);
    let slow_opened = slow.shared.live.load(std::sync::atomic::Ordering::Relaxed);
    slow.stop().await;
    fleet.stop().await;
    probe.stop().await;
    drain_streams(&mut control, 0).await;
    Ok(SlowResult {
        args: args.clone(),
        healthy_live,
        slow_opened,
        slow_open_s,
        baseline,
        with_slow,
        rss_idle_kib,
        rss_series: series,
        slow_at_s,
        active_subscribers,
    })
}
