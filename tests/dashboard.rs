//! The browser dashboard end to end: the real binary serves it, headless
//! Chromium drives it (`web/tests/dashboard.mjs`, playwright-core), and the
//! server's log shows the command the page sent (the spec's integration
//! check). Needs Node, `npm ci` in `web/` and Debian's Chromium; without them
//! the test fails and says how to install them, it never skips.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use common::binary::Binary;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Upper bound for the whole browser run.
const BROWSER_PATIENCE: Duration = Duration::from_secs(120);

/// Fails with install instructions when something the browser test needs is missing.
fn require_tools(web: &Path) {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!(
            "{CHROMIUM} is missing: install Debian's Chromium with \
             `apt-get update && apt-get install -y chromium` (never a downloaded browser)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node is missing: install Node.js 20 or newer".to_owned());
    }
    if !web.join("node_modules/playwright-core").is_dir() {
        missing.push(format!(
            "{} has no node_modules: run `npm ci` in web/ (or `.ci/web-check`)",
            web.display()
        ));
    }
    assert!(
        missing.is_empty(),
        "the dashboard browser test cannot run:\n  - {}",
        missing.join("\n  - ")
    );
}

/// Runs `node` to completion within `limit`, echoing its output.
fn run_browser_test(root: &Path, url: &str, shots: &Path, extra: &[&str]) -> ExitStatus {
    let mut child = Command::new("node")
        .arg(root.join("web/tests/dashboard.mjs"))
        .arg(url)
        .arg(shots)
        .args(extra)
        .current_dir(root)
        .stdin(Stdio::null())
        .spawn()
        .expect("start node");
    let deadline = Instant::now() + BROWSER_PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser test did not finish within {BROWSER_PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An operator moves a slider in the dashboard; the engine applies it and
/// logs `Registry updated` for that key; the audit log panel pages it from
/// the run's log on disk; an out-of-range value shows the server's
/// INVALID_ARGUMENT in the page.
#[test]
fn dashboard_drives_the_real_binary_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    require_tools(&root.join("web"));
    let data = tempfile::tempdir().expect("a temporary data directory");
    let data_dir = data.path().to_str().expect("a UTF-8 path");
    let mut server = Binary::start(&["--tps", "20", "--data-dir", data_dir]);
    let url = format!("http://{}", server.addr());
    let shots = root.join("target/dashboard-screenshots");

    let status = run_browser_test(&root, &url, &shots, &["--audit"]);
    assert!(
        status.success(),
        "web/tests/dashboard.mjs failed ({status}); server log:\n{}",
        server.log_text()
    );

    let log = server.log_text();
    let updated = log
        .lines()
        .find(|l| l.contains("Registry updated") && l.contains("key=fiscal.income_tax_rate"));
    assert!(
        updated.is_some(),
        "no `Registry updated key=fiscal.income_tax_rate` in the server log:\n{log}"
    );
    println!("server logged: {}", updated.unwrap_or_default());
}

/// On a server that requires tokens the page asks for one, refuses a wrong
/// one, shows an observer read-only controls, and lets an operator who signs
/// in steer; the server logs the operator as the principal.
#[test]
fn dashboard_asks_for_a_token_and_shows_the_role() {
    const OPERATOR: &str = "dash-operator-token-4c1f";
    const OBSERVER: &str = "dash-observer-token-9e02";
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    require_tools(&root.join("web"));
    let mut server = Binary::launch(
        &[
            "--listen",
            "127.0.0.1:0",
            "--legacy-ws-listen",
            "off",
            "--tps",
            "20",
        ],
        &[
            ("RUST_LOG", "info"),
            ("WATCHTOWER_OPERATOR_TOKEN", OPERATOR),
            ("WATCHTOWER_OBSERVER_TOKEN", OBSERVER),
        ],
    );
    let url = format!("http://{}", server.addr());
    let shots = root.join("target/dashboard-screenshots/auth");
    let tokens = format!("{OPERATOR},{OBSERVER}");

    let status = run_browser_test(&root, &url, &shots, &["--tokens", &tokens]);
    assert!(
        status.success(),
        "web/tests/dashboard.mjs --tokens failed ({status}); server log:\n{}",
        server.log_text()
    );
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("Registry updated") && l.contains("principal=operator")),
        "the operator's command is logged with its principal:\n{log}"
    );
}
