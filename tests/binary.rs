//! The `watchtower` binary as a user runs it: logs (text and JSON, the access
//! log), signals, exit codes, the `healthcheck` subcommand and `/metrics`.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{
    PATIENCE,
    binary::{Binary, LOOPBACK_ARGS},
    command, connect, number,
    scrape::{http_get, sample, scrape_metrics},
    subscribe,
};

/// The spec's integration check: an applied command logs `Registry updated`
/// with its key, old and new value, and tick; SIGTERM then stops the process
/// cleanly within 2 s, with exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_commands_are_logged_and_sigterm_exits_cleanly() {
    let mut app = Binary::start(&["--tps", "20"]);
    let addr = app.addr();
    let mut client = connect(addr).await;
    let mut stream = subscribe(&mut client, 10).await;
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
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
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
    let mut app = Binary::start(&["--params", path.to_str().unwrap()]);
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
    let mut with_token = Binary::launch(&base, &[("WATCHTOWER_OPERATOR_TOKEN", "t0ken-for-start")]);
    with_token.addr();
    let mut anonymous =
        Binary::launch(&[&base[..], &["--allow-anonymous-operators"]].concat(), &[]);
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
    let mut app = Binary::launch(
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

/// Runs `watchtower healthcheck --addr ADDR` and returns its exit status and
/// what it printed.
fn healthcheck(addr: std::net::SocketAddr) -> (std::process::ExitStatus, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["healthcheck", "--addr", &addr.to_string()])
        .output()
        .expect("run watchtower healthcheck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, text)
}

/// With `--log-format json` every line is one JSON object; the `Registry
/// updated` line keeps key, old, new and tick as fields, and the access log
/// (at debug) has one line per call with method, path, status, duration and
/// peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_and_keep_the_registry_and_access_fields() {
    let mut app = Binary::start_logging(
        &["--tps", "20", "--log-format", "json"],
        "info,watchtower::access=debug",
    );
    let addr = app.addr();
    let mut client = connect(addr).await;
    let response = client
        .apply_command(command("json", "fiscal.vat_rate", number(0.15)))
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();

    let line = app.wait_for(&["Registry updated", "fiscal.vat_rate"]);
    let updated: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(updated["level"], "INFO", "{line}");
    assert_eq!(updated["key"], "fiscal.vat_rate", "{line}");
    assert_eq!(updated["old"], "0.1", "{line}");
    assert_eq!(updated["new"], "0.15", "{line}");
    assert_eq!(updated["tick"], response.applied_tick, "{line}");

    let call = app.wait_for(&["\"message\":\"response\"", "ApplyCommand"]);
    let call: serde_json::Value = serde_json::from_str(&call).expect("a JSON line");
    assert_eq!(call["target"], "watchtower::access", "{call}");
    assert_eq!(call["status"], 200, "{call}");
    assert!(
        call["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{call}"
    );
    let span = &call["span"];
    assert_eq!(span["method"], "POST", "{call}");
    assert_eq!(
        span["path"], "/watchtower.v1.WatchtowerService/ApplyCommand",
        "{call}"
    );
    let peer: std::net::SocketAddr = span["peer"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the peer is a socket address: {call}"));
    assert!(peer.ip().is_loopback(), "{call}");
    let end = app.wait_for(&["end of stream", "ApplyCommand"]);
    let end: serde_json::Value = serde_json::from_str(&end).expect("a JSON line");
    assert_eq!(end["grpc_status"], "0", "{end}");

    app.terminate();
    tokio::task::block_in_place(|| app.wait_exit(Duration::from_secs(5)));
    for line in app.log() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
    }
}

/// `watchtower healthcheck` exits 0 and says SERVING while the server ticks,
/// and fails once the server has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_passes_on_a_serving_server_and_fails_on_a_stopped_one() {
    let mut app = Binary::start(&["--tps", "20"]);
    let addr = app.addr();
    wait_until_serving(addr).await;
    let (status, text) = tokio::task::block_in_place(|| healthcheck(addr));
    assert!(status.success(), "{text}");
    assert_eq!(text.trim(), format!("{addr}: SERVING"));

    app.terminate();
    let stopped = tokio::task::block_in_place(|| app.wait_exit(Duration::from_secs(5)));
    assert_eq!(stopped.code(), Some(0));
    let (status, text) = tokio::task::block_in_place(|| healthcheck(addr));
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
}

