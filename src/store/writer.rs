//! The audit writer thread: group commit of command outcomes, the per-tick
//! digests, and the hand-off of checkpoints once the log covers them.
//!
//! The engine sends [`Record`]s through an unbounded channel (sending never
//! waits; what it may carry is bounded, below), its digests in batches
//! ([`super::handover`]). The writer takes
//! everything waiting, appends the new outcomes to `audit.jsonl` and syncs
//! once, and only then answers the callers: an
//! acknowledged outcome is on disk. If the write or the sync fails, the
//! callers get `Unrecorded`, the failure is published (the server refuses
//! new commands, health reports it), and the writer keeps the unwritten
//! lines and retries until the disk takes them. A write or sync that has
//! not returned for [`STALL_LIMIT`] is published the same way, by the
//! `watchtower-audit-watch` thread, until it returns.
//!
//! What waits for a stuck disk stays bounded: outcomes by the refusal of
//! new commands, digests by [`QUEUE_DIGESTS`] (dropped and counted beyond
//! it), checkpoints by skipping one while the previous is being written.
//! Runs on the `watchtower-audit` thread; never touches engine state.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{
    StoreError,
    checkpoint::Checkpoints,
    handover::{Batch, Credit},
    log_file::{AuditLine, DIGEST_RECORD},
    manifest::unix_ms,
    recorder::TelemetryTap,
};
use crate::{
    bridge::{Reply, Unrecorded},
    engine::{EngineState, Journal, Outcome},
    pb::{GodResponse, WatchtowerSnapshot},
    priority::Placement,
};

/// How often a failed log is retried.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(250);
/// A commit (the log's write and sync, the digests' write) that has not
/// returned for this long counts as a failure: new commands are refused and
/// health reports it until it returns.
pub const STALL_LIMIT: Duration = Duration::from_secs(3);
/// Digests waiting for the writer before new ones are dropped (and
/// counted): 16 MiB, about 12 minutes of an unthrottled engine.
pub const QUEUE_DIGESTS: usize = 1 << 20;

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
    /// Digests sent and not yet written: at most [`QUEUE_DIGESTS`].
    digest_credit: Credit,
    /// Set while a checkpoint is on its way to disk; cleared once written.
    checkpointing: Arc<AtomicBool>,
    /// Whether the last checkpoint due was skipped, so a stuck disk is
    /// reported once, not at every one.
    skipping: bool,
    /// Checkpoints skipped so far.
    skipped: Arc<AtomicU64>,
    /// The telemetry recorder's side, if the run records its table.
    telemetry: Option<TelemetryTap>,
}

impl Recorder {
    /// What it dropped or skipped so far: digests, and checkpoints.
    pub fn losses(&self) -> (Credit, Arc<AtomicU64>) {
        (self.digest_credit.clone(), Arc::clone(&self.skipped))
    }

    /// Also hands every published snapshot to the telemetry recorder.
    pub fn with_telemetry(mut self, tap: TelemetryTap) -> Self {
        self.telemetry = Some(tap);
        self
    }

    /// Sends the digests waiting, if any, ahead of whatever comes next.
    fn send_digests(&mut self) {
        if !self.digests.is_empty() {
            let digests = self.digests.take();
            self.send_digest_batch(digests);
        }
    }

    /// Sends a batch of digests if the writer has room for it, otherwise
    /// drops it and counts it.
    fn send_digest_batch(&self, digests: Vec<(u64, u64)>) {
        if self.digest_credit.take(digests.len()) {
            let _ = self.records.send(Record::Digests(digests));
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
            self.send_digest_batch(digests);
        }
    }

