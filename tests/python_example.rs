//! The Python example client (examples/python) against the real binary: the
//! stubs are generated from proto/ by its generate.sh, and the client must
//! list, stream, apply and decode the rich details of a rejection.
//!
//! Runs the Python named by `WATCHTOWER_TEST_PYTHON` (`./test` points it at
//! the `.venv` it sets up), or `python3`. Without grpcio there, this test
//! fails and says how to install it; it never skips.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const PATIENCE: Duration = Duration::from_secs(20);

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python")
}

/// The binary, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on port 0 and reads its address from the log.
fn start_server() -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["--listen", "127.0.0.1:0", "--legacy-ws-listen", "off"])
        .args(["--tps", "20"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the binary logs `gRPC server listening local_addr=…`");
        if let Some(rest) = line.split("local_addr=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_owned();
            // Keep draining the log so the binary never blocks on a full pipe.
            std::thread::spawn(move || while lines.recv().is_ok() {});
            return (server, addr);
        }
    }
}

/// The Python interpreter the tests run: `WATCHTOWER_TEST_PYTHON`, or `python3`.
fn python() -> String {
    std::env::var("WATCHTOWER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn require_python_packages() {
    let python = python();
    let check = Command::new(&python)
        .args([
            "-c",
            "import grpc, grpc_tools, grpc_status, google.rpc.error_details_pb2",
        ])
        .output();
    match check {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the Python example's packages are missing from {python} ({}); run `./test`, \
             which sets up .venv, or `pip install -r examples/python/requirements.txt` \
             and set WATCHTOWER_TEST_PYTHON to that Python",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) => panic!(
            "{python} cannot be run ({err}); install Python 3 and run `./test`, or set \
             WATCHTOWER_TEST_PYTHON to a Python with examples/python/requirements.txt"
        ),
    }
}

#[test]
fn python_client_lists_streams_applies_and_decodes_bad_request() {
    require_python_packages();
    let generate = Command::new("bash")
        .arg(example_dir().join("generate.sh"))
        .env("PYTHON", python())
        .output()
        .expect("run generate.sh");
    assert!(
        generate.status.success(),
        "generate.sh failed: {}",
        String::from_utf8_lossy(&generate.stderr)
    );

    let (_server, addr) = start_server();
    let run = Command::new(python())
        .arg(example_dir().join("watchtower_client.py"))
        .args(["--addr", &addr])
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the client failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    let applied = stdout
        .lines()
        .find(|l| l.starts_with("applied at tick "))
        .unwrap_or_else(|| panic!("no applied command in:\n{stdout}"));
    let tick: u64 = applied["applied at tick ".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a tick number");
    assert!(tick > 0, "{applied}");
    assert!(
        applied.contains("fiscal.income_tax_rate 0.2 -> 0.21"),
        "old -> new: {applied}"
    );
    assert!(
        stdout.contains("BadRequest field=command.value"),
        "the BadRequest field is printed:\n{stdout}"
    );
    assert!(
        stdout.matches("snapshot tick=").count() >= 3,
        "three snapshots are shown:\n{stdout}"
    );
}
