//! The Python the tests run: `WATCHTOWER_TEST_PYTHON` (`./test` points it at
//! the `.venv` it sets up), or `python3`. A missing package fails the test
//! saying how to install it; nothing is skipped.

use std::process::{Command, Output};

/// The Python interpreter the tests run.
pub fn python() -> String {
    std::env::var("WATCHTOWER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails, saying how to install them, unless `modules` import in the test Python.
pub fn require_modules(modules: &str) {
    let python = python();
    let check = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .unwrap_or_else(|err| panic!("{python} cannot be run ({err}); run `./test`"));
    assert!(
        check.status.success(),
        "{python} lacks {modules} ({}); run `./test`, which installs clients/python and \
         examples/python/requirements.txt into .venv, or install them and set \
         WATCHTOWER_TEST_PYTHON",
        String::from_utf8_lossy(&check.stderr).trim()
    );
}

/// Runs `script` with `args` and returns its standard output, failing the
/// test with both outputs if it fails.
pub fn run_script(script: &str, args: &[&str]) -> String {
    let run: Output = Command::new(python())
        .args(["-c", script])
        .args(args)
        .output()
        .expect("run Python");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "the Python script failed ({}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}
