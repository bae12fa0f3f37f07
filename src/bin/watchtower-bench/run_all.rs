//! `run-all`: starts the release server once per scenario group (so each
//! group starts from a fresh process), runs every scenario against it,
//! and writes `docs/benchmarks.md` and `docs/benchmarks-fanout.svg`.
//!
//! The report is rewritten after every group, so a run cut short still
//! leaves the figures it measured. Text after the analysis marker in an
//! existing report is kept, so hand-written reading of the figures
//! survives a re-run.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Args;
use watchtower::pb::ListParametersRequest;

use crate::{
    Target,
    client::{DEFAULT_STREAMS_PER_CONNECTION, connect},
    report,
    scenarios::{
        self, ApplyArgs, ApplyResult, FanoutArgs, FanoutResult, IsolationArgs, IsolationResult,
        SlowArgs, SlowResult,
    },
};

/// Everything after this line of an existing report is kept on re-runs.
const ANALYSIS_MARKER: &str = "<!-- hand-written analysis below; run-all keeps it -->";

/// Arguments of `run-all`.
#[derive(Debug, Clone, Args)]
pub struct RunAllArgs {
    /// The server binary to start.
    #[arg(long, default_value = "target/release/watchtower")]
    pub server_bin: PathBuf,
    /// First port; each server gets the next one. Below Linux's default
    /// ephemeral range (32768–60999), so the load generator's own outgoing
    /// connections never hold a port a later server needs.
    #[arg(long, default_value_t = 20151)]
    pub base_port: u16,
    /// Subscriber counts for the fan-out scenario.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    pub subscribers: Vec<usize>,
    /// Open-loop ApplyCommand rates, per second.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    pub rates: Vec<f64>,
    /// Closed-loop ApplyCommand callers.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub concurrency: Vec<usize>,
    /// Short windows and small counts, to try the runner (figures meaningless).
    #[arg(long)]
    pub quick: bool,
    /// The report.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub out: PathBuf,
    /// The fan-out chart.
    #[arg(long, default_value = "docs/benchmarks-fanout.svg")]
    pub svg: PathBuf,
    /// Server logs go here.
    #[arg(long, default_value = "target/bench-logs")]
    pub log_dir: PathBuf,
}

/// A release server started for one group of scenarios.
struct Server {
    child: Child,
    addr: String,
    pid: u32,
    /// The command line, for the report.
    command: String,
    /// Where its output goes.
    log_path: PathBuf,
}