    fn ready_for_checkpoint(&mut self, tick: u64) -> bool {
        let busy = self.checkpointing.load(Ordering::Acquire);
        if busy {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        if busy && !self.skipping {
            warn!(
                tick,
                "checkpoint skipped: the previous one is not on disk yet"
            );
        } else if !busy && self.skipping {
            info!(tick, "checkpoints resumed");
        }
        self.skipping = busy;
        !busy
    }

    fn checkpoint(&mut self, state: Box<EngineState>) {
        self.send_digests();
        self.checkpointing.store(true, Ordering::Release);
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

/// Injects disk faults, for tests and operators' drills: a disk that
/// refuses the audit log's writes (a real read-only disk behaves the same),
/// or one that does not return (a hung device or mount), which holds the
/// audit writer, the checkpoint writer and the telemetry recorder alike.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch {
    failing: Arc<AtomicBool>,
    hanging: Arc<AtomicBool>,
    /// The audit log's commit that turns `hanging` on (counted from 1; 0
    /// for none), and the commits so far.
    hang_at: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
}

impl FaultSwitch {
    /// Turns injected write failures on or off.
    pub fn set(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Makes every write to the run's files wait until turned off again.
    pub fn hang(&self, hanging: bool) {
        self.hanging.store(hanging, Ordering::SeqCst);
    }

    /// Makes the audit log's `nth` commit (counted from 1 over the life of
    /// this switch) turn the hang on, as a disk that stops answering in the
    /// middle of a run: that commit and every later write wait for good,
    /// unless turned off again.
    pub fn hang_at_commit(&self, nth: u64) {
        self.hang_at.store(nth, Ordering::SeqCst);
    }

    /// Called before a write to the disk: waits while hanging.
    fn wait_while_hanging(&self) {
        while self.hanging.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Called before the log's write and sync: waits while hanging, then
    /// fails if failing.
    fn check(&self) -> std::io::Result<()> {
        let commit = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if commit == self.hang_at.load(Ordering::SeqCst) {
            self.hang(true);
        }
        self.wait_while_hanging();
        if self.failing.load(Ordering::SeqCst) {
            Err(std::io::Error::other("injected write failure"))
        } else {
            Ok(())
        }
    }
}

/// When a store thread's write in progress started: the audit writer's
/// watchdog and a stop ([`super::Store::join`]) read it to tell a disk that
/// does not return. One per thread.
#[derive(Debug, Clone)]
pub(super) struct DiskClock {
    epoch: Instant,
    /// Milliseconds from `epoch` to the start, plus one; 0 while no write
    /// is in progress.
    started: Arc<AtomicU64>,
}

impl DiskClock {
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            started: Arc::default(),
        }
    }

    /// Runs `write`, timed.
    pub(super) fn time<T>(&self, write: impl FnOnce() -> T) -> T {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.started.store(now + 1, Ordering::SeqCst);
        let result = write();
        self.started.store(0, Ordering::SeqCst);
        result
    }

    /// How long the write in progress has taken, if one is.
    pub(super) fn running(&self) -> Option<Duration> {
        match self.started.load(Ordering::SeqCst) {
            0 => None,
            at => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(at - 1)),
            ),
        }
    }
}

/// One store thread's writes: the faults they obey and the clock they are
/// timed on.
#[derive(Debug, Clone)]
pub(super) struct Disk {
    pub(super) faults: FaultSwitch,
    pub(super) clock: DiskClock,
}

impl Disk {
    /// A fresh clock, for writes that obey `faults`.
    pub(super) fn new(faults: FaultSwitch) -> Self {
        Self {
            faults,
            clock: DiskClock::new(),
        }
    }

