//! The audit writer thread: group commit of command outcomes, the per-tick
//! digests, and the hand-off of checkpoints once the log covers them.
//!
//! The engine sends [`Record`]s through an unbounded channel (sending never
//! waits), its digests in batches ([`super::handover`]). The writer takes
//! everything waiting, appends the new outcomes to `audit.jsonl` and syncs
//! once, and only then answers the callers: an
//! acknowledged outcome is on disk. If the write or the sync fails, the
//! callers get `Unrecorded`, the failure is published (the server refuses
//! new commands, health reports it), and the writer keeps the unwritten
//! lines and retries until the disk takes them. Runs on the
//! `watchtower-audit` thread; never touches engine state.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    time::Duration,
};

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{
    StoreError, handover::Batch, log_file::AuditLine, manifest::unix_ms, recorder::TelemetryTap,
};
use crate::{
    bridge::{Reply, Unrecorded},
    engine::{EngineState, Journal, Outcome},
    pb::{GodResponse, WatchtowerSnapshot},
    priority::Placement,
};

/// How often a failed log is retried.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// What the engine hands to the writer.
#[derive(Debug)]
pub enum Record {
    /// Phase 0's outcomes of one tick.
    Outcomes(Vec<Outcome>),
    /// State digests, `(tick, digest)`, oldest first.
    Digests(Vec<(u64, u64)>),
    /// A copy of the state, to checkpoint once the log covers it.
    Checkpoint(Box<EngineState>),
}

/// The engine's [`Journal`]: sends each record to the writer thread.
#[derive(Debug)]
pub struct Recorder {
    /// Unbounded, so the engine never waits; the writer drains it all at
    /// every commit, so it holds at most what arrived during one sync.
    records: mpsc::Sender<Record>,
    /// Digests not yet sent: they go in batches, or with the next outcomes
    /// or checkpoint, so the writer is not woken on every tick.
    digests: Batch<(u64, u64)>,
    /// The telemetry recorder's side, if the run records its table.
    telemetry: Option<TelemetryTap>,
}

impl Recorder {
    /// Also hands every published snapshot to the telemetry recorder.
    pub fn with_telemetry(mut self, tap: TelemetryTap) -> Self {
        self.telemetry = Some(tap);
        self
    }

    /// Sends the digests waiting, if any, ahead of whatever comes next.
    fn send_digests(&mut self) {
        if !self.digests.is_empty() {
            let _ = self.records.send(Record::Digests(self.digests.take()));
        }
    }
}

/// The engine has stopped: the last digests go to the writer.
impl Drop for Recorder {
    fn drop(&mut self) {
        self.send_digests();
    }
}

impl Journal for Recorder {
    fn record(&mut self, _tick: u64, outcomes: Vec<Outcome>) {
        self.send_digests();
        // A send fails only if the writer is gone; the dropped replies then
        // tell the callers the engine could not answer.
        let _ = self.records.send(Record::Outcomes(outcomes));
    }

    fn settled(&mut self, tick: u64, digest: u64) {
        if let Some(digests) = self.digests.push((tick, digest)) {
            let _ = self.records.send(Record::Digests(digests));
        }
    }

    fn checkpoint(&mut self, state: Box<EngineState>) {
        self.send_digests();
        let _ = self.records.send(Record::Checkpoint(state));
    }

    fn published(&mut self, snapshot: &Arc<WatchtowerSnapshot>) {
        if let Some(tap) = &mut self.telemetry {
            tap.offer(snapshot);
        }
    }
}

/// Whether the audit log can be written, as the server and health see it.
#[derive(Debug, Clone)]
pub struct LogHealth(watch::Receiver<Option<String>>);

impl LogHealth {
    /// Why the log cannot be written right now, if it cannot.
    pub fn failure(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// A receiver that wakes on every change, for the health reporter.
    pub fn watch(&self) -> watch::Receiver<Option<String>> {
        self.0.clone()
    }

    /// Health of a run without a log on disk: never failed.
    pub fn always_ok() -> Self {
        Self(watch::channel(None).1)
    }
}

/// Makes the writer fail every write while on: a disk that refuses writes,
/// for tests and operators' drills (a real read-only disk behaves the same).
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<AtomicBool>);

impl FaultSwitch {
    /// Turns injected write failures on or off.
    pub fn set(&self, failing: bool) {
        self.0.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> std::io::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            Err(std::io::Error::other("injected write failure"))
        } else {
            Ok(())
        }
    }
}

/// The running writer: its thread, and what the rest of the process sees.
#[derive(Debug)]
pub struct Writer {
    /// Joined at shutdown, after the engine has dropped its `Recorder`.
    pub thread: std::thread::JoinHandle<()>,
    /// Published failures of the log.
    pub health: LogHealth,
    /// Bytes of the log on disk, for readers.
    pub durable_len: Arc<AtomicU64>,
}