impl Server {
    async fn start(
        bin: &Path,
        tps: &str,
        port: u16,
        rust_log: &str,
        log_dir: &Path,
        name: &str,
    ) -> anyhow::Result<Self> {
        fs::create_dir_all(log_dir)?;
        let log_path = log_dir.join(format!("{name}.log"));
        let log = fs::File::create(&log_path)?;
        let addr = format!("127.0.0.1:{port}");
        let args = [
            "--tps",
            tps,
            "--legacy-ws-listen",
            "off",
            // The in-memory path, so figures stay comparable across runs;
            // the cost of durability is measured on its own (docs/durability.md).
            "--data-dir",
            "off",
            "--listen",
            addr.as_str(),
        ];
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let command = format!(
            "RUST_LOG={rust_log} {} {} > {} 2>&1",
            bin.display(),
            args.join(" "),
            log_path.display()
        );
        let pid = child.id();
        let mut server = Self {
            child,
            addr,
            pid,
            command,
            log_path,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Ready when ListParameters answers (the engine has published a tick).
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("server exited at start: {status}");
            }
            if let Ok(mut c) = connect(&self.addr).await
                && c.list_parameters(ListParametersRequest {}).await.is_ok()
            {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "server not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Starts a server for scenario `name` and lists its command line in
    /// the report.
    async fn recorded(
        args: &RunAllArgs,
        f: &mut Findings,
        tps: &str,
        port: u16,
        rust_log: &str,
        name: &str,
    ) -> anyhow::Result<Self> {
        let server =
            Self::start(&args.server_bin, tps, port, rust_log, &args.log_dir, name).await?;
        f.servers.push((name.to_owned(), server.command.clone()));
        Ok(server)
    }

    fn target(&self) -> Target {
        Target {
            addr: self.addr.clone(),
            server_pid: Some(self.pid),
        }
    }

    /// Notes in the report if the server died during the scenario (for
    /// example, the engine halted), then stops it.
    async fn finish(mut self, f: &mut Findings, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let halted = fs::read_to_string(&self.log_path)
                .unwrap_or_default()
                .lines()
                .find(|l| l.contains("engine halted"))
                .map(|l| l.chars().take(300).collect::<String>())
                .unwrap_or_default();
            f.failures.push(format!(
                "{what}: the server exited during the scenario ({status}); its figures are cut short. {halted}"
            ));
        }
        self.stop().await;
    }

    /// SIGTERM, then SIGKILL after 10 s.
    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What has been measured so far.
#[derive(Default)]
struct Findings {
    started: String,
    machine: Vec<(String, String)>,
    load_start: String,
    load_end: String,
    invocation: String,
    servers: Vec<(String, String)>,
    commands: Vec<String>,
    isolation: Vec<IsolationResult>,
    apply: Vec<ApplyResult>,
    fanout: Vec<FanoutResult>,
    slow: Option<SlowResult>,
    failures: Vec<String>,
    quick: bool,
    /// The chart's file name, linked from the report.
    svg_name: String,
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> Vec<(String, String)> {
    [
        ("cores (`nproc`)", "nproc"),
        (
            "CPU (`lscpu` model name)",
            "lscpu | sed -n 's/^Model name: *//p'",
        ),
        (
            "memory (`/proc/meminfo` MemTotal)",
            "awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo",
        ),
        ("kernel", "uname -sr"),
        ("rustc", "rustc --version"),
        ("commit", "git rev-parse --short HEAD"),
        ("open files limit (`ulimit -n`)", "ulimit -n"),
    ]
    .into_iter()
    .map(|(k, c)| (k.to_owned(), sh(c)))
    .collect()
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn dur(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

fn isolation_cmd(a: &IsolationArgs) -> String {
    format!(
        "watchtower-bench isolation --addr {} --server-pid PID --rate {} --subscribers {} --interval-ms {} --windows {} --window {} --settle {} --per-connection {}",
        a.target.addr,
        a.rate,
        a.subscribers,
        a.interval_ms,
        a.windows,
        dur(a.window),
        dur(a.settle),
        a.per_connection
    )
}

fn apply_cmd(a: &ApplyArgs) -> String {
    let pace = match (a.rate, a.concurrency) {
        (Some(r), _) => format!("--rate {r}"),
        (_, Some(n)) => format!("--concurrency {n}"),
        _ => String::new(),
    };
    format!(
        "watchtower-bench apply --addr {} --server-pid PID {pace} --duration {} --warmup {} --connections {}",
        a.target.addr,
        dur(a.duration),
        dur(a.warmup),
        a.connections
    )
}

fn fanout_cmd(a: &FanoutArgs) -> String {
    format!(
        "watchtower-bench fanout --addr {} --server-pid PID --subscribers {} --interval-ms {} --per-connection {} --duration {} --settle {}",
        a.target.addr,
        a.subscribers,
        a.interval_ms,
        a.per_connection,
        dur(a.duration),
        dur(a.settle)
    )
}

fn slow_cmd(a: &SlowArgs) -> String {
    format!(
        "watchtower-bench slow-readers --addr {} --server-pid PID --healthy {} --slow {} --interval-ms {} --per-connection {} --baseline {} --with-slow {}",
        a.target.addr,
        a.healthy,
        a.slow,
        a.interval_ms,
        a.per_connection,
        dur(a.baseline),
        dur(a.with_slow)
    )
}

/// Runs every scenario and writes the report.
pub async fn run(args: RunAllArgs) -> anyhow::Result<()> {
    let mut f = Findings {
        started: sh("date -u '+%Y-%m-%d %H:%M:%S UTC'"),
        machine: machine(),
        load_start: load_average(),
        invocation: std::env::args().collect::<Vec<_>>().join(" "),
        quick: args.quick,
        svg_name: args
            .svg
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Findings::default()
    };
    let q = args.quick;
    let secs = |full: f64, quick: f64| Duration::from_secs_f64(if q { quick } else { full });
    let mut port = args.base_port;
    let mut next_port = || {
        port += 1;
        port
    };

    // Every scenario gets a fresh server, so none inherits another's state.
    // 1. Engine isolation, unthrottled and paced at 300 ticks/s, each in
    // 3 x (5 s idle, 5 s load).
    let window = secs(5.0, 1.0);
    for tps in ["0", "300"] {
        for (rate, subscribers) in [(100.0, 0), (1000.0, if q { 100 } else { 1000 })] {
            let name = format!("isolation-{rate}-tps{tps}");
            let server = Server::recorded(&args, &mut f, tps, next_port(), "info", &name).await?;
            let a = IsolationArgs {
                target: server.target(),
                rate,
                subscribers,
                interval_ms: 100,
                windows: 3,
                window,
                settle: secs(0.5, 0.3),
                per_connection: DEFAULT_STREAMS_PER_CONNECTION,
                subscribe_addrs: Vec::new(),
            };
            f.commands
                .push(format!("--tps {tps}: {}", isolation_cmd(&a)));
            eprintln!("run-all: --tps {tps}: {}", isolation_cmd(&a));
            match scenarios::isolation(&a).await {
                Ok(mut r) => {
                    r.server_label = format!("--tps {tps}");
                    eprintln!("{}", report::isolation_table(std::slice::from_ref(&r)));
                    f.isolation.push(r);
                }
                Err(e) => f.failures.push(format!("{name}: {e:#}")),
            }
            server.finish(&mut f, &name).await;
            write(&args, &f)?;
        }
    }

    // 2. ApplyCommand, with the default log level and with warn.
    for log in ["info", "warn"] {
        let paces: Vec<_> = args
            .rates
            .iter()
            .map(|&r| (Some(r), None))
            .chain(args.concurrency.iter().map(|&n| (None, Some(n))))
            .collect();
        for (rate, concurrency) in paces {
            let name = format!(
                "apply-{log}-{}",
                rate.map_or_else(
                    || format!("c{}", concurrency.unwrap_or(0)),
                    |r| r.to_string()
                )
            );
            let server = Server::recorded(&args, &mut f, "0", next_port(), log, &name).await?;
            let a = ApplyArgs {
                target: server.target(),
                rate,
                concurrency,
                duration: secs(5.0, 2.0),
                warmup: secs(1.0, 0.5),
                connections: 4,
            };
            f.commands
                .push(format!("RUST_LOG={log}: {}", apply_cmd(&a)));
            eprintln!("run-all: RUST_LOG={log}: {}", apply_cmd(&a));
            match scenarios::apply(&a, &format!("RUST_LOG={log}")).await {
                Ok(r) => {
                    eprintln!("{}", report::apply_table(std::slice::from_ref(&r)));
                    f.apply.push(r);
                }
                Err(e) => f.failures.push(format!("apply: {e:#}")),
            }
            server.finish(&mut f, &name).await;
            write(&args, &f)?;
        }
    }

    // 3. Fan-out, one fresh server per subscriber count (RSS starts clean).
    let counts: Vec<usize> = if q {
        vec![100, 300]
    } else {
        args.subscribers.clone()
    };
    // At the default 10 ticks/s too: the engine then leaves the server and
    // the load generator most of the two cores, and a server lives for hours.
    for tps in ["0", "10"] {
        for &n in &counts {
            let name = format!("fanout-{n}-tps{tps}");
            let server = Server::recorded(&args, &mut f, tps, next_port(), "info", &name).await?;
            let a = FanoutArgs {
                target: server.target(),
                subscribers: n,
                interval_ms: 100,
                per_connection: DEFAULT_STREAMS_PER_CONNECTION,
                duration: secs(5.0, 2.0),
                settle: secs(1.0, 0.5),
            };
            f.commands.push(format!("--tps {tps}: {}", fanout_cmd(&a)));
            eprintln!("run-all: --tps {tps}: {}", fanout_cmd(&a));
            match scenarios::fanout(&a).await {
                Ok(mut r) => {
                    r.server_label = format!("--tps {tps}");
                    eprintln!("{}", report::fanout_table(std::slice::from_ref(&r)));
                    if let Some(e) = &r.first_error {
                        f.failures.push(format!(
                            "{name}: {} subscribers failed; first: {e}",
                            r.failed
                        ));
                    }
                    f.fanout.push(r);
                }
                Err(e) => f.failures.push(format!("{name}: {e:#}")),
            }
            server.finish(&mut f, &name).await;
            write(&args, &f)?;
        }
    }

    // 4. Slow readers.
    let server = Server::recorded(&args, &mut f, "0", next_port(), "info", "slow-readers").await?;
    let a = SlowArgs {
        target: server.target(),
        healthy: if q { 100 } else { 1000 },
        slow: if q { 100 } else { 1000 },
        interval_ms: 100,
        per_connection: DEFAULT_STREAMS_PER_CONNECTION,
        baseline: secs(3.0, 2.0),
        with_slow: secs(6.0, 3.0),
    };
    f.commands.push(slow_cmd(&a));
    eprintln!("run-all: {}", slow_cmd(&a));
    match scenarios::slow_readers(&a).await {
        Ok(r) => {
            eprintln!("{}", report::slow_section(&r));
            f.slow = Some(r);
        }
        Err(e) => f.failures.push(format!("slow readers: {e:#}")),
    }
    server.finish(&mut f, "slow-readers").await;

    f.load_end = load_average();
    write(&args, &f)?;
    eprintln!(
        "run-all: wrote {} and {}",
        args.out.display(),
        args.svg.display()
    );
    Ok(())
}

fn write(args: &RunAllArgs, f: &Findings) -> anyhow::Result<()> {
    let kept = fs::read_to_string(&args.out)
        .ok()
        .and_then(|old| old.split_once(ANALYSIS_MARKER).map(|(_, a)| a.to_owned()))
        .unwrap_or_default();
    let mut doc = render(f);
    doc.push_str(ANALYSIS_MARKER);
    doc.push_str(if kept.is_empty() { "\n" } else { &kept });
    if let Some(dir) = args.out.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&args.out, doc)?;
    if !f.fanout.is_empty() {
        fs::write(&args.svg, report::fanout_svg(&f.fanout))?;
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "**met**" } else { "**missed**" }
}

fn targets(f: &Findings) -> String {
    let mut s = String::from("| target | measured | verdict |\n|---|---|---|\n");
    for r in &f.isolation {
        let (bar, what) = if r.args.subscribers == 0 {
            (0.95, "spec bar")
        } else {
            (0.98, "target")
        };
        let (idle, load, ratio) = r.summary();
        let _ = writeln!(
            s,
            "| engine TPS ratio at {} cmd/s + {} subscribers ≥ {bar} ({what}), server {} | {ratio:.3} ({load:.1} / {idle:.1} TPS) | {} (gap {:+.3}) |",
            r.args.rate,
            r.args.subscribers,
            r.server_label,
            yes(ratio >= bar),
            ratio - bar
        );
    }
    for r in f.apply.iter().filter(|r| r.args.rate.is_some()) {
        let target = r.tick_ms() + 1.0;
        let _ = writeln!(
            s,
            "| ApplyCommand p99 ≤ tick + 1 ms, {} /s, {} | p99 {:.2} ms vs {:.2} ms | {} (gap {:+.2} ms) |",
            r.args.rate.unwrap_or_default(),
            r.label,
            r.window.latency.p99,
            target,
            yes(r.window.latency.p99 <= target),
            r.window.latency.p99 - target
        );
    }
    for label in ["RUST_LOG=info", "RUST_LOG=warn"] {
        if let Some(best) = f
            .apply
            .iter()
            .filter(|r| r.args.concurrency.is_some() && r.label == label)
            .max_by(|a, b| a.throughput().total_cmp(&b.throughput()))
        {
            let _ = writeln!(
                s,
                "| ApplyCommand ≥ 20,000 applied/s, {label} | {:.0} /s ({} callers; {} RESOURCE_EXHAUSTED) | {} (gap {:+.0} /s) |",
                best.throughput(),
                best.args.concurrency.unwrap_or_default(),
                best.window.exhausted,
                yes(best.throughput() >= 20_000.0),
                best.throughput() - 20_000.0
            );
        }
    }
    for r in ["--tps 0", "--tps 10"].iter().filter_map(|label| {
        f.fanout
            .iter()
            .filter(|r| r.server_label == *label)
            .max_by_key(|r| r.args.subscribers)
    }) {
        let label = &r.server_label;
        let _ = writeln!(
            s,
            "| {} subscribers at 10 Hz with p99 staleness ≤ 100 ms, server {label} | {} live, p99 {:.1} ms | {} (gap {:+.1} ms) |",
            r.args.subscribers,
            r.live,
            r.staleness.p99,
            yes(r.live == r.args.subscribers && r.staleness.p99 <= 100.0),
            r.staleness.p99 - 100.0
        );
        if let Some(b) = r.rss_per_subscriber() {
            let _ = writeln!(
                s,
                "| ≤ 16 KiB RSS per subscriber ({} subscribers, server {label}) | {:.1} KiB | {} (gap {:+.1} KiB) |",
                r.args.subscribers,
                b / 1024.0,
                yes(b / 1024.0 <= 16.0),
                b / 1024.0 - 16.0
            );
        }
        if let Some(d) = r.stats {
            let _ = writeln!(
                s,
                "| each snapshot encoded once ({} subscribers, server {label}) | {} encoded for {} ticks published, {} delivered in the window | {} |",
                r.args.subscribers,
                d.encoded,
                d.ticks,
                d.delivered,
                yes(d.encoded <= d.ticks + 1)
            );
        }
    }
    if let Some(r) = &f.slow {
        let tps = r.with_slow.tps.tps / r.baseline.tps.tps.max(1e-9);
        let p99 = r.with_slow.staleness.p99 / r.baseline.staleness.p99.max(1e-9);
        let at = |t: f64| {
            r.rss_series
                .iter()
                .rev()
                .find(|(s, _)| *s <= t)
                .map_or(0, |(_, k)| *k)
        };
        let before = at(r.slow_at_s);
        let end = r.rss_series.last().map_or(0, |(_, k)| *k);
        let mid = at(r.slow_at_s + (r.rss_series.last().map_or(0.0, |x| x.0) - r.slow_at_s) / 2.0);
        let _ = writeln!(
            s,
            "| slow readers: engine TPS unchanged | ratio {tps:.3} with/without | {} |",
            yes(tps >= 0.95)
        );
        let _ = writeln!(
            s,
            "| slow readers: healthy staleness unchanged | p99 {:.1} → {:.1} ms (×{p99:.2}) | {} |",
            r.baseline.staleness.p99,
            r.with_slow.staleness.p99,
            yes(r.with_slow.staleness.p99 <= 100.0 && p99 <= 1.5)
        );
        let _ = writeln!(
            s,
            "| slow readers: server RSS bounded | {:.1} MiB before, {:.1} MiB halfway, {:.1} MiB at the end ({:.1} KiB per slow reader) | {} |",
            before as f64 / 1024.0,
            mid as f64 / 1024.0,
            end as f64 / 1024.0,
            (end as f64 - before as f64) / r.slow_opened.max(1) as f64,
            yes(end <= mid + mid / 20)
        );
    }
    s
}

fn render(f: &Findings) -> String {
    let mut s = String::from("# Benchmarks\n\n");
    s.push_str(
        "Generated by `benches/run.sh` (`watchtower-bench run-all`); every figure below was \
         measured in one run on the machine described here, with the load generator on the \
         same machine as the server. Re-running rewrites everything above the analysis marker.\n\n",
    );
    if f.quick {
        s.push_str("**This is a `--quick` run: short windows and small counts; the figures mean nothing.**\n\n");
    }
    s.push_str("## Machine\n\n| | |\n|---|---|\n");
    let _ = writeln!(s, "| run started | {} |", f.started);
    for (k, v) in &f.machine {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "| load average (1, 5, 15 min) at start | {} |",
        f.load_start
    );
    let _ = writeln!(
        s,
        "| load average at end | {} |",
        if f.load_end.is_empty() {
            "(run incomplete)"
        } else {
            &f.load_end
        }
    );
    s.push_str("\n## Targets\n\n");
    s.push_str(&targets(f));
    if !f.failures.is_empty() {
        s.push_str("\nScenarios that failed in this run:\n\n");
        for e in &f.failures {
            let _ = writeln!(s, "- {e}");
        }
    }
    s.push_str("\n## How it was run\n\n```sh\n");
    let _ = writeln!(s, "{}", f.invocation);
    s.push_str("```\n\nServers (one fresh process per group; `--tps 0` = unthrottled engine):\n\n");
    for (what, cmd) in &f.servers {
        let _ = writeln!(s, "- {what}: `{cmd}`");
    }
    s.push_str(
        "\nEach scenario, as the equivalent stand-alone command (PID = the server's pid, for /proc):\n\n```sh\n",
    );
    for c in &f.commands {
        let _ = writeln!(s, "{c}");
    }
    s.push_str("```\n\n");
    s.push_str(
        "Method: engine TPS is the tick delta over the delta of the snapshots' own \
         `captured_at_unix_ms`, read by one probe subscriber at 100 ms. Staleness is the \
         client's receipt time minus `captured_at_unix_ms` (the snapshot's capture, at the end \
         of its tick), so it includes up to one snapshot interval of waiting by design plus \
         queuing and transport; `captured_at_unix_ms` is whole milliseconds, so figures carry \
         up to 1 ms of rounding. The fan-out's 10 ms probe is due at every publish, so its \
         staleness is publish to receipt; the fleet's median less the probe's is what a stream \
         waited for its interval or for its group's turn in the fan-out. Open-loop latency \
         counts from each command's scheduled send time, kept by a kernel timer; \
         \"sent late\" is how late the load generator itself sent, its own share. Server CPU \
         is utime+stime from `/proc/PID/stat` over the window, in percent of one core, split \
         into the `watchtower-engine` thread and the rest. RSS is `VmRSS`. \
         Subscribers are spread 100 streams per HTTP/2 connection (hyper 1.12's server allows \
         200 concurrent streams per connection by default), with 1 MiB stream and 16 MiB \
         connection windows; each slow reader has a connection of its own with h2's default \
         64 KiB windows and never polls its stream. Commands set `fiscal.vat_rate` to 0.10 \
         and 0.11 in turn, so each one is a real change (and logs `Registry updated` at info).\n\n",
    );
    s.push_str("## Engine isolation\n\n");
    s.push_str(&report::isolation_table(&f.isolation));
    s.push_str("\n## ApplyCommand\n\n");
    s.push_str(&report::apply_table(&f.apply));
    s.push_str("\n## Fan-out\n\n");
    s.push_str(&report::fanout_table(&f.fanout));
    let _ = writeln!(
        s,
        "\n![staleness and CPU against subscribers, server at --tps 0 and --tps 10]({})\n",
        f.svg_name
    );
    s.push_str("## Slow readers\n\n");
    if let Some(r) = &f.slow {
        s.push_str(&report::slow_section(r));
    }
    s.push('\n');
    s
}