/// The engine never waits for its log: with stdout a pipe nobody reads (a
/// stuck log shipper), commands, each of which logs a line, are still
/// applied and the engine keeps ticking; once the log's queue is full,
/// lines are dropped and counted; SIGTERM still stops the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_nobody_reads_does_not_stop_the_engine() {
    let mut app = Binary::start_with_stdout_stuck(&["--tps", "0"]);
    let addr = app.addr();
    // A pipe holds 64 KiB, about 300 `Registry updated` lines, and the
    // log's queue 16,384 lines: 20,000 commands overflow both.
    let client = connect(addr).await;
    let callers: Vec<_> = (0..16)
        .map(|caller| tokio::spawn(apply_many(client.clone(), caller, 1250)))
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let dropped = |scrape: &prometheus_parse::Scrape| {
        sample(scrape, "watchtower_log_lines_dropped_total", &[])
    };
    let first = scrape_metrics(addr).await;
    assert!(dropped(&first) > 0.0, "no line dropped");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = scrape_metrics(addr).await;
    let ticks = |scrape| sample(scrape, "watchtower_ticks_total", &[]);
    assert!(ticks(&second) > ticks(&first), "the engine stopped");

    app.terminate();
    let status = tokio::task::block_in_place(|| app.wait_exit(PATIENCE));
    assert_eq!(status.code(), Some(0));
}

/// Sends `n` commands one after another, and checks that each is answered
/// within the patience and applied.
async fn apply_many(mut client: common::Client, caller: usize, n: usize) {
    for i in 0..n {
        let value = if i % 2 == 0 { 0.1 } else { 0.11 };
        let id = format!("stuck-{caller}-{i}");
        let request = command(&id, "fiscal.vat_rate", number(value));
        let answer = tokio::time::timeout(PATIENCE, client.apply_command(request))
            .await
            .unwrap_or_else(|_| panic!("{id} not answered"))
            .unwrap()
            .into_inner()
            .response
            .unwrap();
        assert!(answer.success, "{answer:?}");
    }
}

/// Waits on `grpc.health.v1.Health/Watch` until the server reports SERVING.
async fn wait_until_serving(addr: std::net::SocketAddr) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut updates = HealthClient::new(channel)
        .watch(HealthCheckRequest::default())
        .await
        .expect("Health/Watch")
        .into_inner();
    tokio::time::timeout(PATIENCE, async {
        while let Some(update) = updates.message().await.expect("a health update") {
            if update.status() == ServingStatus::Serving {
                return;
            }
        }
        panic!("the health stream ended before SERVING");
    })
    .await
    .expect("SERVING within the patience");
}

