//! The one harness for browser tests: checks that Node, `web/node_modules`
//! and Debian's Chromium are there (failing with how to install them, never
//! skipping), and runs a `web/tests/*.mjs` script to completion, answering
//! the `ASK …` lines it prints (things to do behind the page's back) on its
//! stdin.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Upper bound for the whole browser run.
const BROWSER_PATIENCE: Duration = Duration::from_secs(120);

/// Fails with install instructions when something the browser test needs is missing.
pub fn require_tools(web: &Path) {
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
        "the browser test cannot run:\n  - {}",
        missing.join("\n  - ")
    );
}

/// Runs `node web/tests/<script> url shots extra…` to completion within
/// [`BROWSER_PATIENCE`], echoing its output; each `ASK …` line it prints is
/// handed to `answer`, whose reply goes back on its stdin as `DONE …`.
pub fn run_browser_script(
    root: &Path,
    script: &str,
    args: &[&str],
    mut answer: impl FnMut(&str) -> String,
) -> ExitStatus {
    let mut child = Command::new("node")
        .arg(root.join("web/tests").join(script))
        .args(args)
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().expect("node's stdin");
    let stdout = child.stdout.take().expect("node's stdout");
    let (asks, asked) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(ask) = line.strip_prefix("ASK ") {
                let _ = asks.send(ask.to_owned());
            }
        }
    });
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
        // Waiting on the channel doubles as the poll interval for node's exit.
        if let Ok(ask) = asked.recv_timeout(Duration::from_millis(50)) {
            let reply = answer(&ask);
            println!("DONE {reply}");
            writeln!(stdin, "DONE {reply}").expect("answer node");
        }
    }
}
