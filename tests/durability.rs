//! Durability through the real binary and real files: every acknowledged
//! outcome is on disk, ids are idempotent across restarts, `kill -9` and
//! `--resume` lose nothing, `replay --verify` proves a run bit for bit, and
//! a disk that refuses writes stops commands but not telemetry.

mod common;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::{
    Client, PATIENCE, TestApp,
    binary::Binary,
    command, connect, next_snapshot, number,
    scrape::{sample, scrape_metrics},
    spawn_stepped_app, subscribe, test_config,
};
use tokio::task::JoinHandle;
use tonic::{Code, Response, Status};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
    health_client::HealthClient,
};
use watchtower::{
    Config, pb,
    store::{
        FaultSwitch,
        handover::HANDOVER_TICKS,
        recorder::{QUEUE_SNAPSHOTS, ROWS_PER_CHUNK},
    },
};

/// A small economy, so the debug binary ticks fast.
const SMALL: &str = "agents.households: 1000\nagents.firms: 20\n";
const KEY: &str = "fiscal.vat_rate";

/// A temporary data directory and a params file for a small economy.
struct Data {
    dir: tempfile::TempDir,
}

impl Data {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("small.yaml"), SMALL).unwrap();
        Self { dir }
    }

    fn root(&self) -> String {
        self.dir.path().join("runs").display().to_string()
    }

    fn params(&self) -> String {
        self.dir.path().join("small.yaml").display().to_string()
    }

    /// The in-process app's configuration, recording into this directory.
    fn app_config(&self) -> Config {
        Config {
            data_dir: Some(self.root().into()),
            params: Some(self.params().into()),
            ..test_config()
        }
    }

    /// Starts the binary recording into this directory.
    fn start(&self, extra: &[&str]) -> Binary {
        let (root, params) = (self.root(), self.params());
        let mut args = vec!["--data-dir", &root, "--params", &params];
        args.extend_from_slice(extra);
        Binary::start(&args)
    }

    /// The one run directory.
    fn run_dir(&self) -> PathBuf {
        let mut runs: Vec<_> = std::fs::read_dir(self.root())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "one run: {runs:?}");
        runs.pop().unwrap()
    }

    fn checkpoints(&self) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(self.run_dir().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
            .collect();
        files.sort();
        files
    }
}

fn replay(run_dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .arg("replay")
        .arg(run_dir)
        .args(extra)
        .output()
        .expect("run watchtower replay")
}

/// The command ids in the audit log, in log order.
async fn audit_ids(client: &mut Client) -> Vec<String> {
    let entries = all_entries(client).await;
    entries.into_iter().map(|e| e.command_id).collect()
}

