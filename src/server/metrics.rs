//! Prometheus metrics, served as text at `GET /metrics` on the main port.
//!
//! Three sources, none of which touches the engine thread:
//! - each snapshot the [`TelemetryHub`] sees, followed by one task
//!   ([`follow_snapshots`]): ticks and the tick-duration histogram;
//! - the calls that finish a command ([`command_answered`],
//!   [`command_refused`]), open a WebSocket ([`websocket_opened`]) and send
//!   a live frame ([`frame_sent`]);
//! - the live state, read at scrape time: queue depth, open streams, the
//!   latest snapshot's TPS, the hub's counters, the audit log's state and
//!   what the store dropped ([`crate::store::Losses`]), the process's RSS
//!   and CPU (procfs) and the log lines dropped ([`crate::logging`]).
//!
//! Everything goes through the `metrics` facade to one process-wide
//! `metrics-exporter-prometheus` recorder, installed on first use; the names
//! below are the whole list (docs/operations.md describes each). Runs on the
//! tokio runtime; nothing here blocks.

use std::{sync::OnceLock, time::Duration};

use axum::{Extension, Router, extract::State, http::header, response::IntoResponse, routing::get};
use metrics::{Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use super::{TelemetryHub, WatchtowerApi, error::ApiError, transport::ConnectionInfo};
use crate::pb;

/// Ticks the engine has completed.
pub const TICKS: &str = "watchtower_ticks_total";
/// Wall time of one tick, from each snapshot the hub sees.
pub const TICK_DURATION: &str = "watchtower_tick_duration_seconds";
/// Ticks per second the engine measured over its recent ticks.
pub const MEASURED_TPS: &str = "watchtower_measured_ticks_per_second";
/// Ticks per second the engine is paced to (0: as fast as it can).
pub const TARGET_TPS: &str = "watchtower_target_ticks_per_second";
/// Commands waiting for the next Phase 0.
pub const QUEUE_DEPTH: &str = "watchtower_command_queue_depth";
/// The command queue's bound.
pub const QUEUE_CAPACITY: &str = "watchtower_command_queue_capacity";
/// Commands by `outcome`: `applied`, `rejected` (by the engine), `refused`
/// (never queued).
pub const COMMANDS: &str = "watchtower_commands_total";
/// Time from a command's acceptance to its answer: queue wait, Phase 0
/// and the audit log's sync.
pub const COMMAND_DURATION: &str = "watchtower_command_duration_seconds";
/// Commands not applied, by `reason` (the `ErrorInfo.reason` clients see).
pub const COMMAND_FAILURES: &str = "watchtower_command_failures_total";
/// Telemetry streams open now, by `transport` (`grpc` includes gRPC-Web).
pub const OPEN_STREAMS: &str = "watchtower_open_streams";
/// Time from the engine capturing a snapshot to a live stream handing it
/// to its transport, by `transport`.
pub const SEND_LAG: &str = "watchtower_telemetry_send_lag_seconds";
/// Snapshots encoded by the hub (once each, however many subscribers).
pub const SNAPSHOTS_ENCODED: &str = "watchtower_snapshots_encoded_total";
/// Snapshot frames handed to gRPC telemetry streams.
pub const SNAPSHOTS_DELIVERED: &str = "watchtower_snapshots_delivered_total";
/// WebSocket sessions opened since start (both WebSocket paths).
pub const WEBSOCKET_CONNECTIONS: &str = "watchtower_websocket_connections_total";
/// Snapshots the engine node handed to the broker.
pub const BROKER_PUBLISHED: &str = "watchtower_broker_snapshots_published_total";
/// Snapshots the engine node dropped because the broker was down or slow
/// (latest wins: the next one replaces them).
pub const BROKER_DROPPED: &str = "watchtower_broker_snapshots_dropped_total";
/// Commands a relay forwarded, by `outcome`: `answered` (the engine node's
/// verdict, whatever it was) or `unreachable`.
pub const BROKER_FORWARDED: &str = "watchtower_broker_commands_forwarded_total";
/// Resident memory of the process.
pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
/// User and system CPU time the process has used, in whole seconds.
pub const CPU: &str = "process_cpu_seconds_total";
/// Threads in the process.
pub const THREADS: &str = "process_threads";
/// Open file descriptors (sockets included).
pub const OPEN_FDS: &str = "process_open_fds";
/// Log lines dropped because stdout took them too slowly (the log's queue
/// was full; docs/operations.md, "Logs").
pub const LOG_LINES_DROPPED: &str = "watchtower_log_lines_dropped_total";
/// 1 while the audit log can be written, 0 while it has failed or is stuck
/// (commands are refused); absent without a data directory.
pub const AUDIT_LOG_WRITABLE: &str = "watchtower_audit_log_writable";
/// Records the store dropped because its thread fell behind (a slow or
/// stuck disk), by `record`: `digest` or `telemetry_row`.
pub const STORE_DROPPED: &str = "watchtower_store_records_dropped_total";
/// Checkpoints skipped because the previous one was not on disk yet.
pub const CHECKPOINTS_SKIPPED: &str = "watchtower_checkpoints_skipped_total";
/// Tasks alive on the network runtimes (both lanes): one per connection,
/// stream reply and listener, so a leak shows here (the soak checks it).
pub const RUNTIME_TASKS: &str = "watchtower_runtime_alive_tasks";

/// Upper bounds of the tick-duration buckets: 50 µs to 1 s.
pub const TICK_DURATION_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];
/// Upper bounds of the send-lag buckets: 1 ms to 10 s.
pub const SEND_LAG_BUCKETS: [f64; 13] = [
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the command-duration buckets: 250 µs to 30 s.
pub const COMMAND_DURATION_BUCKETS: [f64; 16] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];
/// How often the follower folds recorded histogram samples into buckets, so
/// memory stays bounded when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// The Prometheus text exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process-wide recorder's handle; `None` if another recorder was
/// installed first (an embedding program's), in which case `/metrics` is empty.
fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(TICK_DURATION.into()), &TICK_DURATION_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(SEND_LAG.into()), &SEND_LAG_BUCKETS))
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(COMMAND_DURATION.into()),
                        &COMMAND_DURATION_BUCKETS,
                    )
                })
                .expect("the bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "another metrics recorder is installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(TICKS, "Ticks the engine has completed.");
    describe_counter!(BROKER_PUBLISHED, "Snapshots handed to the broker.");
    describe_counter!(
        BROKER_DROPPED,
        "Snapshots not published because the broker was down or slow (latest wins)."
    );
    describe_counter!(
        BROKER_FORWARDED,
        "Commands a relay forwarded to the engine node, by outcome."
    );
    describe_histogram!(
        TICK_DURATION,
        Unit::Seconds,
        "Wall time of one tick, from each snapshot the server saw."
    );
    describe_gauge!(
        MEASURED_TPS,
        "Ticks per second the engine measured over its recent ticks."
    );
    describe_gauge!(
        TARGET_TPS,
        "Ticks per second the engine is paced to; 0 runs as fast as it can."
    );
    describe_gauge!(QUEUE_DEPTH, "Commands waiting for the next tick's Phase 0.");
    describe_gauge!(QUEUE_CAPACITY, "Bound of the command queue.");
    describe_counter!(
        COMMANDS,
        "Commands by outcome: applied, rejected by the engine, refused before queueing."
    );
    describe_histogram!(
        COMMAND_DURATION,
        Unit::Seconds,
        "Commands the engine answered, from acceptance to answer: queue wait, Phase 0 and the audit sync."
    );
    describe_counter!(
        COMMAND_FAILURES,
        "Commands not applied, by reason (the ErrorInfo reason clients see)."
    );
    describe_gauge!(
        OPEN_STREAMS,
        "Telemetry streams open now, by transport (grpc includes gRPC-Web)."
    );
    describe_counter!(
        SNAPSHOTS_ENCODED,
        "Snapshots encoded by the server, once each."
    );
    describe_counter!(
        SNAPSHOTS_DELIVERED,
        "Snapshot frames handed to gRPC telemetry streams."
    );
    describe_counter!(
        WEBSOCKET_CONNECTIONS,
        "WebSocket sessions opened since start."
    );
    describe_gauge!(
        RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory of the process."
    );
    describe_counter!(
        CPU,
        Unit::Seconds,
        "User and system CPU time of the process."
    );
    describe_gauge!(THREADS, "Threads in the process.");
    describe_counter!(
        LOG_LINES_DROPPED,
        "Log lines dropped because stdout took them too slowly."
    );
    describe_gauge!(OPEN_FDS, "Open file descriptors of the process.");
    describe_gauge!(
        AUDIT_LOG_WRITABLE,
        "1 while the audit log can be written, 0 while it has failed or is stuck."
    );
    describe_counter!(
        STORE_DROPPED,
        "Records the store dropped because its thread fell behind the engine."
    );
    describe_counter!(
        CHECKPOINTS_SKIPPED,
        "Checkpoints skipped because the previous one was not on disk yet."
    );
    describe_gauge!(
        RUNTIME_TASKS,
        "Tasks alive on the network's runtimes (both lanes)."
    );
}

