//! The spec's recovery rule (§5), tested from outside: the real binary, built
//! with the `fault-injection` feature, makes its own server fail
//! (`WATCHTOWER_FAULTS`), and real clients watch the engine, health, their
//! commands and the log. Run with `cargo test --features fault-injection`.

mod common;

use std::time::Duration;

use common::{binary::Binary, *};
use tokio_tungstenite::connect_async;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use watchtower::pb::watchtower_service_client::WatchtowerServiceClient;

const KEY: &str = "fiscal.vat_rate";

fn launch(faults: &str, extra: &[&str]) -> Binary {
    let args = [&["--listen", "127.0.0.1:0", "--tps", "50"][..], extra].concat();
    Binary::launch(
        &args,
        &[("RUST_LOG", "info"), ("WATCHTOWER_FAULTS", faults)],
    )
}

async fn status(health: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("health answers on an open connection")
        .into_inner()
        .status()
}

/// Polls health over an open connection until it reports `wanted`.
async fn wait_status(health: &mut HealthClient<tonic::transport::Channel>, wanted: ServingStatus) {
    tokio::time::timeout(PATIENCE, async {
        while status(health).await != wanted {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("health never reported {wanted:?}"));
}

/// A new client, retried until the server accepts and serves it.
async fn reconnect(addr: std::net::SocketAddr) -> Client {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(1), async {
                let mut client = WatchtowerServiceClient::connect(format!("http://{addr}"))
                    .await
                    .ok()?;
                client
                    .get_server_stats(watchtower::pb::GetServerStatsRequest {})
                    .await
                    .ok()?;
                Some(client)
            });
            if let Ok(Some(client)) = attempt.await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a new client gets in once the server is back")
}

/// Every tick from `from` to `to` is in the run's telemetry table, which
/// records each tick the engine completed (the hub's history may skip ticks
/// on a starved machine; the table does not).
fn assert_every_tick_recorded(data_dir: &std::path::Path, from: u64, to: u64) {
    let run = the_run(data_dir);
    let csv = data_dir.join("ticks.csv");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["export", run.to_str().unwrap(), "--format", "csv"])
        .args([
            "--from-tick",
            &from.to_string(),
            "--to-tick",
            &to.to_string(),
        ])
        .args(["--out", csv.to_str().unwrap()])
        .output()
        .expect("run watchtower export");
    assert!(
        output.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&csv).expect("the exported table");
    let mut lines = text.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("tick,")),
        "a header"
    );
    let ticks: Vec<u64> = lines
        .map(|l| l.split(',').next().unwrap().parse().expect("a tick"))
        .collect();
    let expected: Vec<_> = (from..=to).collect();
    assert_eq!(ticks, expected, "the engine skipped or repeated a tick");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_accept_loop_is_restarted_with_backoff_while_the_engine_ticks_on() {
    // Accepts 3, 4 and 5 panic: one episode of three failures in a row.
    let data = tempfile::tempdir().expect("a data dir");
    let data_dir = data.path().to_str().unwrap();
    let mut app = launch(
        "accept-panic=3x3",
        &["--legacy-ws-listen", "off", "--data-dir", data_dir],
    );
    let addr = app.addr();
    let mut watcher = connect(addr).await; // accept 1
    let open = channel(addr).await; // accept 2
    let mut health = HealthClient::new(open.clone());
    let mut commands = WatchtowerServiceClient::new(open);
    wait_status(&mut health, ServingStatus::Serving).await;
    let before = next_snapshot(&mut subscribe(&mut watcher, 10).await)
        .await
        .tick;

    let newcomer = tokio::spawn(reconnect(addr));
    // While the listener is down, connections already open carry on: health
    // says so, and a command on them is applied once.
    wait_status(&mut health, ServingStatus::NotServing).await;
    let applied = commands
        .apply_command(command("during-outage", KEY, number(0.15)))
        .await
        .expect("a command on an open connection is served during the outage")
        .into_inner()
        .response
        .unwrap();
    assert!(applied.success);
    let mut newcomer = newcomer.await.unwrap();
    wait_status(&mut health, ServingStatus::Serving).await;
    let after = newcomer
        .apply_command(command("after-restart", KEY, number(0.16)))
        .await
        .expect("a client that connected after the restart carries on")
        .into_inner()
        .response
        .unwrap();
    assert!(after.success);
    let audited = newcomer
        .list_parameters(watchtower::pb::ListParametersRequest {})
        .await
        .unwrap();
    assert!(!audited.into_inner().parameters.is_empty());

    app.terminate();
    tokio::task::block_in_place(|| app.wait_exit(Duration::from_secs(5)));
    let lines = app.all_lines();
    let failed: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("server failed; restarting"))
        .collect();
    assert_eq!(failed.len(), 1, "one log line for the episode: {failed:#?}");
    assert!(
        failed[0].contains("panicked: injected fault"),
        "{}",
        failed[0]
    );
    let during = lines
        .iter()
        .filter(|l| l.contains("command_id=during-outage") && l.contains("Registry updated"))
        .count();
    assert_eq!(
        during, 1,
        "the command during the outage was applied exactly once"
    );
    assert_every_tick_recorded(data.path(), before, after.applied_tick);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_error_and_a_websocket_listener_error_are_each_recovered() {
    let mut app = launch(
        "accept-error=2,ws-accept-error=1",
        &["--legacy-ws-listen", "127.0.0.1:0"],
    );
    let addr = app.addr();
    let legacy = app.wait_for(&["legacy WebSocket listening"]);
    let legacy = legacy
        .split("addr=")
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .expect("the legacy address is logged")
        .to_owned();
    let _first = connect(addr).await; // accept 1
    // Accept 2 fails; a new client gets in after the restart.
    let mut client = reconnect(addr).await;
    client
        .apply_command(command("after-error", KEY, number(0.14)))
        .await
        .expect("served after the restart");
    // The legacy listener's first accept fails; its restart serves the next.
    let url = format!("ws://{legacy}/");
    let ws = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(Ok((ws, _))) =
                tokio::time::timeout(Duration::from_secs(1), connect_async(&url)).await
            {
                return ws;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the legacy WebSocket listener is back");
    drop(ws);
    app.terminate();
    tokio::task::block_in_place(|| app.wait_exit(Duration::from_secs(5)));
    let lines = app.all_lines();
    for (server, fault) in [
        ("gRPC", "accept-error"),
        ("legacy WebSocket", "ws-accept-error"),
    ] {
        assert!(
            lines.iter().any(|l| l.contains("server failed; restarting")
                && l.contains(server)
                && l.contains(fault)),
            "{server}: no restart logged with {fault}"
        );
    }
}

/// A SIGTERM while the disk does not return ends the real process, and
/// cleanly: the commands answered before the hang are in the log, the one
/// waiting for the hung sync is never told it was recorded (its connection
/// closes with the process), and the stop says it left the store's writers
/// behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_while_the_disk_hangs_ends_the_process_without_a_false_answer() {
    let data = tempfile::tempdir().expect("a data dir");
    let data_dir = data.path().to_str().unwrap();
    // The third commit of the audit log, the third command's, hangs.
    let mut app = launch(
        "disk-hang=3",
        &["--legacy-ws-listen", "off", "--data-dir", data_dir],
    );
    let addr = app.addr();
    let mut commands = connect(addr).await;
    for (id, vat) in [("first", 0.11), ("second", 0.12)] {
        commands
            .apply_command(command(id, KEY, number(vat)))
            .await
            .expect("answered before the disk hangs");
    }
    let mut client = commands.clone();
    let waiting = tokio::spawn(async move {
        client
            .apply_command(command("hung", KEY, number(0.13)))
            .await
    });
    let mut health = HealthClient::new(channel(addr).await);
    let request = HealthCheckRequest {
        service: service_name().to_owned(),
    };
    tokio::time::timeout(PATIENCE, async {
        while health
            .check(request.clone())
            .await
            .ok()
            .map(|r| r.into_inner().status())
            != Some(ServingStatus::NotServing)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("commands reported stuck once the sync has hung for the stall limit");

    app.terminate();
    let status = tokio::task::block_in_place(|| app.wait_exit(PATIENCE));
    assert!(status.success(), "{status:?}");
    let answer = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiting call ends with the process")
        .expect("the call's task");
    // The connection closed under it: tonic reports that as a transport
    // error; what matters is that it is never an answer.
    let error = answer.expect_err("never answered as recorded");
    assert!(error.message().contains("transport error"), "{error:?}");
    assert!(
        app.all_lines()
            .iter()
            .any(|l| l.contains("stopping without the store's writers")),
        "the stop says it left the writers"
    );
    let audit = audit_ids(data.path());
    assert_eq!(audit, ["first", "second"], "the answered commands, only");
}

/// The directory of the one run in `data_dir`.
fn the_run(data_dir: &std::path::Path) -> std::path::PathBuf {
    let mut runs: Vec<_> = std::fs::read_dir(data_dir)
        .expect("the data dir")
        .map(|e| e.expect("an entry").path())
        .collect();
    assert_eq!(runs.len(), 1, "one run: {runs:?}");
    runs.remove(0)
}

/// The command ids in the run's audit log, in order.
fn audit_ids(data_dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(the_run(data_dir).join("audit.jsonl"))
        .expect("the audit log")
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            json["entry"]["commandId"]
                .as_str()
                .expect("a command id")
                .to_owned()
        })
        .collect()
}
