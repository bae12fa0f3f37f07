//! The run directory and its manifest: which run this is, and everything
//! needed to start it again from tick 0 (seed and effective parameters).
//!
//! Written once, atomically, when a run starts; read by `--resume` and by
//! `watchtower replay`. Runs on whichever thread opens the run (start-up or
//! the replay tool), never on the engine thread.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::{StoreError, write_atomically};
use crate::engine::{GlobalRegistry, Value};

/// The manifest's file name in a run directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The audit log's file name in a run directory.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// The per-tick digest file's name in a run directory.
pub const DIGESTS_FILE: &str = "digests.bin";
/// The checkpoint directory's name in a run directory.
pub const CHECKPOINT_DIR: &str = "checkpoints";
/// The telemetry table's directory (Parquet chunks) in a run directory.
pub const TELEMETRY_DIR: &str = "telemetry";

/// What a run is: written at its start, never changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The run's id, also its directory's name.
    pub run_id: String,
    /// The Watchtower version that started the run.
    pub version: String,
    /// Seed of the economy's random stream.
    pub seed: u64,
    /// Start time, milliseconds since the Unix epoch.
    pub started_at_unix_ms: i64,
    /// Ticks per second asked for (does not change the results).
    pub tps: f64,
    /// Every parameter's value at tick 0, by key.
    pub parameters: BTreeMap<String, Value>,
}

impl Manifest {
    /// A manifest for a new run of `registry` with `seed`.
    pub fn new(registry: &GlobalRegistry, seed: u64, tps: f64) -> Self {
        let now = unix_ms();
        Self {
            run_id: format!(
                "{now:013}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            seed,
            started_at_unix_ms: now,
            tps,
            parameters: registry
                .iter()
                .map(|(spec, value)| (spec.key.clone(), value))
                .collect(),
        }
    }

    /// The registry the run started with: the defaults, then every recorded
    /// value, structural ones included.
    pub fn registry(&self) -> Result<GlobalRegistry, StoreError> {
        let mut registry = GlobalRegistry::with_defaults();
        for (key, value) in &self.parameters {
            registry
                .set_at_startup(key, *value)
                .map_err(|e| StoreError::Manifest(format!("parameter {key}: {e}")))?;
        }
        Ok(registry)
    }

    /// Reads the manifest of the run in `dir`.
    pub fn read(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Manifest(format!("{}: {e}", path.display())))
    }

    /// Creates the run's directory under `data_dir` and writes the manifest.
    pub fn create_run_dir(&self, data_dir: &Path) -> Result<PathBuf, StoreError> {
        let dir = data_dir.join(&self.run_id);
        let checkpoints = dir.join(CHECKPOINT_DIR);
        fs::create_dir_all(&checkpoints).map_err(|e| StoreError::io(&checkpoints, e))?;
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| StoreError::Manifest(e.to_string()))?;
        write_atomically(&dir.join(MANIFEST_FILE), &text)?;
        Ok(dir)
    }
}

/// The directory of the run `which` names under `data_dir`: `latest` is the
/// newest run that has a manifest.
pub fn find_run(data_dir: &Path, which: &str) -> Result<PathBuf, StoreError> {
    if which != "latest" {
        let dir = data_dir.join(which);
        return if dir.join(MANIFEST_FILE).is_file() {
            Ok(dir)
        } else {
            Err(StoreError::NoRun(format!(
                "no run {which} in {}",
                data_dir.display()
            )))
        };
    }
    let entries = fs::read_dir(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|dir| dir.join(MANIFEST_FILE).is_file())
        .max()
        .ok_or_else(|| StoreError::NoRun(format!("no run to resume in {}", data_dir.display())))
}

/// Now, in milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
