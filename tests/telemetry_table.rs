//! The run's telemetry as a table, through the real binary: a recorded run's
//! Parquet chunks and `watchtower export`'s Parquet and CSV files, read back
//! by pandas, polars and the `watchtower-client` package's `read_run`, with
//! one row per tick (or per `--record-every` ticks), none missing, none
//! twice, after a graceful stop, a kill and a resume; and clear errors for
//! bad arguments.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::{
    PATIENCE,
    binary::Binary,
    connect, next_snapshot,
    python::{require_modules, run_script},
    subscribe,
};
use serde_json::Value;

/// Reads every table named on the command line (`NAME=PATH`; a directory is
/// a run directory) and prints, per name, its ticks, its columns and the
/// time column's zone as JSON.
const READ_TABLES: &str = r#"
import glob, json, sys
import pandas as pd, polars as pl
from watchtower_client import read_run, snapshot_row
from watchtower_client._proto import watchtower_pb2 as pb

def summary(ticks, columns, tz):
    return {"ticks": [int(t) for t in ticks], "columns": list(columns), "tz": str(tz)}

out = {}
for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    if name == "run":
        df = pd.read_parquet(f"{path}/telemetry")
        out["pandas_run"] = summary(df["tick"], df.columns, df["time"].dt.tz)
        pl_df = pl.read_parquet(f"{path}/telemetry/*.parquet")
        out["polars_run"] = summary(pl_df["tick"], pl_df.columns, pl_df.schema["time"].time_zone)
        client = read_run(path)
        out["read_run"] = summary(client.index, ["tick", *client.columns], client["time"].dt.tz)
        frame = [c for c in snapshot_row(pb.WatchtowerSnapshot()) if c != "tick"]
        out["frame_indicators"] = [c for c in frame if c != "time"]
    elif path.endswith(".csv"):
        df = pd.read_csv(path, parse_dates=["time"])
        out[name] = summary(df["tick"], df.columns, df["time"].dt.tz)
    else:
        df = pd.read_parquet(path)
        out[name] = summary(df["tick"], df.columns, df["time"].dt.tz)
        pl_df = pl.read_parquet(path)
        out[name + "_polars"] = summary(pl_df["tick"], pl_df.columns, pl_df.schema["time"].time_zone)
print(json.dumps(out))
"#;