/// `GET /metrics`.
pub fn routes(api: WatchtowerApi) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(api)
}

async fn scrape(
    State(api): State<WatchtowerApi>,
    connection: Option<Extension<ConnectionInfo>>,
) -> impl IntoResponse {
    let body = recorder().map_or_else(String::new, |handle| {
        record_live_state(&api);
        let tasks = connection.map_or_else(
            || {
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks()
            },
            |Extension(c)| c.lanes().alive_tasks(),
        );
        gauge!(RUNTIME_TASKS).set(tasks as f64);
        record_process();
        handle.render()
    });
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

/// Follows the hub until shutdown: each new snapshot adds its tick duration
/// to the histogram and moves the tick counter. Snapshots the hub skipped
/// (only at very high tick rates) are not in the histogram.
pub async fn follow_snapshots(hub: TelemetryHub, shutdown: CancellationToken) {
    if recorder().is_none() {
        return;
    }
    let mut frames = hub.follow();
    let mut upkeep = tokio::time::interval(UPKEEP_INTERVAL);
    let mut last_tick = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = upkeep.tick() => {
                if let Some(handle) = recorder() {
                    handle.run_upkeep();
                }
            }
            changed = frames.changed() => {
                if changed.is_err() {
                    return;
                }
                let frame = frames.borrow_and_update().clone();
                if let Some(frame) = frame.filter(|f| last_tick.is_none_or(|t| f.tick() > t)) {
                    last_tick = Some(frame.tick());
                    record_snapshot(&frame.snapshot);
                }
            }
        }
    }
}

