//! The browser dashboard end to end: the real binary serves it, headless
//! Chromium drives it (`web/tests/dashboard.mjs`, playwright-core), and the
//! server's log shows the command the page sent (the spec's integration
//! check). Needs Node, `npm ci` in `web/` and Debian's Chromium; without them
//! the test fails and says how to install them, it never skips.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Upper bound for the server to start and log its address.
const START_PATIENCE: Duration = Duration::from_secs(20);
/// Upper bound for the whole browser run.
const BROWSER_PATIENCE: Duration = Duration::from_secs(120);

/// The binary, with every stdout and stderr line collected as it arrives.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// The binary at 20 ticks/s, with the given environment (tokens).
    fn start(envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_watchtower"))
            .args(["--listen", "127.0.0.1:0", "--legacy-ws-listen", "off"])
            .args(["--data-dir", "off"])
            .args(["--tps", "20"])
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the watchtower binary");
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for pipe in pipes {
            let (tx, log) = (tx.clone(), Arc::clone(&log));
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        Self { child, lines, log }
    }

    /// The port from `gRPC server listening local_addr=127.0.0.1:PORT`.
    fn addr(&self) -> String {
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "the server logged no listening address; log:\n{}",
                    self.log_text()
                )
            });
            if let Some(rest) = line
                .contains("gRPC server listening")
                .then(|| line.split("local_addr=").nth(1))
                .flatten()
            {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
/// logs `Registry updated` for that key; an out-of-range value shows the
/// server's INVALID_ARGUMENT in the page.
#[test]
fn dashboard_drives_the_real_binary_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    require_tools(&root.join("web"));
    let server = Server::start(&[]);
    let url = format!("http://{}", server.addr());
    let shots = root.join("target/dashboard-screenshots");

    let status = run_browser_test(&root, &url, &shots, &[]);
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
    let server = Server::start(&[
        ("WATCHTOWER_OPERATOR_TOKEN", OPERATOR),
        ("WATCHTOWER_OBSERVER_TOKEN", OBSERVER),
    ]);
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