/// The buckets of the histogram `metric` whose labels include `labels`,
/// checked to be cumulative.
fn histogram(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Vec<prometheus_parse::HistogramCount> {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {metric}{labels:?} in {:#?}", scrape.samples));
    let prometheus_parse::Value::Histogram(buckets) = &found.value else {
        panic!("{metric} is not a histogram: {found:?}");
    };
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "{buckets:?}"
    );
    buckets.clone()
}

/// A scrape of `/metrics` through a real HTTP client parses as Prometheus
/// text and counts what the test did: two applied commands (gRPC and
/// WebSocket) and one rejected, and how long each took; one open gRPC
/// stream and one WebSocket; ticks and their durations; the send lag of live
/// frames on both transports; the target TPS; and the process's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_parses_and_counts_commands_streams_and_ticks() {
    use futures_util::{SinkExt, StreamExt};
    use prometheus_parse::Scrape;
    use watchtower::server::metrics;

    let mut app = Binary::start(&["--tps", "20"]);
    let addr = app.addr();
    let mut client = connect(addr).await;
    let mut stream = subscribe(&mut client, 10).await;
    stream.message().await.unwrap().expect("a snapshot");
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("WebSocket upgrade");
    socket.next().await.expect("a frame").expect("a snapshot");
    let ws_command = r#"{"command":{"id":"w1","key":"fiscal.vat_rate","value":{"number":0.21}}}"#;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(ws_command))
        .await
        .expect("send a command");
    loop {
        let frame = socket.next().await.expect("a frame").expect("valid");
        if frame.to_text().is_ok_and(|t| t.contains(r#""w1""#)) {
            break;
        }
    }
    let applied = client
        .apply_command(command("m1", "fiscal.vat_rate", number(0.2)))
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    let rejected = client
        .apply_command(command("m2", "fiscal.vat_rate", number(0.9)))
        .await
        .unwrap_err();
    assert_eq!(rejected.code(), tonic::Code::InvalidArgument);

    let (content_type, text) = http_get(addr, "/metrics").await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");

    let commands = "watchtower_commands_total";
    assert_eq!(sample(&scrape, commands, &[("outcome", "applied")]), 2.0);
    assert_eq!(sample(&scrape, commands, &[("outcome", "rejected")]), 1.0);
    let failures = "watchtower_command_failures_total";
    assert_eq!(
        sample(&scrape, failures, &[("reason", "OUT_OF_RANGE")]),
        1.0
    );
    let streams = "watchtower_open_streams";
    assert_eq!(sample(&scrape, streams, &[("transport", "grpc")]), 1.0);
    assert_eq!(sample(&scrape, streams, &[("transport", "websocket")]), 1.0);
    assert_eq!(
        sample(&scrape, "watchtower_websocket_connections_total", &[]),
        1.0
    );
    let ticks = sample(&scrape, "watchtower_ticks_total", &[]);
    assert!(ticks >= applied.applied_tick as f64, "{ticks} ticks");
    assert!(sample(&scrape, "watchtower_snapshots_encoded_total", &[]) >= 1.0);
    assert!(sample(&scrape, "watchtower_snapshots_delivered_total", &[]) >= 1.0);
    assert_eq!(
        sample(&scrape, "watchtower_target_ticks_per_second", &[]),
        20.0
    );
    // The engine measures over a window, so early on it may still be 0.
    let measured = sample(&scrape, "watchtower_measured_ticks_per_second", &[]);
    assert!(measured.is_finite() && measured >= 0.0, "{measured}");
    assert_eq!(sample(&scrape, "watchtower_command_queue_depth", &[]), 0.0);
    assert_eq!(
        sample(&scrape, "watchtower_command_queue_capacity", &[]),
        100.0
    );
    assert!(sample(&scrape, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(sample(&scrape, "process_cpu_seconds_total", &[]) >= 0.0);
    assert!(sample(&scrape, "process_threads", &[]) >= 2.0);
    assert!(sample(&scrape, "process_open_fds", &[]) >= 3.0);

    let ticks_seen = histogram(&scrape, "watchtower_tick_duration_seconds", &[]);
    assert_eq!(ticks_seen.len(), metrics::TICK_DURATION_BUCKETS.len() + 1);
    let observed = ticks_seen.last().unwrap().count;
    assert!(
        observed >= 1.0 && observed <= ticks + 1.0,
        "{observed} of {ticks} ticks"
    );
    for transport in ["grpc", "websocket"] {
        let lag = histogram(
            &scrape,
            "watchtower_telemetry_send_lag_seconds",
            &[("transport", transport)],
        );
        assert_eq!(lag.len(), metrics::SEND_LAG_BUCKETS.len() + 1);
        assert!(lag.last().unwrap().count >= 1.0, "{transport}: {lag:?}");
    }
    let durations = histogram(&scrape, "watchtower_command_duration_seconds", &[]);
    assert_eq!(durations.len(), metrics::COMMAND_DURATION_BUCKETS.len() + 1);
    assert_eq!(durations.last().unwrap().count, 3.0, "{durations:?}");
    // All were answered within a few ticks, far below 10 s.
    let within_10s = durations.iter().find(|b| b.less_than == 10.0).unwrap();
    assert_eq!(within_10s.count, 3.0, "{durations:?}");
    for name in [
        "watchtower_tick_duration_seconds",
        "watchtower_command_duration_seconds",
        commands,
        streams,
    ] {
        assert!(scrape.docs.contains_key(name), "no # HELP for {name}");
    }
}

/// The engine comes first on the CPU: the command lane runs
/// `--command-nice` below it, every other thread (the network runtime's
/// workers, the store's writers, the log's) `--network-nice`, and the engine
/// keeps the priority the server started with.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_thread_but_the_engine_runs_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let mut app = Binary::start(&[
        "--tps",
        "20",
        "--network-nice",
        "7",
        "--command-nice",
        "4",
        "--data-dir",
        data_dir,
    ]);
    wait_until_serving(app.addr()).await;
    let pid = app.child.id();
    eventually(&format!("the niceness of {pid}'s threads"), || {
        wrong_niceness(pid)
    });
    app.terminate();
}

