//! The real `watchtower` binary as a test subject: started with its
//! arguments, its log read line by line, its address taken from the log.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use super::PATIENCE;

/// A running `watchtower` process; killed when dropped. Unless `args` name
/// a `--data-dir`, it runs with `--data-dir off`.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    /// The binary on loopback port 0, without the legacy listener.
    pub fn start(args: &[&str]) -> Self {
        let base = ["--listen", "127.0.0.1:0", "--legacy-ws-listen", "off"];
        Self::launch(&[&base, args].concat(), &[("RUST_LOG", "info")])
    }

    /// The binary with `args` (plus `--data-dir off` unless they name a data
    /// directory) and the environment variables `envs`.
    pub fn launch(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_watchtower"))
            .args(if args.contains(&"--data-dir") {
                &[][..]
            } else {
                &["--data-dir", "off"][..]
            })
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        let (tx, lines) = mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing every one of `parts`.
    pub fn wait_for(&mut self, parts: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        if let Some(line) = self
            .seen
            .iter()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {parts:?}; saw {:#?}", self.seen));
            self.seen.push(line.clone());
            if parts.iter().all(|p| line.contains(p)) {
                return line;
            }
        }
    }

    /// Every line the process wrote, once it has exited and both pipes are
    /// closed.
    pub fn all_lines(&mut self) -> Vec<String> {
        let mut lines = self.seen.clone();
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            lines.push(line);
        }
        lines
    }

    pub fn addr(&mut self) -> std::net::SocketAddr {
        let line = self.wait_for(&["gRPC server listening"]);
        let addr = line
            .split("local_addr=")
            .nth(1)
            .expect("the address is logged");
        addr.split_whitespace()
            .next()
            .unwrap()
            .parse()
            .expect("a socket address")
    }

    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