/// Opens the log files of the run in `dir` for appending and starts the
/// writer where `placement` says. Checkpoints go to `checkpoints` once the
/// log covers them.
pub fn spawn(
    audit_path: PathBuf,
    digests_path: &Path,
    checkpoints: mpsc::Sender<Box<EngineState>>,
    faults: FaultSwitch,
    placement: Placement,
) -> Result<(Recorder, Writer), StoreError> {
    let open = |path: &Path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| StoreError::io(path, e))
    };
    let audit = open(&audit_path)?;
    let digests = open(digests_path)?;
    let len = audit
        .metadata()
        .map_err(|e| StoreError::io(&audit_path, e))?
        .len();
    let durable_len = Arc::new(AtomicU64::new(len));
    let (status, health) = watch::channel(None);
    let (records, rx) = mpsc::channel();
    let mut writer = AuditWriter {
        audit,
        audit_path,
        durable_len: Arc::clone(&durable_len),
        digests,
        lines: Vec::new(),
        digest_bytes: Vec::new(),
        replies: Vec::new(),
        checkpoint: None,
        checkpoints,
        status,
        faults,
    };
    let thread = std::thread::Builder::new()
        .name("watchtower-audit".into())
        .spawn(move || {
            placement.apply();
            writer.run(&rx);
        })
        .map_err(|e| StoreError::io(Path::new("watchtower-audit thread"), e))?;
    Ok((
        Recorder {
            records,
            digests: Batch::default(),
            telemetry: None,
        },
        Writer {
            thread,
            health: LogHealth(health),
            durable_len,
        },
    ))
}

struct AuditWriter {
    audit: File,
    audit_path: PathBuf,
    durable_len: Arc<AtomicU64>,
    digests: File,
    /// Lines not yet on disk, kept across failed commits.
    lines: Vec<u8>,
    /// Digest records not yet written.
    digest_bytes: Vec<u8>,
    /// Callers to answer after the next successful sync.
    replies: Vec<(Reply, GodResponse)>,
    /// The newest checkpoint waiting for the log to cover it.
    checkpoint: Option<Box<EngineState>>,
    /// The checkpoint writer thread.
    checkpoints: mpsc::Sender<Box<EngineState>>,
    /// `Some(why)` while the log cannot be written.
    status: watch::Sender<Option<String>>,
    faults: FaultSwitch,
}

impl AuditWriter {
    /// Commits whatever arrived, until the engine drops its `Recorder`;
    /// while the log is failed, retries every [`RETRY_INTERVAL`].
    fn run(&mut self, records: &mpsc::Receiver<Record>) {
        loop {
            let first = if self.status.borrow().is_some() {
                match records.recv_timeout(RETRY_INTERVAL) {
                    Ok(record) => Some(record),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match records.recv() {
                    Ok(record) => Some(record),
                    Err(_) => break,
                }
            };
            first.into_iter().for_each(|r| self.take(r));
            while let Ok(record) = records.try_recv() {
                self.take(record);
            }
            self.commit();
        }
        self.commit();
        if let Err(err) = self.digests.sync_all() {
            warn!(error = %err, "cannot sync the digest file");
        }
        if !self.lines.is_empty() {
            error!(
                bytes = self.lines.len(),
                "stopping with audit entries that could not be written"
            );
        }
    }

    fn take(&mut self, record: Record) {
        match record {
            Record::Outcomes(outcomes) => {
                for outcome in outcomes {
                    if outcome.append {
                        self.append_line(&outcome.response);
                    }
                    if let Some(reply) = outcome.reply {
                        self.replies.push((reply, outcome.response));
                    }
                }
            }
            Record::Digests(digests) => {
                for (tick, digest) in digests {
                    self.digest_bytes.extend_from_slice(&tick.to_le_bytes());
                    self.digest_bytes.extend_from_slice(&digest.to_le_bytes());
                }
            }
            Record::Checkpoint(state) => self.checkpoint = Some(state),
        }
    }

    fn append_line(&mut self, entry: &GodResponse) {
        let line = AuditLine {
            wall_unix_ms: unix_ms(),
            entry: entry.clone(),
        };
        // A protobuf message always serializes to JSON.
        serde_json::to_writer(&mut self.lines, &line).expect("a GodResponse serializes");
        self.lines.push(b'\n');
    }

    /// One group commit: append and sync the log, then answer, then write
    /// the digests and release a covered checkpoint.
    fn commit(&mut self) {
        if !self.lines.is_empty()
            && let Err(err) = self.write_lines()
        {
            self.failed(&err);
            return;
        }
        for (reply, response) in self.replies.drain(..) {
            reply.send(response);
        }
        if self.status.borrow().is_some() {
            info!("the audit log can be written again; accepting commands");
            self.status.send_replace(None);
        }
        if !self.digest_bytes.is_empty() {
            match self.digests.write_all(&self.digest_bytes) {
                Ok(()) => self.digest_bytes.clear(),
                Err(err) => warn!(error = %err, "cannot write the digest file; will retry"),
            }
        }
        if let Some(state) = self.checkpoint.take() {
            let _ = self.checkpoints.send(state);
        }
    }

    fn write_lines(&mut self) -> std::io::Result<()> {
        self.faults.check()?;
        let result = self
            .audit
            .write_all(&self.lines)
            .and_then(|()| self.audit.sync_data());
        let durable = self.durable_len.load(Ordering::Acquire);
        if result.is_err() {
            // Drop a partial append, so the file stays whole lines.
            let _ = self.audit.set_len(durable);
            return result;
        }
        let added = self.lines.len() as u64;
        self.durable_len.store(durable + added, Ordering::Release);
        self.lines.clear();
        Ok(())
    }

    fn failed(&mut self, err: &std::io::Error) {
        let why = format!("{}: {err}", self.audit_path.display());
        if self.status.borrow().is_none() {
            error!(error = %why, "cannot write the audit log; refusing commands until it recovers");
        }
        for (reply, _) in self.replies.drain(..) {
            reply.fail(Unrecorded(why.clone()));
        }
        self.status.send_replace(Some(why));
    }
}