/// The threads of `pid` not at the niceness the test above gives them
/// (`--network-nice 7`, `--command-nice 4`), and any missing.
#[cfg(target_os = "linux")]
fn wrong_niceness(pid: u32) -> Vec<String> {
    let threads = thread_niceness(pid);
    let expected = [
        ("watchtower-engi", 0),
        // The command lane: below the engine, above telemetry.
        ("watchtower-cmd", 4),
        ("watchtower-audi", 7),
        ("watchtower-tele", 7),
        ("watchtower-chec", 7),
        ("watchtower-log", 7),
        ("tokio-rt-worker", 7),
    ];
    let mut wrong = Vec::new();
    for (name, nice) in expected {
        let of: Vec<i32> = threads
            .iter()
            .filter(|(comm, _)| comm.starts_with(name))
            .map(|(_, nice)| *nice)
            .collect();
        if of.is_empty() || of.iter().any(|&n| n != nice) {
            wrong.push(format!("{name}: {of:?}, expected {nice}"));
        }
    }
    wrong
}

/// Checks until `check` finds nothing wrong, failing with what it found
/// once the patience runs out: each thread lowers or places itself when it
/// first runs, and a thread just started may not have run yet.
#[cfg(target_os = "linux")]
fn eventually(what: &str, check: impl Fn() -> Vec<String>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let wrong = check();
        if wrong.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {wrong:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--engine-cpu N` pins the engine thread to CPU `N`; the store's writers,
/// which the engine wakes, keep off it, and the other threads may run
/// anywhere. A CPU the process may not use stops start-up, naming the ones
/// it may.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_thread_runs_only_on_the_cpu_it_is_given() {
    let ours = allowed_cpus("self");
    let cpu = *cpu_set(&ours).first().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut app = Binary::start(&[
        "--tps",
        "20",
        "--engine-cpu",
        &cpu.to_string(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    wait_until_serving(app.addr()).await;
    assert_placement(app.child.id(), Some(cpu));
    app.terminate();

    let output = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["--listen", "127.0.0.1:0", "--legacy-ws-listen", "off"])
        .args(["--data-dir", "off", "--engine-cpu", "100000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "--engine-cpu 100000: this process may run only on CPUs {ours}"
        )),
        "{stderr}"
    );
}

/// By default (`--engine-cpu auto`) the engine thread runs on one CPU of
/// the process's, the one that has served the fewest device interrupts (the
/// choice itself is unit-tested in `priority`), and the log says which;
/// `off` leaves it, like every other thread, on all of them.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_engine_runs_on_the_cpu_with_the_fewest_device_interrupts() {
    let ours = allowed_cpus("self");
    let before = device_interrupts_of(&ours);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("runs");
    let data_dir = data_dir.to_str().unwrap();
    // `launch`, not `start`: the harness's servers run unpinned.
    let args = [&LOOPBACK_ARGS[..], &["--tps", "20", "--data-dir", data_dir]].concat();
    let mut app = Binary::launch(&args, &[("RUST_LOG", "info")]);
    wait_until_serving(app.addr()).await;
    let line = app.wait_for(&["--engine-cpu auto"]);
    let after = device_interrupts_of(&ours);
    let distinct: std::collections::BTreeSet<_> = before.values().collect();
    if distinct.len() < 2 {
        // One CPU, or nothing to choose between: left where the kernel puts it.
        assert!(line.contains("engine thread not pinned"), "{line}");
        assert_placement(app.child.id(), None);
    } else {
        assert!(line.contains("engine thread pinned"), "{line}");
        let field = |name: &str| -> u64 {
            line.split(&format!("{name}="))
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line}"))
        };
        assert_placement(app.child.id(), Some(field("cpu") as usize));
        // Counts only grow: what it saw of its CPU is at most what any
        // other has served by now.
        let seen = field("device_interrupts");
        assert!(after.values().all(|&n| n >= seen), "{line}; now {after:?}");
    }
    app.terminate();

    let mut app = Binary::start(&["--tps", "20", "--engine-cpu", "off", "--data-dir", data_dir]);
    wait_until_serving(app.addr()).await;
    assert_placement(app.child.id(), None);
    assert!(
        !app.log_text().contains("--engine-cpu auto"),
        "{}",
        app.log_text()
    );
    app.terminate();
}

/// With the engine on `engine` (or unpinned): the engine thread there, the
/// store's writers and the log's on every CPU of ours but that one (when
/// there are others), every other thread on all of ours. The log's writer
/// places itself as it writes, and has written the address line the
/// callers waited for.
#[cfg(target_os = "linux")]
fn assert_placement(pid: u32, engine: Option<usize>) {
    eventually(&format!("with the engine on {engine:?}"), || {
        misplaced_threads(pid, engine)
    });
}

/// The threads of `pid` not where [`assert_placement`] expects them: name,
/// allowed CPUs, expected CPUs; a missing engine or writer too.
#[cfg(target_os = "linux")]
fn misplaced_threads(pid: u32, engine: Option<usize>) -> Vec<String> {
    let ours = cpu_set(&allowed_cpus("self"));
    let threads = threads(pid);
    let writers = [
        "watchtower-audi",
        "watchtower-tele",
        "watchtower-chec",
        "watchtower-log",
    ];
    let mut misplaced: Vec<String> = std::iter::once("watchtower-engi")
        .chain(writers)
        .filter(|name| !threads.iter().any(|(_, comm)| comm == name))
        .map(|name| format!("{name}: missing"))
        .collect();
    for (tid, comm) in &threads {
        let allowed = cpu_set(&allowed_cpus(&format!("{pid}/task/{tid}")));
        let expected = match engine {
            Some(cpu) if comm == "watchtower-engi" => [cpu].into(),
            Some(cpu) if writers.contains(&comm.as_str()) && ours.len() > 1 => {
                ours.iter().copied().filter(|&c| c != cpu).collect()
            }
            _ => ours.clone(),
        };
        if allowed != expected {
            misplaced.push(format!("{comm}: on {allowed:?}, expected {expected:?}"));
        }
    }
    misplaced
}

/// Device interrupts so far on each CPU of `allowed` ("0-1,4").
#[cfg(target_os = "linux")]
fn device_interrupts_of(allowed: &str) -> std::collections::BTreeMap<usize, u64> {
    let cpus = cpu_set(allowed);
    let text = std::fs::read_to_string("/proc/interrupts").unwrap();
    watchtower::priority::device_interrupts(&text)
        .into_iter()
        .filter(|(cpu, _)| cpus.contains(cpu))
        .collect()
}

/// The CPUs of a list as the kernel writes it ("0-1,4").
#[cfg(target_os = "linux")]
fn cpu_set(list: &str) -> std::collections::BTreeSet<usize> {
    list.split(',')
        .flat_map(|run| {
            let (start, end) = run.split_once('-').unwrap_or((run, run));
            start.parse().unwrap()..=end.parse().unwrap()
        })
        .collect()
}

/// `Cpus_allowed_list` of `/proc/{task}/status`, as the kernel writes it
/// ("0-3,6").
#[cfg(target_os = "linux")]
fn allowed_cpus(task: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{task}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Each thread of `pid`: its id and name.
#[cfg(target_os = "linux")]
fn threads(pid: u32) -> Vec<(String, String)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let task = task.ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            Some((task.file_name().into_string().ok()?, comm.trim().to_owned()))
        })
        .collect()
}

/// Each thread of `pid`: its name and niceness (`/proc/PID/task/*/stat`).
#[cfg(target_os = "linux")]
fn thread_niceness(pid: u32) -> Vec<(String, i32)> {
    threads(pid)
        .into_iter()
        .filter_map(|(tid, comm)| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            // "tid (comm) state ppid …": the fields after the name's ')'.
            let rest = stat.rsplit_once(") ")?.1;
            let nice = rest.split_whitespace().nth(16)?.parse().ok()?;
            Some((comm, nice))
        })
        .collect()
}
