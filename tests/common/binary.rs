//! The one harness for tests of the real `watchtower` binary: starts it on
//! port 0 (legacy WebSocket off, `--data-dir off` unless the test names a
//! data directory), collects every stdout and stderr line as it arrives (so
//! the child never blocks on a full pipe, unless a test asks for a stuck
//! stdout), reads its address from the log in either log format, and kills
//! it when dropped.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use super::PATIENCE;

/// Listen on a loopback port of the kernel's choosing, with no legacy
/// WebSocket port: what every test's binary starts with.
pub const LOOPBACK_ARGS: [&str; 4] = ["--listen", "127.0.0.1:0", "--legacy-ws-listen", "off"];

/// A running `watchtower` process and the log lines seen so far.
pub struct Binary {
    /// The process, for tests that kill it outright.
    pub child: Child,
    /// Lines from both pipes, in the order the reader threads got them.
    lines: mpsc::Receiver<String>,
    /// Every line received so far.
    seen: Vec<String>,
    /// Dropped with this, it lets a stuck stdout's reader go.
    _release: mpsc::Sender<()>,
}

impl Binary {
    /// Starts the binary with `args` and `RUST_LOG=info`.
    pub fn start(args: &[&str]) -> Self {
        Self::start_logging(args, "info")
    }

    /// Starts the binary with `args` and `RUST_LOG` set to `filter`; its
    /// engine is not pinned unless `args` say where (the suite runs many
    /// servers at once, and `--engine-cpu auto` would put every engine on
    /// the same CPU).
    pub fn start_logging(args: &[&str], filter: &str) -> Self {
        let base = LOOPBACK_ARGS;
        let unpinned = if args.contains(&"--engine-cpu") {
            &[][..]
        } else {
            &["--engine-cpu", "off"][..]
        };
        Self::launch(&[&base, unpinned, args].concat(), &[("RUST_LOG", filter)])
    }

    /// Starts the binary with exactly `args` (plus `--data-dir off` unless
    /// they name one) and the environment variables `envs`.
    pub fn launch(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::launch_reading(args, envs, false)
    }

    /// Starts the binary as [`Binary::start`] does, but reads its stdout
    /// only up to the address line: after that the pipe stays open and
    /// unread, as a stuck log shipper leaves it, until this is dropped.
    pub fn start_with_stdout_stuck(args: &[&str]) -> Self {
        let args = [&LOOPBACK_ARGS[..], &["--engine-cpu", "off"], args].concat();
        Self::launch_reading(&args, &[("RUST_LOG", "info")], true)
    }

    fn launch_reading(args: &[&str], envs: &[(&str, &str)], stdout_stuck: bool) -> Self {
        let data_dir = if args.contains(&"--data-dir") {
            &[][..]
        } else {
            &["--data-dir", "off"][..]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_watchtower"))
            .args(data_dir)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the watchtower binary");
        let (tx, lines) = mpsc::channel();
        let (release, released) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stop = stdout_stuck.then_some(released);
        let stdout_tx = tx.clone();
        std::thread::spawn(move || read_lines(stdout, &stdout_tx, stop));
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || read_lines(stderr, &tx, None));
        Self {
            child,
            lines,
            seen: Vec::new(),
            _release: release,
        }
    }

    /// Waits for a log line containing every one of `parts` (or finds one
    /// already seen).
    pub fn wait_for(&mut self, parts: &[&str]) -> String {
        let matches = |line: &String| parts.iter().all(|p| line.contains(p));
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no log line with {parts:?}; log:\n{}", self.seen.join("\n"))
            });
            self.seen.push(line.clone());
            if matches(&line) {
                return line;
            }
        }
    }

    /// The address from the `gRPC server listening` line, text or JSON.
    pub fn addr(&mut self) -> SocketAddr {
        let line = self.wait_for(&["gRPC server listening"]);
        let addr = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(json) => json["local_addr"]
                .as_str()
                .expect("the JSON line has local_addr")
                .to_owned(),
            Err(_) => line
                .split("local_addr=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .expect("the address is logged")
                .to_owned(),
        };
        addr.parse().expect("a socket address")
    }

    /// Every line logged so far.
    pub fn log(&mut self) -> &[String] {
        self.seen.extend(self.lines.try_iter());
        &self.seen
    }

    /// Every line the process wrote, once it has exited and both pipes are
    /// closed.
    pub fn all_lines(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// The log so far, one line per line.
    pub fn log_text(&mut self) -> String {
        self.log().join("\n")
    }

    /// Sends SIGTERM, as `docker stop` or systemd would.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, failing after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the binary") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sends each line of `pipe` to `tx`; with `stop`, stops reading after the
/// address line and holds the pipe, unread, until `stop` is let go.
fn read_lines(pipe: impl Read, tx: &mpsc::Sender<String>, stop: Option<mpsc::Receiver<()>>) {
    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
        let last = stop.is_some() && line.contains("gRPC server listening");
        let _ = tx.send(line);
        if last {
            let _ = stop.map(|released| released.recv());
            return;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
