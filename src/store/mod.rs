//! Durability: every run recorded in its own directory, so nothing
//! acknowledged is lost and any run can be resumed or replayed.
//!
//! - [`manifest`]: the run directory and its manifest (seed, parameters);
//! - [`writer`]: the `watchtower-audit` thread: group commit of outcomes,
//!   per-tick digests, replies only once durable, failure and recovery;
//! - [`checkpoint`]: the `watchtower-checkpoint` thread and the file format;
//! - [`log_file`]: the audit log and digest formats, torn-tail repair, reads;
//! - [`replay`]: `watchtower replay`, re-running a run from its directory;
//! - [`handover`]: per-tick records go to those threads in batches;
//! - [`recorder`]: the `watchtower-telemetry` thread, the run's telemetry
//!   as a Parquet table ([`table`]); [`export`]: `watchtower export`.
//!
//! The engine knows none of this: it hands records to a
//! [`crate::engine::Journal`] over channels and never waits. [`open`] (at
//! start-up, on the caller's thread) builds the engine for a new or resumed
//! run and starts the three writer threads. See `docs/durability.md`.

pub mod checkpoint;
pub mod export;
pub mod handover;
pub mod log_file;
pub mod manifest;
pub mod recorder;
pub mod replay;
pub mod table;
pub mod writer;

use std::{
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing::{error, info};

pub use log_file::{AuditFile, AuditPage, AuditQuery};
pub use manifest::Manifest;
use writer::{Disk, DiskClock, STALL_LIMIT};
pub use writer::{FaultSwitch, LogHealth};

use crate::{
    engine::{Durability, EngineError, GlobalRegistry, SimulationEngine},
    priority::Placement,
};

/// Why a run directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The manifest is unreadable or does not fit this build.
    #[error("bad manifest: {0}")]
    Manifest(String),
    /// There is no run to resume or replay.
    #[error("{0}")]
    NoRun(String),
    /// A file is damaged beyond the repairs made on start.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// A checkpoint was written in another format version.
    #[error(
        "{} was written by Watchtower {found_version} in checkpoint format {found_format}; \
         this is Watchtower {ours}, which reads checkpoint format {FORMAT_VERSION}",
        path.display(), ours = env!("CARGO_PKG_VERSION"),
        FORMAT_VERSION = checkpoint::FORMAT_VERSION
    )]
    Version {
        /// The checkpoint.
        path: PathBuf,
        /// Its format version.
        found_format: u32,
        /// The Watchtower version that wrote it.
        found_version: String,
    },
    /// The engine could not be built from the run.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A telemetry table could not be written or read as Parquet.
    #[error("telemetry table: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Telemetry rows did not fit the table's columns.
    #[error("telemetry table: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one, never a mix: a temporary file, synced, renamed, directory synced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_via(&path.with_extension("tmp"), path, bytes)
}