    /// Runs `write`, timed, once any injected hang is over.
    pub(super) fn write<T>(&self, write: impl FnOnce() -> T) -> T {
        self.clock.time(|| {
            self.faults.wait_while_hanging();
            write()
        })
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
/// writer and its watchdog where `placement` says. Checkpoints go to
/// `checkpoints` once the log covers them. The writer's commits obey
/// `disk`'s faults and are timed on its clock.
pub(super) fn spawn(
    audit_path: PathBuf,
    digests_path: &Path,
    checkpoints: Checkpoints,
    placement: Placement,
    disk: Disk,
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
    let status = Arc::new(status);
    let (records, rx) = mpsc::channel();
    let (done, writer_done) = mpsc::channel::<()>();
    let recorder = Recorder {
        records,
        digests: Batch::default(),
        digest_credit: Credit::new(QUEUE_DIGESTS),
        checkpointing: Arc::clone(&checkpoints.in_flight),
        skipping: false,
        skipped: Arc::default(),
        telemetry: None,
    };
    let mut writer = AuditWriter {
        audit,
        durable_len: Arc::clone(&durable_len),
        digests,
        lines: Vec::new(),
        digest_bytes: Vec::new(),
        digest_credit: recorder.digest_credit.clone(),
        dropped_seen: 0,
        replies: Vec::new(),
        checkpoint: None,
        checkpoints,
        status: Arc::clone(&status),
        disk,
        _done: done,
        audit_path,
    };
    let watchdog = Watchdog {
        clock: writer.disk.clock.clone(),
        path: writer.audit_path.clone(),
        status,
    };
    let thread_error = |name: &str, e| StoreError::io(Path::new(name), e);
    std::thread::Builder::new()
        .name("watchtower-audit-watch".into())
        .spawn(move || {
            placement.apply();
            watchdog.run(&writer_done);
        })
        .map_err(|e| thread_error("watchtower-audit-watch thread", e))?;
    let thread = std::thread::Builder::new()
        .name("watchtower-audit".into())
        .spawn(move || {
            placement.apply();
            writer.run(&rx);
        })
        .map_err(|e| thread_error("watchtower-audit thread", e))?;
    Ok((
        recorder,
        Writer {
            thread,
            health: LogHealth(health),
            durable_len,
        },
    ))
}

/// Publishes a commit that has not returned for [`STALL_LIMIT`] as a
/// failure of the log; the writer clears it at its next commit after.
struct Watchdog {
    clock: DiskClock,
    path: PathBuf,
    status: Arc<watch::Sender<Option<String>>>,
}

impl Watchdog {
    /// Looks every quarter of the limit until the writer ends.
    fn run(&self, writer_done: &mpsc::Receiver<()>) {
        while let Err(RecvTimeoutError::Timeout) = writer_done.recv_timeout(STALL_LIMIT / 4) {
            self.status
                .send_if_modified(|failure| self.stalled(failure));
        }
    }

    /// Marks the log failed if the commit in progress is over the limit
    /// and no other failure is shown. A failed log is retried every
    /// [`RETRY_INTERVAL`], so the mark is cleared soon after the commit
    /// returns.
    fn stalled(&self, failure: &mut Option<String>) -> bool {
        match self.clock.running() {
            Some(took) if took >= STALL_LIMIT && failure.is_none() => {
                let why = format!(
                    "{}: a write or sync has not returned for {} s",
                    self.path.display(),
                    took.as_secs()
                );
                error!(error = %why, "the audit log is stuck; refusing commands until it returns");
                *failure = Some(why);
                true
            }
            _ => false,
        }
    }
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
    /// Digests sent by the engine and not yet written, and those it
    /// dropped; how many of those were reported.
    digest_credit: Credit,
    dropped_seen: u64,
    /// Callers to answer after the next successful sync.
    replies: Vec<(Reply, GodResponse)>,
    /// The newest checkpoint waiting for the log to cover it.
    checkpoint: Option<Box<EngineState>>,
    /// The checkpoint writer thread.
    checkpoints: Checkpoints,
    /// `Some(why)` while the log cannot be written.
    status: Arc<watch::Sender<Option<String>>>,
    /// When the commit in progress started, for the watchdog.
    /// The commit's faults, and its clock for the watchdog.
    disk: Disk,
    /// Dropped with the writer, which ends the watchdog.
    _done: mpsc::Sender<()>,
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
            self.timed_commit();
        }
        self.timed_commit();
        if let Err(err) = self.disk.clock.time(|| self.digests.sync_all()) {
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

    /// A commit, timed for the watchdog: a write or sync that does not
    /// return is how a stuck disk shows.
    fn timed_commit(&mut self) {
        let clock = self.disk.clock.clone();
        clock.time(|| self.commit());
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
        self.write_digests();
        if let Some(state) = self.checkpoint.take() {
            self.checkpoints.send(state);
        }
    }

    /// Appends the digests waiting (not synced: they are recomputed on
    /// resume) and reports any the engine had to drop.
    fn write_digests(&mut self) {
        if let Some((dropped, total)) = self.digest_credit.new_drops(&mut self.dropped_seen) {
            warn!(
                dropped,
                total,
                "digests dropped: the writer fell behind the engine; replay --verify skips their ticks"
            );
        }
        if self.digest_bytes.is_empty() {
            return;
        }
        match self.digests.write_all(&self.digest_bytes) {
            Ok(()) => {
                self.digest_credit
                    .give_back(self.digest_bytes.len() / DIGEST_RECORD);
                self.digest_bytes.clear();
            }
            Err(err) => warn!(error = %err, "cannot write the digest file; will retry"),
        }
    }

    fn write_lines(&mut self) -> std::io::Result<()> {
        let result = self
            .disk
            .faults
            .check()
            .and_then(|()| self.audit.write_all(&self.lines))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        engine::{GlobalRegistry, SimulationEngine},
        store::{checkpoint, handover::HANDOVER_TICKS},
    };

    fn state() -> Box<EngineState> {
        let mut registry = GlobalRegistry::with_defaults();
        registry
            .apply_overrides_yaml("agents.households: 100\nagents.firms: 4\n", "test")
            .unwrap();
        let mut engine = SimulationEngine::new(registry, 3).unwrap();
        engine.step().unwrap();
        Box::new(engine.world().state())
    }

    fn outcome(id: &str) -> Outcome {
        Outcome {
            response: GodResponse {
                command_id: id.into(),
                applied_tick: 1,
                success: true,
                ..Default::default()
            },
            reply: None,
            append: true,
        }
    }

    /// A writer on files in `dir`, with its checkpoint writer, and the
    /// switch for its faults.
    fn writer_in(dir: &Path) -> (Recorder, Writer, FaultSwitch) {
        let checkpoint_dir = dir.join("checkpoints");
        std::fs::create_dir(&checkpoint_dir).unwrap();
        let (checkpoints, _) = checkpoint::spawn_writer(
            checkpoint_dir,
            Placement::default(),
            Disk::new(FaultSwitch::default()),
        )
        .unwrap();
        let faults = FaultSwitch::default();
        let (recorder, writer) = spawn(
            dir.join("audit.jsonl"),
            &dir.join("digests.bin"),
            checkpoints,
            Placement::default(),
            Disk::new(faults.clone()),
        )
        .unwrap();
        (recorder, writer, faults)
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// While a checkpoint waits behind a sync that does not return, the
    /// engine is told to skip the next ones; once it is written, it is
    /// asked for them again.
    #[test]
    fn no_second_checkpoint_is_taken_while_one_is_on_its_way() {
        let dir = tempfile::tempdir().unwrap();
        let (mut recorder, writer, faults) = writer_in(dir.path());
        let checkpoint_dir = dir.path().join("checkpoints");
        assert!(recorder.ready_for_checkpoint(1));

        faults.hang(true);
        recorder.record(1, vec![outcome("held")]);
        recorder.checkpoint(state());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!recorder.ready_for_checkpoint(2), "one is still on its way");
        assert!(checkpoint::list(&checkpoint_dir).unwrap().is_empty());

        faults.hang(false);
        wait_until("the checkpoint on disk", || {
            recorder.ready_for_checkpoint(3)
        });
        assert_eq!(checkpoint::list(&checkpoint_dir).unwrap().len(), 1);
        drop(recorder);
        writer.thread.join().unwrap();
    }

    /// While the writer is stuck, the digests waiting for it stop at
    /// [`QUEUE_DIGESTS`]; the rest are dropped and counted, and once the
    /// disk takes the waiting ones there is room again.
    #[test]
    fn digests_beyond_the_queue_are_dropped_while_the_writer_is_stuck() {
        let dir = tempfile::tempdir().unwrap();
        let (mut recorder, writer, faults) = writer_in(dir.path());
        faults.hang(true);
        recorder.record(1, vec![outcome("held")]);
        let over = 40 * HANDOVER_TICKS as u64;
        let sent = QUEUE_DIGESTS as u64 + over;
        (1..=sent).for_each(|tick| recorder.settled(tick, tick));
        let mut reported = 0;
        let (dropped, _) = recorder.digest_credit.new_drops(&mut reported).unwrap();
        // Batches usually hold 32; a slow machine may cut one short.
        assert!(
            (over..over + HANDOVER_TICKS as u64).contains(&dropped),
            "{dropped}"
        );

        faults.hang(false);
        let digests = dir.path().join("digests.bin");
        let on_disk = || std::fs::metadata(&digests).unwrap().len() / DIGEST_RECORD as u64;
        wait_until("the waiting digests on disk", || {
            on_disk() == sent - dropped
        });
        (sent + 1..=sent + over).for_each(|tick| recorder.settled(tick, tick));
        drop(recorder);
        writer.thread.join().unwrap();
        assert_eq!(
            on_disk(),
            sent + over - dropped,
            "none dropped once there was room"
        );
    }
}
