//! The Streamlit example as its users run it: `streamlit run
//! examples/streamlit/app.py --server.headless true` against the real binary
//! (on `/ws`), driven in headless Chromium by `web/tests/streamlit.mjs`
//! through the `common::browser` harness. The script asks this test for what
//! only the server knows: how often it logged `Registry updated`, its run
//! state over gRPC, and to stop it.
//!
//! Runs the Python named by `WATCHTOWER_TEST_PYTHON` (`./test` points it at
//! the `.venv` it builds from examples/*/requirements.txt), or `python3`.
//! Without Streamlit there, Node, `web/node_modules` or Chromium it fails and
//! says what to install; it never skips.

mod common;

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
};

use common::{
    PATIENCE,
    binary::Binary,
    browser::{require_tools, run_browser_script},
    connect, next_snapshot, subscribe,
};

/// The Python interpreter the tests run: `WATCHTOWER_TEST_PYTHON`, or `python3`.
fn python() -> String {
    std::env::var("WATCHTOWER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A `streamlit run` of the example, killed when dropped.
struct Streamlit {
    child: Child,
    url: String,
}

impl Streamlit {
    /// Starts the example on a free loopback port against `ws_url` and waits
    /// until Streamlit says it is serving.
    fn start(root: &Path, ws_url: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
            .to_string();
        let mut child = Command::new(python())
            .args(["-m", "streamlit", "run", "examples/streamlit/app.py"])
            .args(["--server.headless", "true", "--server.address", "127.0.0.1"])
            .args([
                "--server.port",
                &port,
                "--browser.gatherUsageStats",
                "false",
            ])
            .args(["--", "--url", ws_url])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {} -m streamlit: {e}", python()));
        let url = format!("http://127.0.0.1:{port}");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("streamlit's stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("streamlit: {line}");
                let _ = tx.send(line);
            }
        });
        // Streamlit prints the URL once its server listens.
        loop {
            match lines.recv_timeout(PATIENCE) {
                Ok(line) if line.contains(&url) => break,
                Ok(_) => {}
                Err(_) => panic!(
                    "streamlit did not say it serves {url} within {PATIENCE:?} \
                     (is it installed? `pip install -r examples/streamlit/requirements.txt`, \
                     or run ./test, which builds .venv)"
                ),
            }
        }
        Self { child, url }
    }
}

impl Drop for Streamlit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers `web/tests/streamlit.mjs`'s questions about the server.
fn answer(server: &mut Binary, runtime: &tokio::runtime::Runtime, ask: &str) -> String {
    let words: Vec<&str> = ask.split_whitespace().collect();
    match words.as_slice() {
        ["count-updates", key] => {
            let key = format!("key={key}");
            let lines = server.log();
            let n = lines
                .iter()
                .filter(|l| l.contains("Registry updated") && l.contains(&key))
                .count();
            n.to_string()
        }
        ["run-state"] => {
            let addr = server.addr();
            let snapshot = runtime.block_on(async {
                let mut client = connect(addr).await;
                next_snapshot(&mut subscribe(&mut client, 10).await).await
            });
            let engine = snapshot.engine.expect("engine statistics");
            format!("{} {}", engine.run_state().as_str_name(), snapshot.tick)
        }
        ["stop-server"] => {
            server.terminate();
            let status = server.wait_exit(PATIENCE);
            assert!(status.success(), "the server stops gracefully: {status}");
            "stopped".to_owned()
        }
        _ => panic!("unknown ask {ask:?}"),
    }
}

/// A slider move is applied (the server logs `Registry updated`) and its
/// receipt shows in the sidebar; the policy-rate label shows four decimals
/// for its 0.0025 step; quick steps are debounced; Pause pauses; a stopped
/// server shows a reconnecting warning.
#[test]
fn streamlit_example_steers_the_real_binary_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    require_tools(&root.join("web"));
    let mut server = Binary::start(&["--tps", "20"]);
    let ws_url = format!("ws://{}/ws", server.addr());
    let streamlit = Streamlit::start(&root, &ws_url);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let shots = root.join("target/streamlit-screenshots");
    let shots = shots.to_str().expect("a UTF-8 path");

    let status = run_browser_script(&root, "streamlit.mjs", &[&streamlit.url, shots], |ask| {
        answer(&mut server, &runtime, ask)
    });
    assert!(
        status.success(),
        "web/tests/streamlit.mjs failed ({status}); server log:\n{}",
        server.log_text()
    );
    let log = server.log_text();
    let updated = log
        .lines()
        .find(|l| l.contains("Registry updated") && l.contains("key=monetary.policy_rate"));
    assert!(
        updated.is_some(),
        "no `Registry updated key=monetary.policy_rate`:\n{log}"
    );
    println!("server logged: {}", updated.unwrap_or_default());
}
