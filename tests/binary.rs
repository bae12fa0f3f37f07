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
    assert!(line.contains("principal=anonymous"), "{line}");

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

#[test]
fn a_non_loopback_address_needs_an_operator_token_to_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["--listen", "0.0.0.0:0", "--legacy-ws-listen", "off"])
        .env_remove("WATCHTOWER_OPERATOR_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success(), "started without a token");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--operator-token"),
        "names the flag: {stderr}"
    );
    assert!(stderr.contains("0.0.0.0"), "names the address: {stderr}");

    let base = ["--listen", "0.0.0.0:0", "--legacy-ws-listen", "off"];
    let mut with_token =
        Running::launch(&base, &[("WATCHTOWER_OPERATOR_TOKEN", "t0ken-for-start")]);
    with_token.addr();
    let mut anonymous =
        Running::launch(&[&base[..], &["--allow-anonymous-operators"]].concat(), &[]);
    anonymous.addr();
}

/// Calls with the right, the wrong and an observer's token on every
/// transport, then reads every line the server logged at debug level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_appears_in_the_log() {
    use futures_util::SinkExt;
    const OPERATOR: &str = "op-token-5d1e0c";
    const OBSERVER: &str = "obs-token-77ab2f";
    const WRONG: &str = "wrong-token-c0ffee";
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--legacy-ws-listen",
        "off",
        "--tps",
        "50",
    ];
    let mut app = Running::launch(
        &base,
        &[
            ("RUST_LOG", "debug"),
            ("WATCHTOWER_OPERATOR_TOKEN", OPERATOR),
            ("WATCHTOWER_OBSERVER_TOKEN", OBSERVER),
        ],
    );
    let addr = app.addr();
    let mut client = connect(addr).await;
    for token in [OPERATOR, OBSERVER, WRONG] {
        let mut request = tonic::Request::new(command("", "fiscal.vat_rate", number(0.12)));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let _ = client.apply_command(request).await;
    }
    for token in [OPERATOR, WRONG] {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        let auth = format!(r#"{{"auth":{{"token":"{token}"}}}}"#);
        ws.send(tokio_tungstenite::tungstenite::Message::text(auth))
            .await
            .unwrap();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            futures_util::StreamExt::next(&mut ws),
        )
        .await;
    }
    app.terminate();
    tokio::task::block_in_place(|| app.wait_exit(Duration::from_secs(5)));
    let lines = app.all_lines();
    assert!(
        lines.iter().any(|l| l.contains("Registry updated")),
        "the run logged"
    );
    for token in [OPERATOR, OBSERVER, WRONG] {
        let leaked: Vec<_> = lines.iter().filter(|l| l.contains(token)).collect();
        assert!(leaked.is_empty(), "{token} logged: {leaked:#?}");
    }
}