/// [`write_atomically`] through the temporary file `tmp`.
fn write_via(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = File::create(tmp).map_err(|e| StoreError::io(tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io(tmp, e))?;
    fs::rename(tmp, path).map_err(|e| StoreError::io(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// How to open the store: the settings that matter to it.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Where run directories live.
    pub data_dir: PathBuf,
    /// `latest` or a run id to resume; `None` starts a new run.
    pub resume: Option<String>,
    /// A checkpoint every this many ticks (0: only at shutdown).
    pub checkpoint_every: u64,
    /// Seed of a new run.
    pub seed: u64,
    /// Pace of the run, recorded in a new run's manifest.
    pub tps: f64,
    /// Record every this many ticks in the telemetry table (at least 1).
    pub record_every: u64,
    /// Where the store's threads run: `--network-nice` below the engine,
    /// and off its CPU if it has one, so they never take the CPU from it.
    pub placement: Placement,
    /// Command ids a resumed run remembers (`--idempotency-window`).
    pub idempotency_window: usize,
}

/// A recorded run, open: the engine to run and the store's threads.
#[derive(Debug)]
pub struct OpenedRun {
    /// The engine, with its journal attached.
    pub engine: SimulationEngine,
    /// The writer threads and what the server may see of them.
    pub store: Store,
}

/// What the store's threads could not keep up with so far, for metrics:
/// records dropped and checkpoints skipped while a disk was slow or stuck.
#[derive(Debug, Clone)]
pub struct Losses {
    digests: handover::Credit,
    telemetry_rows: handover::Credit,
    checkpoints_skipped: Arc<AtomicU64>,
}

impl Losses {
    /// Digests dropped because the audit writer fell behind.
    pub fn digests_dropped(&self) -> u64 {
        self.digests.dropped()
    }

    /// Telemetry rows dropped because the recorder fell behind.
    pub fn telemetry_rows_dropped(&self) -> u64 {
        self.telemetry_rows.dropped()
    }

    /// Checkpoints skipped because the previous one was not on disk yet.
    pub fn checkpoints_skipped(&self) -> u64 {
        self.checkpoints_skipped.load(Ordering::Relaxed)
    }
}

/// The store of a running run.
#[derive(Debug)]
pub struct Store {
    /// Whether the audit log can be written.
    pub health: LogHealth,
    /// What it dropped or skipped so far.
    pub losses: Losses,
    /// The durable audit log, for `ListAuditEntries`.
    pub audit: AuditFile,
    /// Injects write failures and hangs (tests, drills).
    pub faults: FaultSwitch,
    /// The audit writer; ends once the engine drops its journal.
    writer: JoinHandle<()>,
    /// The checkpoint writer; ends once the audit writer has.
    checkpointer: JoinHandle<()>,
    /// The telemetry recorder; ends once the engine drops its journal.
    telemetry: JoinHandle<()>,
    /// The three threads' writes in progress.
    clocks: [DiskClock; 3],
}

impl Store {
    /// Waits for the writer threads to finish (after the engine stopped):
    /// the last outcomes, the shutdown checkpoint and the last telemetry
    /// rows are then on disk.
    ///
    /// A disk that does not return would hold them for good, and the
    /// process with them: once one of their writes has not returned for
    /// [`STALL_LIMIT`], they are left behind, so that a stop still ends the
    /// process. That loses nothing acknowledged: a caller is answered only
    /// once its outcome is on disk.
    pub async fn join(self) {
        let Self {
            writer,
            checkpointer,
            telemetry,
            clocks,
            ..
        } = self;
        let (done, joined) = tokio::sync::oneshot::channel();
        let joiner = std::thread::Builder::new()
            .name("watchtower-store-join".into())
            .spawn(move || {
                let _ = writer.join();
                let _ = checkpointer.join();
                let _ = telemetry.join();
                let _ = done.send(());
            });
        if let Err(err) = joiner {
            error!(error = %err, "cannot wait for the store's writers; stopping without them");
            return;
        }
        tokio::select! {
            _ = joined => {}
            stuck = stalled(&clocks) => error!(
                stuck_s = stuck.as_secs(),
                "stopping without the store's writers: a write to the run's directory has not \
                 returned; the shutdown checkpoint and the outcomes, digests and telemetry rows \
                 not yet written are lost"
            ),
        }
    }
}

/// Resolves once a write timed on one of `clocks` has run for
/// [`STALL_LIMIT`], with how long it has run.
async fn stalled(clocks: &[DiskClock]) -> Duration {
    loop {
        let longest = clocks.iter().filter_map(DiskClock::running).max();
        if let Some(took) = longest
            && took >= STALL_LIMIT
        {
            return took;
        }
        tokio::time::sleep(STALL_LIMIT / 4).await;
    }
}

/// Opens a new run, or resumes one, for `registry` (a new run's parameters;
/// a resumed run uses its manifest's): builds the engine, re-queues the
/// audited outcomes after the checkpoint, and starts the writer threads.
pub fn open(options: &StoreOptions, registry: GlobalRegistry) -> Result<OpenedRun, StoreError> {
    let (dir, manifest, engine, tail) = match &options.resume {
        None => {
            let manifest = Manifest::new(&registry, options.seed, options.tps);
            let dir = manifest.create_run_dir(&options.data_dir)?;
            info!(run_id = %manifest.run_id, dir = %dir.display(), "recording a new run");
            let engine = SimulationEngine::new(registry, manifest.seed)?;
            (dir, manifest, engine, Vec::new())
        }
        Some(which) => resume(&options.data_dir, which, options.idempotency_window)?,
    };
    let faults = FaultSwitch::default();
    let disks = [(); 3].map(|()| Disk::new(faults.clone()));
    let clocks = disks.each_ref().map(|disk| disk.clock.clone());
    let [checkpoint_disk, audit_disk, telemetry_disk] = disks;
    let (checkpoints, checkpointer) = checkpoint::spawn_writer(
        dir.join(manifest::CHECKPOINT_DIR),
        options.placement,
        checkpoint_disk,
    )?;
    let audit_path = dir.join(manifest::AUDIT_FILE);
    let (recorder, writer) = writer::spawn(
        audit_path.clone(),
        &dir.join(manifest::DIGESTS_FILE),
        checkpoints,
        options.placement,
        audit_disk,
    )?;
    let (tap, telemetry) = recorder::spawn(
        dir.join(manifest::TELEMETRY_DIR),
        options.record_every,
        options.placement,
        telemetry_disk,
    )?;
    let (digests, checkpoints_skipped) = recorder.losses();
    let losses = Losses {
        digests,
        telemetry_rows: tap.credit(),
        checkpoints_skipped,
    };
    let mut engine = engine;
    engine.attach_durability(
        manifest.run_id.clone(),
        Durability::new(
            Box::new(recorder.with_telemetry(tap)),
            options.checkpoint_every,
            tail,
        ),
    );
    Ok(OpenedRun {
        engine,
        store: Store {
            health: writer.health,
            losses,
            audit: AuditFile::new(audit_path, writer.durable_len),
            faults,
            writer: writer.thread,
            checkpointer,
            telemetry,
            clocks,
        },
    })
}

type Resumed = (
    PathBuf,
    Manifest,
    SimulationEngine,
    Vec<crate::pb::GodResponse>,
);

/// Resumes run `which`: the newest valid checkpoint, plus every audited
/// outcome of a later tick (in tick order, log order within a tick) to
/// re-apply; digests after the checkpoint are recorded again. The outcomes
/// the checkpoint covers go back into the idempotency index (the last
/// `window` of them), which checkpoints leave out.
fn resume(data_dir: &Path, which: &str, window: usize) -> Result<Resumed, StoreError> {
    let dir = manifest::find_run(data_dir, which)?;
    let manifest = Manifest::read(&dir)?;
    let registry = manifest.registry()?;
    let state = checkpoint::load_newest(&dir.join(manifest::CHECKPOINT_DIR))?;
    let (mut engine, tick) = match state {
        Some(state) => {
            let tick = state.tick;
            (SimulationEngine::restore(registry, state)?, tick)
        }
        None => (SimulationEngine::new(registry, manifest.seed)?, 0),
    };
    let audit = &mut engine.world_mut().audit;
    audit.set_idempotency_window(window);
    // One line at a time, so a long run's log is never in memory whole:
    // the index keeps its window, and the tail is what follows the checkpoint.
    let mut tail = Vec::new();
    log_file::read_and_repair(&dir.join(manifest::AUDIT_FILE), |entry| {
        if entry.applied_tick <= tick {
            audit.remember(entry);
        } else {
            tail.push(entry);
        }
    })?;
    tail.sort_by_key(|e| e.applied_tick);
    log_file::truncate_digests(&dir.join(manifest::DIGESTS_FILE), tick)?;
    info!(
        run_id = %manifest.run_id,
        checkpoint_tick = tick,
        to_reapply = tail.len(),
        "resuming run"
    );
    Ok((dir, manifest, engine, tail))
}
