//! The `watchtower` binary as a user runs it: logs, signals, exit codes.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{command, connect, number, process::Running};

/// The spec's integration check: an applied command logs `Registry updated`
/// with its key, old and new value, and tick; SIGTERM then stops the process
/// cleanly within 2 s, with exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_commands_are_logged_and_sigterm_exits_cleanly() {
    let mut app = Running::start(&["--tps", "20"]);
    let addr = app.addr();
    let mut client = connect(addr).await;
    let mut stream = client
        .subscribe_telemetry(watchtower::pb::SubscribeTelemetryRequest {
            interval_ms: 10,
            history: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let response = client
        .apply_command(command(
            "logged",
            "welfare.unemployment_benefit_ratio",
            number(0.7),
        ))
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    let line = app.wait_for(&["Registry updated", "key=welfare.unemployment_benefit_ratio"]);
    assert!(line.contains("old=0.5"), "{line}");
    assert!(line.contains("new=0.7"), "{line}");
    assert!(
        line.contains(&format!("tick={}", response.applied_tick)),
        "{line}"
    );

    let stop = Instant::now();
    app.terminate();
    let status = tokio::task::block_in_place(|| app.wait_exit(Duration::from_secs(5)));
    assert!(
        stop.elapsed() < Duration::from_secs(2),
        "took {:?}",
        stop.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    // The open telemetry stream was ended, not cut.
    loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(status) => panic!("stream cut instead of ended: {status:?}"),
        }
    }
    app.wait_for(&["engine stopped"]);
}

#[test]
fn a_bad_params_file_stops_start_up_naming_key_value_and_range() {
    let dir = std::env::temp_dir().join(format!("watchtower-params-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text, expected) in [
        (
            "range.yaml",
            "fiscal.vat_rate: 0.75\n",
            &["fiscal.vat_rate", "0.75", "[0, 0.5]"][..],
        ),
        (
            "unknown.yaml",
            "fiscal.vat: 0.1\n",
            &["fiscal.vat", "unknown parameter key"][..],
        ),
        (
            "type.yaml",
            "monetary.taylor_rule: 0.5\n",
            &["monetary.taylor_rule", "flag"][..],
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_watchtower"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--legacy-ws-listen",
                "off",
                "--data-dir",
                "off",
                "--params",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for part in expected {
            assert!(
                stderr.contains(part),
                "{name}: {part:?} missing from {stderr}"
            );
        }
    }
    // A good file is accepted and its values are in force.
    let path = dir.join("good.yaml");
    std::fs::write(&path, "fiscal.vat_rate: 0.2\nagents.households: 500\n").unwrap();
    let mut app = Running::start(&["--params", path.to_str().unwrap()]);
    app.addr();
    app.wait_for(&["engine started"]);
}

#[test]
fn a_legacy_port_in_use_stops_start_up_cleanly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["--listen", "127.0.0.1:0", "--legacy-ws-listen", &port])
        .args(["--data-dir", "off"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(stderr.contains(&port), "the address is named: {stderr}");
    // Nothing started: no engine ran a tick before the failure.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("engine started"), "{stdout}");
}