/// Every entry of the audit log, paged through seven at a time.
async fn all_entries(client: &mut Client) -> Vec<pb::GodResponse> {
    let mut entries = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_audit_entries(pb::ListAuditEntriesRequest {
                page_size: 7,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("ListAuditEntries")
            .into_inner();
        assert!(page.entries.len() <= 7);
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        token = page.next_page_token;
    }
}

/// The outcome of a command, rejected or applied, as the caller saw it.
async fn apply(
    client: &mut Client,
    id: &str,
    value: f64,
) -> Result<pb::GodResponse, tonic::Status> {
    client
        .apply_command(command(id, KEY, number(value)))
        .await
        .map(|r| r.into_inner().response.expect("a response"))
}

/// SIGTERM once the server answers,
/// then a clean exit.
async fn stop(mut app: Binary) {
    let mut client = connect(app.addr()).await;
    client
        .get_server_stats(pb::GetServerStatsRequest {})
        .await
        .expect("the server answers");
    app.terminate();
    app.wait_for(&["watchtower stopped"]);
    assert_eq!(app.wait_exit(PATIENCE).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_resume_loses_no_answered_command_and_replays_bit_identically() {
    let data = Data::new();
    let mut app = data.start(&["--tps", "100", "--checkpoint-every", "20"]);
    let addr = app.addr();
    // Three clients send a stream of commands; the process is killed while
    // they are still sending.
    let mut clients = Vec::new();
    for c in 0..3 {
        let mut client = connect(addr).await;
        clients.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for i in 0..200 {
                let id = format!("c{c}-{i}");
                // Every fifth value is out of range: rejected, but audited.
                let value = if i % 5 == 4 {
                    0.9
                } else {
                    0.01 * f64::from(i % 40)
                };
                match apply(&mut client, &id, value).await {
                    Ok(response) => answered.push((id, response.applied_tick)),
                    Err(status) if status.code() == Code::InvalidArgument => {
                        answered.push((id, 0));
                    }
                    Err(_) => break,
                }
            }
            answered
        }));
    }
    let mut watch = connect(addr).await;
    let mut stream = subscribe(&mut watch, 10).await;
    while next_snapshot(&mut stream).await.tick < 70 {}
    app.child.kill().expect("kill -9");
    app.child.wait().unwrap();
    let mut answered = Vec::new();
    for client in clients {
        answered.extend(client.await.unwrap());
    }
    assert!(
        answered.len() > 10,
        "commands were answered before the kill"
    );
    let newest = data
        .checkpoints()
        .pop()
        .expect("a checkpoint before the kill");

    let mut app = data.start(&[
        "--tps",
        "100",
        "--checkpoint-every",
        "20",
        "--resume",
        "latest",
    ]);
    let line = app.wait_for(&["resuming run", "checkpoint_tick="]);
    let checkpoint_tick: u64 = line
        .split("checkpoint_tick=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        newest.ends_with(format!("tick-{checkpoint_tick:012}.ckpt")),
        "{line}"
    );
    let mut client = connect(app.addr()).await;
    let mut stream = subscribe(&mut client, 10).await;
    let first = next_snapshot(&mut stream).await;
    assert!(
        first.tick >= checkpoint_tick,
        "the tick goes on from the checkpoint"
    );
    let indicators = first.r#macro.expect("macro indicators");
    assert!(
        indicators.price_level > 0.0,
        "restored indicators: {indicators:?}"
    );
    assert_eq!(
        first.run_id,
        data.run_dir().file_name().unwrap().to_str().unwrap()
    );

    let entries = all_entries(&mut client).await;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for entry in &entries {
        *seen.entry(&entry.command_id).or_default() += 1;
    }
    for (id, tick) in &answered {
        assert_eq!(
            seen.get(id.as_str()),
            Some(&1),
            "{id} is in the log exactly once"
        );
        if *tick > 0 {
            let entry = entries.iter().find(|e| &e.command_id == id).unwrap();
            assert_eq!(entry.applied_tick, *tick);
        }
    }
    assert!(seen.values().all(|&n| n == 1), "no id is recorded twice");
    while next_snapshot(&mut stream).await.tick < checkpoint_tick + 30 {}
    stop(app).await;

    // An uninterrupted run with the same commands at the same ticks has the
    // same digest at every tick.
    let output = replay(&data.run_dir(), &["--verify"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("every digest matches"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_a_recorded_id_returns_the_recorded_outcome_before_and_after_a_restart() {
    let data = Data::new();
    let mut app = data.start(&["--tps", "50"]);
    let mut client = connect(app.addr()).await;
    let first = apply(&mut client, "once", 0.15).await.unwrap();
    let again = apply(&mut client, "once", 0.3).await.unwrap();
    assert_eq!(again, first, "the recorded outcome, not a new one");
    let mut stream = subscribe(&mut client, 10).await;
    let snapshot = next_snapshot(&mut stream).await;
    assert_eq!(
        snapshot.parameters[KEY],
        number(0.15).unwrap(),
        "the retry changed nothing"
    );
    assert_eq!(all_entries(&mut client).await.len(), 1);
    stop(app).await;

    let mut app = data.start(&["--tps", "50", "--resume", "latest"]);
    let mut client = connect(app.addr()).await;
    let after = apply(&mut client, "once", 0.4).await.unwrap();
    assert_eq!(after, first, "still the recorded outcome after a restart");
    let entries = all_entries(&mut client).await;
    assert_eq!(entries, vec![first]);
    let mut stream = subscribe(&mut client, 10).await;
    assert_eq!(
        next_snapshot(&mut stream).await.parameters[KEY],
        number(0.15).unwrap()
    );
    stop(app).await;
}

/// The idempotency index is bounded: with `--idempotency-window 2`, a retry
/// of one of the last two ids is answered from the record, and a retry of an
/// older one is a new command; a restart keeps the same window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_window_of_command_ids_is_remembered_across_a_restart() {
    let data = Data::new();
    let flags = ["--tps", "50", "--idempotency-window", "2"];
    let mut app = data.start(&flags);
    let mut client = connect(app.addr()).await;
    let oldest = apply(&mut client, "w-1", 0.11).await.unwrap();
    apply(&mut client, "w-2", 0.12).await.unwrap();
    let newest = apply(&mut client, "w-3", 0.13).await.unwrap();
    assert_eq!(apply(&mut client, "w-3", 0.2).await.unwrap(), newest);
    stop(app).await;

    let mut app = data.start(&[&flags[..], &["--resume", "latest"]].concat());
    let mut client = connect(app.addr()).await;
    assert_eq!(
        apply(&mut client, "w-3", 0.2).await.unwrap(),
        newest,
        "still in the window after a restart"
    );
    let again = apply(&mut client, "w-1", 0.14).await.unwrap();
    assert_ne!(again, oldest, "beyond the window: applied as a new command");
    assert_eq!(again.new_value, number(0.14));
    let entries = all_entries(&mut client).await;
    assert_eq!(entries.iter().filter(|e| e.command_id == "w-1").count(), 2);
    stop(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_verify_passes_and_names_the_tick_after_one_audit_line_is_edited() {
    let data = Data::new();
    let mut app = data.start(&["--tps", "100"]);
    let mut client = connect(app.addr()).await;
    let mut applied = Vec::new();
    for (i, value) in [0.12, 0.9, 0.18, 0.05].into_iter().enumerate() {
        if let Ok(response) = apply(&mut client, &format!("edit-{i}"), value).await {
            applied.push(response);
        }
    }
    let mut stream = subscribe(&mut client, 10).await;
    let end = applied.last().unwrap().applied_tick + 20;
    while next_snapshot(&mut stream).await.tick < end {}
    stop(app).await;
    let run = data.run_dir();
    let output = replay(&run, &["--verify"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Change the value of the second applied command in the log.
    let target = &applied[1];
    let log = run.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            let mut json: serde_json::Value = serde_json::from_str(line).unwrap();
            if json["entry"]["commandId"] == target.command_id.as_str() {
                json["entry"]["newValue"]["number"] = serde_json::json!(0.2);
            }
            json.to_string()
        })
        .collect();
    assert_ne!(edited.join("\n") + "\n", text, "one line was edited");
    std::fs::write(&log, edited.join("\n") + "\n").unwrap();
    let output = replay(&run, &["--verify"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the edit is caught");
    assert!(
        stderr.contains(&format!("diverged at tick {}:", target.applied_tick)),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_newest_checkpoint_falls_back_and_a_version_mismatch_names_both_versions() {
    let data = Data::new();
    let mut app = data.start(&["--tps", "200", "--checkpoint-every", "10"]);
    app.wait_for(&["checkpoint written", "tick=30"]);
    stop(app).await;
    let checkpoints = data.checkpoints();
    let (previous, newest) = (
        &checkpoints[checkpoints.len() - 2],
        checkpoints.last().unwrap(),
    );
    let mut bytes = std::fs::read(newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(newest, &bytes).unwrap();

    let mut app = data.start(&[
        "--tps",
        "200",
        "--checkpoint-every",
        "10",
        "--resume",
        "latest",
    ]);
    app.wait_for(&["checkpoint unusable", "checksum mismatch"]);
    let name = previous.display().to_string();
    app.wait_for(&["loaded checkpoint", &name]);
    app.wait_for(&["engine started"]);
    stop(app).await;

    let newest = data.checkpoints().pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[8..12].copy_from_slice(&999u32.to_le_bytes());
    std::fs::write(&newest, &bytes).unwrap();
    let (root, params) = (data.root(), data.params());
    let output = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["--listen", "127.0.0.1:0", "--legacy-ws-listen", "off"])
        .args([
            "--data-dir",
            &root,
            "--params",
            &params,
            "--resume",
            "latest",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("checkpoint format 999"), "{stderr}");
    assert!(stderr.contains("reads checkpoint format 2"), "{stderr}");
}

/// The health of the command path (`WatchtowerService`) as it changes.
struct CommandHealth(tonic::Streaming<HealthCheckResponse>);

impl CommandHealth {
    async fn watch(addr: std::net::SocketAddr) -> Self {
        let mut health = HealthClient::new(common::channel(addr).await);
        let request = HealthCheckRequest {
            service: common::service_name().to_owned(),
        };
        Self(health.watch(request).await.unwrap().into_inner())
    }

    /// Waits until the status is `want`.
    async fn until(&mut self, want: ServingStatus) {
        let changed = async { while self.0.message().await.unwrap().unwrap().status() != want {} };
        tokio::time::timeout(common::PATIENCE, changed)
            .await
            .unwrap_or_else(|_| panic!("health never became {want:?}"));
    }
}

/// A stepped app recording into a temporary directory that lives as long as
/// the directory returned with it.
async fn recorded_app(config: Config) -> (tempfile::TempDir, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: Some(dir.path().to_owned()),
        ..config
    };
    (dir, spawn_stepped_app(config).await)
}

/// The disk is simulated by an injected write failure (tests run as root,
/// so a read-only directory would not stop them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_refuses_writes_makes_commands_unavailable_while_telemetry_goes_on() {
    let (_dir, app) = recorded_app(test_config()).await;
    let mut client = app.client.clone();
    let mut health = CommandHealth::watch(app.addr).await;
    let pending = app
        .apply_on_next_tick(&client, command("before", KEY, number(0.11)))
        .await;
    pending
        .await
        .unwrap()
        .expect("applied while the disk works");
    health.until(ServingStatus::Serving).await;

    let faults = app.server.store_faults().expect("a recorded run");
    faults.set(true);
    let pending = app
        .apply_on_next_tick(&client, command("during", KEY, number(0.13)))
        .await;
    let status = pending.await.unwrap().expect_err("not acknowledged");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("audit log"), "{status:?}");
    health.until(ServingStatus::NotServing).await;
    let refused = apply(&mut client, "refused", 0.14)
        .await
        .expect_err("refused at once");
    assert_eq!(refused.code(), Code::Unavailable);
    app.step(2);
    let snapshot = app.snapshot_at(4).await;
    assert_eq!(snapshot.tick, 4, "telemetry goes on");

    faults.set(false);
    health.until(ServingStatus::Serving).await;
    // The outcome decided while the disk was failing was kept and written;
    // its retry returns it.
    let pending = app
        .apply_on_next_tick(&client, command("during", KEY, number(0.2)))
        .await;
    let retried = pending
        .await
        .unwrap()
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    assert_eq!((retried.applied_tick, retried.new_value), (2, number(0.13)));
    assert_eq!(audit_ids(&mut client).await, ["before", "during"]);
}

/// After tick 1, hangs the disk with one command ("waiting", set at tick 2)
/// behind the hung sync, and waits for the log to be reported stuck; the
/// switch, and the waiting call.
async fn hang_with_a_command_waiting(
    app: &TestApp,
    health: &mut CommandHealth,
) -> (
    FaultSwitch,
    JoinHandle<Result<Response<pb::ApplyCommandResponse>, Status>>,
) {
    app.step(1);
    health.until(ServingStatus::Serving).await;
    let faults = app.server.store_faults().expect("a recorded run");
    faults.hang(true);
    let waiting = app
        .apply_on_next_tick(&app.client, command("waiting", KEY, number(0.13)))
        .await;
    health.until(ServingStatus::NotServing).await;
    (faults, waiting)
}

/// A sync that does not return (a hung device or mount), simulated by an
/// injected hang: the caller waits, the engine goes on without queueing
/// checkpoints, and after the stall limit new commands are refused and
/// health and metrics report it, until the sync returns and the waiting
/// caller gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_does_not_return_refuses_commands_until_it_does() {
    let (_dir, app) = recorded_app(Config {
        checkpoint_every: 1,
        ..test_config()
    })
    .await;
    let mut client = app.client.clone();
    let mut health = CommandHealth::watch(app.addr).await;
    let (faults, waiting) = hang_with_a_command_waiting(&app, &mut health).await;
    let refused = apply(&mut client, "refused", 0.14)
        .await
        .expect_err("refused while the sync hangs");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("a write or sync has not returned"),
        "{refused:?}"
    );
    assert!(!waiting.is_finished(), "answered before it was on disk");
    app.step(20);
    assert_eq!(app.snapshot_at(22).await.tick, 22, "the engine goes on");
    // A checkpoint every tick, ticks 2 to 22 while stuck: one of them waits
    // behind the stuck commit (or tick 1's, if the hang caught the checkpoint
    // writer with it), the rest are skipped.
    let metrics = scrape_metrics(app.addr).await;
    assert_eq!(sample(&metrics, "watchtower_audit_log_writable", &[]), 0.0);
    let skipped = sample(&metrics, "watchtower_checkpoints_skipped_total", &[]);
    assert!((20.0..=21.0).contains(&skipped), "{skipped}");

    faults.hang(false);
    let answered = waiting.await.unwrap().expect("answered once on disk");
    let response = answered.into_inner().response.unwrap();
    assert_eq!((response.applied_tick, response.success), (2, true));
    health.until(ServingStatus::Serving).await;
    let metrics = scrape_metrics(app.addr).await;
    assert_eq!(sample(&metrics, "watchtower_audit_log_writable", &[]), 1.0);
    let after = app
        .apply_on_next_tick(&client, command("after", KEY, number(0.15)))
        .await;
    after.await.unwrap().expect("accepted again");
    assert_eq!(audit_ids(&mut client).await, ["waiting", "after"]);
}

/// A stop (SIGTERM) while a sync does not return still ends the process's
/// run: once the log is reported stuck, the store's writers get the stall
/// limit more and are left behind. The caller whose command waits for that
/// sync is not told it was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_a_sync_does_not_return_still_ends() {
    let (_dir, app) = recorded_app(test_config()).await;
    let mut health = CommandHealth::watch(app.addr).await;
    let (faults, waiting) = hang_with_a_command_waiting(&app, &mut health).await;
    let stopped = tokio::time::timeout(PATIENCE, app.server.stop())
        .await
        .expect("stopped while the sync hangs");
    stopped.expect("the engine ended cleanly");
    // In the binary the process now exits and the connection closes; here
    // the connection's task outlives the stop, so the caller still waits.
    assert!(!waiting.is_finished(), "answered before it was on disk");
    waiting.abort();
    faults.hang(false);
}

/// A stop while the disk holds only the checkpoint writer and the telemetry
/// recorder (no command waits, so the log has nothing to sync and stays
/// healthy) still ends, once their writes have not returned for the stall
/// limit; the shutdown checkpoint is then not on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_disk_holds_the_shutdown_checkpoint_still_ends() {
    let data = Data::new();
    let app = spawn_stepped_app(data.app_config()).await;
    app.step(3);
    assert_eq!(app.snapshot_at(3).await.tick, 3);
    let before = data.checkpoints();

    let faults = app.server.store_faults().expect("a recorded run");
    faults.hang(true);
    let stopped = tokio::time::timeout(PATIENCE, app.server.stop())
        .await
        .expect("stopped while the disk hangs");
    stopped.expect("the engine ended cleanly");
    assert_eq!(data.checkpoints(), before, "no shutdown checkpoint");
    faults.hang(false);
}

/// A stuck disk holds the telemetry recorder too: rows beyond its queue are
/// dropped and counted, not kept in memory, and once the disk returns no
/// more are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_disk_costs_telemetry_rows_beyond_the_queue_not_memory() {
    let data = Data::new();
    let app = spawn_stepped_app(data.app_config()).await;
    let dropped = async || {
        let metrics = scrape_metrics(app.addr).await;
        let labels = [("record", "telemetry_row")];
        sample(&metrics, "watchtower_store_records_dropped_total", &labels)
    };
    let faults = app.server.store_faults().expect("a recorded run");
    faults.hang(true);
    // The recorder holds a chunk and a queue's worth more waits for it; the
    // engine may hold one batch not yet offered, and the queue's last batch
    // may not fit exactly.
    let ticks = 1600;
    app.step(ticks as u64);
    assert_eq!(app.snapshot_at(1600).await.tick, 1600, "the engine goes on");
    let while_stuck = dropped().await as usize;
    let beyond = ticks - ROWS_PER_CHUNK - QUEUE_SNAPSHOTS;
    let near = beyond - HANDOVER_TICKS..=beyond + HANDOVER_TICKS;
    assert!(near.contains(&while_stuck), "{while_stuck} not in {near:?}");

    faults.hang(false);
    // Once the recorder has written the rows it was sent in whole chunks
    // (at most a chunk and a batch still wait), there is room again.
    let sent = ticks - while_stuck - HANDOVER_TICKS;
    let telemetry = data.run_dir().join("telemetry");
    let chunks = || {
        std::fs::read_dir(&telemetry)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "parquet")
            })
            .count()
    };
    let written = || chunks() >= sent / ROWS_PER_CHUNK;
    common::eventually("the waiting rows on disk", written).await;
    app.step(400);
    assert_eq!(app.snapshot_at(2000).await.tick, 2000);
    assert_eq!(
        dropped().await as usize,
        while_stuck,
        "none dropped after the disk returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_audit_line_is_dropped_and_logged_on_resume() {
    let data = Data::new();
    let mut app = data.start(&["--tps", "50"]);
    let mut client = connect(app.addr()).await;
    let whole = apply(&mut client, "whole", 0.15).await.unwrap();
    stop(app).await;
    // A crash in the middle of an append leaves half a line.
    let log = data.run_dir().join("audit.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    let whole_len = text.len() as u64;
    text.push_str(r#"{"wall_unix_ms":1,"entry":{"commandId":"torn""#);
    std::fs::write(&log, &text).unwrap();

    let mut app = data.start(&["--tps", "50", "--resume", "latest"]);
    app.wait_for(&["torn line", "dropped_bytes="]);
    let mut client = connect(app.addr()).await;
    assert_eq!(all_entries(&mut client).await, vec![whole]);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), whole_len);
    stop(app).await;
}

