//! The load tool's CI smoke mode against a real server: `watchtower-bench
//! smoke` (the built binary, as CI and users run it) drives an in-process
//! Watchtower over a real socket. It asserts correctness only; nothing here
//! measures speed.

mod common;

use std::process::Command;

use common::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_mode_passes_against_watchtower() {
    let app = spawn_app(50.0).await;
    let addr = app.addr.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_watchtower-bench"))
            .args(["smoke", "--addr", &addr, "--duration", "1"])
            .output()
            .expect("run watchtower-bench")
    })
    .await
    .expect("the smoke run finishes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "smoke failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("smoke: ok"), "stdout:\n{stdout}");
    // Our server implements GetServerStats, so its checks must have run.
    assert!(stdout.contains("encoded="), "stdout:\n{stdout}");
    app.server.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_mode_fails_when_no_server_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let output = Command::new(env!("CARGO_BIN_EXE_watchtower-bench"))
        .args(["smoke", "--addr", &addr])
        .output()
        .expect("run watchtower-bench");
    assert!(!output.status.success());
}