fn record_snapshot(snapshot: &pb::WatchtowerSnapshot) {
    counter!(TICKS).absolute(snapshot.tick);
    if let Some(engine) = &snapshot.engine {
        histogram!(TICK_DURATION).record(engine.last_tick_duration_us / 1e6);
    }
}

/// Gauges and counters read from the server's state at scrape time.
fn record_live_state(api: &WatchtowerApi) {
    let stats = api.stats();
    let (depth, capacity) = api.queue_depth();
    gauge!(QUEUE_DEPTH).set(depth as f64);
    gauge!(QUEUE_CAPACITY).set(capacity as f64);
    gauge!(OPEN_STREAMS, "transport" => "grpc").set(stats.active_subscribers as f64);
    gauge!(OPEN_STREAMS, "transport" => "websocket").set(stats.websocket_connections as f64);
    counter!(SNAPSHOTS_ENCODED).absolute(stats.snapshots_encoded);
    counter!(SNAPSHOTS_DELIVERED, "transport" => "grpc").absolute(stats.snapshots_delivered);
    if let Some(frame) = api.hub().latest() {
        counter!(TICKS).absolute(frame.tick());
        if let Some(engine) = &frame.snapshot.engine {
            gauge!(MEASURED_TPS).set(engine.measured_tps);
            gauge!(TARGET_TPS).set(engine.target_tps);
        }
    }
    record_store(api);
}

/// The audit log's state and what the store dropped, with a data directory.
fn record_store(api: &WatchtowerApi) {
    let Some((writable, losses)) = api.store_state() else {
        return;
    };
    gauge!(AUDIT_LOG_WRITABLE).set(if writable { 1.0 } else { 0.0 });
    counter!(STORE_DROPPED, "record" => "digest").absolute(losses.digests_dropped());
    counter!(STORE_DROPPED, "record" => "telemetry_row").absolute(losses.telemetry_rows_dropped());
    counter!(CHECKPOINTS_SKIPPED).absolute(losses.checkpoints_skipped());
}