#[tokio::test]
async fn list_audit_entries_filters_by_key_and_tick_pages_and_refuses_bad_requests() {
    let (_dir, app) = recorded_app(test_config()).await;
    let client = app.client.clone();
    let mut applied = Vec::new();
    for (i, key) in [KEY, "fiscal.income_tax_rate", KEY].into_iter().enumerate() {
        let pending = app
            .apply_on_next_tick(&client, command(&format!("l{i}"), key, number(0.15)))
            .await;
        applied.push(
            pending
                .await
                .unwrap()
                .unwrap()
                .into_inner()
                .response
                .unwrap(),
        );
    }
    let list = |request: pb::ListAuditEntriesRequest| {
        let mut client = client.clone();
        async move {
            client
                .list_audit_entries(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let by_key = list(pb::ListAuditEntriesRequest {
        key: KEY.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_key.entries, [applied[0].clone(), applied[2].clone()]);
    let ticks = list(pb::ListAuditEntriesRequest {
        from_tick: 2,
        to_tick: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ticks.entries, [applied[1].clone()]);
    let first = list(pb::ListAuditEntriesRequest {
        page_size: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(first.entries, applied[..2]);
    let rest = list(pb::ListAuditEntriesRequest {
        page_size: 2,
        page_token: first.next_page_token,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        (rest.entries, rest.next_page_token),
        (applied[2..].to_vec(), String::new())
    );
    assert_eq!(all_entries(&mut app.client.clone()).await, applied);

    for (request, field) in [
        (
            pb::ListAuditEntriesRequest {
                page_size: 1001,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListAuditEntriesRequest {
                page_token: "x".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListAuditEntriesRequest {
                from_tick: 3,
                to_tick: 2,
                ..Default::default()
            },
            "to_tick",
        ),
    ] {
        let status = list(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{status:?}");
    }

    let memory = spawn_stepped_app(test_config()).await;
    let status = memory
        .client
        .clone()
        .list_audit_entries(pb::ListAuditEntriesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_applied_while_paused_replay_bit_for_bit_and_a_paused_run_resumes_paused() {
    use pb::control_engine_request::Action;
    let data = Data::new();
    let mut app = data.start(&["--tps", "100"]);
    let mut client = connect(app.addr()).await;
    let control = |action| pb::ControlEngineRequest {
        action: Some(action),
    };
    let paused = client
        .control_engine(control(Action::Pause(pb::ControlPause {})))
        .await
        .expect("paused")
        .into_inner();
    let applied = apply(&mut client, "while-paused", 0.17)
        .await
        .expect("applied");
    assert_eq!(applied.applied_tick, paused.tick);
    assert!(applied.applied_while_paused);
    client
        .control_engine(control(Action::Step(pb::ControlStep { ticks: 10 })))
        .await
        .expect("stepped");
    stop(app).await;
    let output = replay(&data.run_dir(), &["--verify"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut app = data.start(&["--tps", "100", "--resume", "latest"]);
    let mut client = connect(app.addr()).await;
    let mut stream = subscribe(&mut client, 10).await;
    let snapshot = next_snapshot(&mut stream).await;
    assert_eq!(snapshot.tick, paused.tick + 10, "the resumed run holds");
    let engine = snapshot.engine.unwrap();
    assert_eq!(engine.run_state(), pb::RunState::Paused);
    assert_eq!(snapshot.parameters[KEY], number(0.17).unwrap());
    let audited = all_entries(&mut client).await;
    let keys: Vec<_> = audited.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["engine.pause", KEY, "engine.step"]);
    stop(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_command_survives_a_restart_from_its_checkpoint() {
    use pb::control_engine_request::Action;
    let data = Data::new();
    let mut app = data.start(&["--tps", "100", "--start-paused"]);
    let mut client = connect(app.addr()).await;
    let mut request = command("kept-for-later", KEY, number(0.16));
    request.command.as_mut().unwrap().apply_at_tick = 30;
    let waiting = {
        let mut client = client.clone();
        tokio::spawn(async move { client.apply_command(request).await })
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while client
        .list_scheduled_commands(pb::ListScheduledCommandsRequest {})
        .await
        .expect("listed")
        .into_inner()
        .commands
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "never scheduled");
    }
    stop(app).await;
    assert!(
        waiting.await.unwrap().is_err(),
        "its caller is gone with the server"
    );

    let mut app = data.start(&["--tps", "100", "--resume", "latest"]);
    let mut client = connect(app.addr()).await;
    let stepped = client
        .control_engine(pb::ControlEngineRequest {
            action: Some(Action::Step(pb::ControlStep { ticks: 30 })),
        })
        .await
        .expect("stepped")
        .into_inner();
    assert_eq!(stepped.tick, 30);
    let entries = all_entries(&mut client).await;
    let applied = entries
        .iter()
        .find(|e| e.command_id == "kept-for-later")
        .expect("applied after the restart");
    assert!(applied.success);
    assert_eq!(applied.applied_tick, 30);
    stop(app).await;
}
