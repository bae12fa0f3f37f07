//! Python against the real binary: the example client (examples/python) on
//! stubs its generate.sh makes from proto/, which must list, stream, apply
//! and decode the rich details of a rejection; the `watchtower-client`
//! package's own pytest suite (clients/python); and the notebook-style
//! analysis example, which must write its PNG.
//!
//! Runs the Python named by `WATCHTOWER_TEST_PYTHON` (`./test` points it at
//! the `.venv` it sets up), or `python3`. Without grpcio there, this test
//! fails and says how to install it; it never skips.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::{
    binary::Binary,
    python::{python, require_modules},
};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python")
}

/// The binary at 20 ticks/s, and its address as `HOST:PORT`.
fn start_server() -> (Binary, String) {
    let mut server = Binary::start(&["--tps", "20"]);
    let addr = server.addr().to_string();
    (server, addr)
}

#[test]
fn python_client_lists_streams_applies_and_decodes_bad_request() {
    require_modules("grpc, grpc_tools, grpc_status, google.rpc.error_details_pb2");
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
        .arg(example_dir().join("stubs_client.py"))
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

/// The installed `watchtower-client` package passes its pytest suite against
/// the real binary (every test runs; none is skipped).
#[test]
fn python_client_package_passes_its_tests_against_the_binary() {
    require_modules("watchtower_client, pytest, grpc_tools");
    let (_server, addr) = start_server();
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/tests");
    let run = Command::new(python())
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
        .arg(&tests)
        .env("WATCHTOWER_ADDR", &addr)
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "pytest failed ({}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let summary = stdout.lines().last().unwrap_or_default();
    println!("pytest: {summary}");
    assert!(summary.contains(" passed"), "{stdout}");
    assert!(!summary.contains("skipped"), "{stdout}");
}

/// examples/python/analysis.py moves a policy and plots its effect into a PNG.
#[test]
fn analysis_example_plots_a_policy_change_to_a_png() {
    require_modules("watchtower_client, matplotlib");
    let (_server, addr) = start_server();
    let out = std::env::temp_dir().join(format!("watchtower-analysis-{}.png", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let run = Command::new(python())
        .arg(example_dir().join("analysis.py"))
        .args(["--addr", &addr, "--seconds", "1", "--out"])
        .arg(&out)
        .output()
        .expect("run analysis.py");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "analysis.py failed ({}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("-> 0.35"),
        "the change is reported:\n{stdout}"
    );
    let png = std::fs::read(&out).expect("analysis.py wrote its PNG");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a {}-byte PNG is too small for three plots",
        png.len()
    );
    let _ = std::fs::remove_file(&out);
}