/// Reads the tables named (`NAME=PATH`) in Python; see [`READ_TABLES`].
fn read_tables(tables: &[(&str, &Path)]) -> Value {
    require_modules("pandas, polars, pyarrow, watchtower_client");
    let args: Vec<String> = tables
        .iter()
        .map(|(name, path)| format!("{name}={}", path.display()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = run_script(READ_TABLES, &args);
    serde_json::from_str(stdout.trim()).expect("the script prints JSON")
}

fn ticks(summary: &Value) -> Vec<u64> {
    summary["ticks"]
        .as_array()
        .expect("ticks")
        .iter()
        .map(|t| t.as_u64().expect("a tick"))
        .collect()
}

fn columns(summary: &Value) -> Vec<String> {
    summary["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("a name").to_owned())
        .collect()
}

/// Starts a recorded run at 500 ticks/s with `args`, waits until it has
/// published tick `ticks`, and returns it.
async fn run_until(data_dir: &Path, ticks: u64, args: &[&str]) -> Binary {
    let dir = data_dir.to_str().expect("a UTF-8 path");
    let mut app = Binary::start(&[&["--tps", "500", "--data-dir", dir], args].concat());
    let mut client = connect(app.addr()).await;
    let mut stream = subscribe(&mut client, 10).await;
    tokio::time::timeout(PATIENCE, async {
        while next_snapshot(&mut stream).await.tick < ticks {}
    })
    .await
    .expect("the run reaches the tick");
    app
}

/// SIGTERM, a clean exit, and the last tick from the `engine stopped` line.
fn stop(app: &mut Binary) -> u64 {
    app.terminate();
    let status = tokio::task::block_in_place(|| app.wait_exit(PATIENCE));
    assert_eq!(status.code(), Some(0), "{}", app.log_text());
    let line = app.wait_for(&["engine stopped"]);
    line.split("ticks=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no tick count in {line}"))
}

/// The only run directory under `data_dir`.
fn run_dir(data_dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .expect("the data dir")
        .map(|e| e.expect("an entry").path())
        .collect();
    assert_eq!(runs.len(), 1, "one run: {runs:?}");
    runs[0].clone()
}

fn chunk_names(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join("telemetry"))
        .expect("the telemetry dir")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// `watchtower export ARGS`, its exit status and standard error.
fn export(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .arg("export")
        .args(args)
        .output()
        .expect("run watchtower export")
}

fn export_to(run: &Path, out: &Path, extra: &[&str]) {
    let format = if out.extension().is_some_and(|e| e == "csv") {
        "csv"
    } else {
        "parquet"
    };
    let output = export(
        &[
            &[
                run.to_str().unwrap(),
                "--format",
                format,
                "--out",
                out.to_str().unwrap(),
            ],
            extra,
        ]
        .concat(),
    );
    assert!(
        output.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tick_is_one_row_read_alike_by_pandas_polars_csv_and_the_client() {
    let data = tempfile::tempdir().unwrap();
    let mut app = run_until(data.path(), 600, &[]).await;
    let last = stop(&mut app);
    let run = run_dir(data.path());
    let names = chunk_names(&run);
    assert_eq!(names[0], "ticks-000000001-000000256.parquet");
    assert_eq!(names[1], "ticks-000000257-000000512.parquet");
    assert_eq!(
        names.last().unwrap(),
        &format!(
            "ticks-{:09}-{last:09}.parquet",
            names.len() as u64 * 256 - 255
        ),
        "the rest is written at shutdown: {names:?}"
    );

    let all = data.path().join("all.parquet");
    let csv = data.path().join("all.csv");
    let range = data.path().join("range.parquet");
    export_to(&run, &all, &[]);
    export_to(&run, &csv, &[]);
    export_to(&run, &range, &["--from-tick", "100", "--to-tick", "299"]);
    let tables = read_tables(&[
        ("run", &run),
        ("export", &all),
        ("csv", &csv),
        ("range", &range),
    ]);

    let every: Vec<u64> = (1..=last).collect();
    for name in [
        "pandas_run",
        "polars_run",
        "read_run",
        "export",
        "export_polars",
        "csv",
    ] {
        assert_eq!(ticks(&tables[name]), every, "{name}: one row per tick");
    }
    assert_eq!(ticks(&tables["range"]), (100..=299).collect::<Vec<_>>());
    assert_eq!(
        ticks(&tables["range_polars"]),
        (100..=299).collect::<Vec<_>>()
    );

    let expected = columns(&tables["pandas_run"]);
    assert_eq!(&expected[..2], ["tick", "time"]);
    for name in ["polars_run", "read_run", "export", "csv", "range"] {
        assert_eq!(columns(&tables[name]), expected, "{name}: same columns");
    }
    let indicators: Vec<&String> = expected[2..]
        .iter()
        .filter(|c| !c.starts_with("param."))
        .collect();
    let frame: Vec<String> = serde_json::from_value(tables["frame_indicators"].clone()).unwrap();
    assert_eq!(
        indicators,
        frame.iter().collect::<Vec<_>>(),
        "the indicators are the Python client's frame() columns"
    );
    for column in [
        "param.fiscal.income_tax_rate",
        "param.agents.households",
        "param.monetary.taylor_rule",
    ] {
        assert!(
            expected.iter().any(|c| c == column),
            "{column} in {expected:?}"
        );
    }
    for name in ["pandas_run", "export", "csv"] {
        assert_eq!(tables[name]["tz"], "UTC", "{name}");
    }
    assert_eq!(tables["polars_run"]["tz"], "UTC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_every_n_keeps_every_nth_tick() {
    let data = tempfile::tempdir().unwrap();
    let mut app = run_until(data.path(), 300, &["--record-every", "7"]).await;
    let last = stop(&mut app);
    let run = run_dir(data.path());
    let tables = read_tables(&[("run", &run)]);
    let every_7th: Vec<u64> = (1..=last / 7).map(|i| i * 7).collect();
    for name in ["pandas_run", "polars_run", "read_run"] {
        assert_eq!(ticks(&tables[name]), every_7th, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_keeps_its_finished_chunks_and_a_resume_fills_the_rest_once() {
    let data = tempfile::tempdir().unwrap();
    let mut app = run_until(data.path(), 600, &[]).await;
    app.child.kill().expect("SIGKILL");
    let _ = app.child.wait();
    let run = run_dir(data.path());
    let killed = ticks(&read_tables(&[("run", &run)])["pandas_run"]);
    assert!(killed.len() >= 256, "a chunk at least: {}", killed.len());
    assert_eq!(killed.len() % 256, 0, "only finished chunks");
    assert_eq!(killed, (1..=killed.len() as u64).collect::<Vec<_>>());

    // No checkpoint before tick 1000: the resumed run re-runs from tick 1
    // and records only the ticks the table does not have yet.
    let mut resumed = run_until(data.path(), 700, &["--resume", "latest"]).await;
    let last = stop(&mut resumed);
    let tables = read_tables(&[("run", &run)]);
    for name in ["pandas_run", "polars_run", "read_run"] {
        assert_eq!(
            ticks(&tables[name]),
            (1..=last).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_export_arguments_are_refused_clearly() {
    let data = tempfile::tempdir().unwrap();
    let mut app = run_until(data.path(), 20, &[]).await;
    let last = stop(&mut app);
    let run = run_dir(data.path());
    let run = run.to_str().unwrap();
    let refused = |args: &[&str], code: i32, message: &str| {
        let output = export(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    };
    refused(
        &[
            run,
            "--format",
            "csv",
            "--from-tick",
            "10",
            "--to-tick",
            "5",
        ],
        1,
        "--from-tick 10 is after --to-tick 5",
    );
    refused(
        &[
            run,
            "--format",
            "csv",
            "--from-tick",
            &(last + 1).to_string(),
        ],
        1,
        &format!("no recorded tick is in {}..=", last + 1),
    );
    refused(
        &[run, "--format", "xlsx"],
        2,
        "[possible values: parquet, csv]",
    );
    refused(&[run], 2, "--format <FORMAT>");
    let out = data.path().join("refused.csv");
    refused(
        &[
            run,
            "--format",
            "csv",
            "--from-tick",
            "99999",
            "--out",
            out.to_str().unwrap(),
        ],
        1,
        "no recorded tick",
    );
    assert!(!out.exists(), "a refused export leaves no file");
    let missing = data.path().join("no-such-run");
    refused(
        &[missing.to_str().unwrap(), "--format", "csv"],
        1,
        "no-such-run is not a run directory (it has no manifest.json)",
    );
    refused(
        &[data.path().to_str().unwrap(), "--format", "csv"],
        1,
        "is not a run directory",
    );

    let refused_start = Command::new(env!("CARGO_BIN_EXE_watchtower"))
        .args(["--record-every", "0", "--data-dir", "off"])
        .output()
        .expect("run watchtower");
    let stderr = String::from_utf8_lossy(&refused_start.stderr);
    assert_eq!(refused_start.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--record-every"), "{stderr}");
    assert!(stderr.contains("0 is not in 1.."), "{stderr}");

    // To standard output, a CSV with a header and a row per tick.
    let output = export(&[run, "--format", "csv", "--to-tick", "3"]);
    assert!(output.status.success());
    let csv = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[0].starts_with("tick,time,macro.nominal_gdp,"),
        "{}",
        lines[0]
    );
    assert!(lines[3].starts_with("3,"), "{}", lines[3]);
    for line in &lines[1..] {
        // Always milliseconds, so a reader infers one format for every row.
        let time = line.split(',').nth(1).unwrap();
        assert_eq!(time.len(), "2026-11-26T13:30:09.923+00:00".len(), "{time}");
        assert!(
            time.ends_with("+00:00") && time.as_bytes()[19] == b'.',
            "{time}"
        );
    }
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("exported 3 rows, ticks 1 to 3"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