/// The log's dropped lines, and RSS, CPU time, threads and open files from
/// `/proc/self` (left out where procfs is not available).
fn record_process() {
    counter!(LOG_LINES_DROPPED).absolute(crate::logging::dropped_lines());
    let Ok(process) = procfs::process::Process::myself() else {
        return;
    };
    if let Ok(stat) = process.stat() {
        let page_size = procfs::page_size();
        gauge!(RESIDENT_MEMORY).set((stat.rss * page_size) as f64);
        let ticks = procfs::ticks_per_second() as f64;
        // `metrics` counters are integers: whole seconds, rounded down, so
        // the counter still only rises.
        counter!(CPU).absolute(((stat.utime + stat.stime) as f64 / ticks) as u64);
        gauge!(THREADS).set(stat.num_threads as f64);
    }
    if let Ok(count) = process.fd_count() {
        gauge!(OPEN_FDS).set(count as f64);
    }
}

/// Counts a command the engine answered: applied, or rejected with its
/// reason; `took` is the time since the server accepted it.
pub fn command_answered(response: &pb::GodResponse, took: Duration) {
    command_duration().record(took.as_secs_f64());
    if response.success {
        counter!(COMMANDS, "outcome" => "applied").increment(1);
    } else {
        let reason = response
            .rejection()
            .as_str_name()
            .trim_start_matches("REJECTION_REASON_");
        counter!(COMMANDS, "outcome" => "rejected").increment(1);
        counter!(COMMAND_FAILURES, "reason" => reason).increment(1);
    }
}

/// The command-duration histogram, looked up once (as [`send_lag`]).
fn command_duration() -> &'static Histogram {
    static DURATION: OnceLock<Histogram> = OnceLock::new();
    DURATION.get_or_init(|| {
        recorder();
        histogram!(COMMAND_DURATION)
    })
}

/// Counts a command refused before it was queued, by why.
pub fn command_refused(err: &ApiError) {
    counter!(COMMANDS, "outcome" => "refused").increment(1);
    counter!(COMMAND_FAILURES, "reason" => err.reason()).increment(1);
}

/// Records `lag` ([`Frame::lag_at`](super::hub::Frame::lag_at)): how long
/// after the engine captured it a live frame was handed to a `transport`
/// (`grpc` or `websocket`) stream. Past frames sent for `history` are not
/// live and are not recorded.
pub fn frame_sent(transport: &'static str, lag: Duration) {
    send_lag(transport).record(lag.as_secs_f64());
}

/// The send-lag histogram of `transport`, looked up once: this is called
/// per delivery, and a lookup by name and label cost about 1% of the
/// fan-out's CPU (docs/benchmarks.md).
fn send_lag(transport: &'static str) -> &'static Histogram {
    static GRPC: OnceLock<Histogram> = OnceLock::new();
    static WEBSOCKET: OnceLock<Histogram> = OnceLock::new();
    debug_assert!(matches!(transport, "grpc" | "websocket"), "{transport}");
    let slot = if transport == "grpc" {
        &GRPC
    } else {
        &WEBSOCKET
    };
    slot.get_or_init(|| {
        // The recorder first, or the handle would be a no-op for good.
        recorder();
        histogram!(SEND_LAG, "transport" => transport)
    })
}

/// Counts a snapshot handed to the broker (`published`) or dropped.
pub fn broker_snapshot(published: bool) {
    counter!(if published {
        BROKER_PUBLISHED
    } else {
        BROKER_DROPPED
    })
    .increment(1);
}

/// Counts a command a relay forwarded: answered by the engine node or not.
pub fn broker_forwarded(answered: bool) {
    let outcome = if answered { "answered" } else { "unreachable" };
    counter!(BROKER_FORWARDED, "outcome" => outcome).increment(1);
}

/// Counts a WebSocket session as it opens.
pub fn websocket_opened() {
    counter!(WEBSOCKET_CONNECTIONS).increment(1);
}
