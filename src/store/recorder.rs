//! The telemetry recorder: the `watchtower-telemetry` thread, which writes
//! the engine's per-tick snapshots to the run's Parquet table
//! (`telemetry/`, see [`super::table`]), a finished chunk file every
//! [`ROWS_PER_CHUNK`] rows and at shutdown.
//!
//! The engine hands each Phase 8 snapshot (shared, not copied) to its
//! journal, whose [`TelemetryTap`] gathers every `--record-every`-th one
//! into batches ([`super::handover`]) and sends each to this thread
//! without waiting. At most [`QUEUE_SNAPSHOTS`] rows wait: if the recorder
//! ever falls that far behind, the rows are dropped and counted, never the
//! tick delayed. Parquet, files and syncs happen only on this thread.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        mpsc::{self, Receiver, Sender},
    },
    thread::JoinHandle,
};

use tracing::{error, info, warn};

use super::{
    StoreError,
    handover::{Batch, Credit},
    table::{self, TableLayout},
    writer::Disk,
};
use crate::{pb::WatchtowerSnapshot, priority::Placement};

/// Rows per chunk file (one Parquet row group): a crash loses at most
/// this many rows that were not yet written.
pub const ROWS_PER_CHUNK: usize = 256;
/// Snapshots waiting for the recorder before rows are dropped: four chunks.
pub const QUEUE_SNAPSHOTS: usize = 4 * ROWS_PER_CHUNK;

/// The engine side: offers snapshots to the recorder without waiting.
#[derive(Debug)]
pub struct TelemetryTap {
    /// Never waits; `credit` bounds what it holds, in rows rather than
    /// batches, whose size depends on the engine's pace.
    snapshots: Sender<Vec<Arc<WatchtowerSnapshot>>>,
    /// Rows sent and not yet taken by the recorder: at most
    /// [`QUEUE_SNAPSHOTS`], so a stalled disk cannot grow memory.
    credit: Credit,
    /// Snapshots not yet offered.
    batch: Batch<Arc<WatchtowerSnapshot>>,
    /// Record every this many ticks (`--record-every`).
    every: u64,
}

impl TelemetryTap {
    /// Its rows waiting and dropped.
    pub fn credit(&self) -> Credit {
        self.credit.clone()
    }

    /// Takes the snapshot of a tick if the tick is recorded; a full batch
    /// goes to the recorder if it has room, otherwise it is dropped (and
    /// counted).
    pub fn offer(&mut self, snapshot: &Arc<WatchtowerSnapshot>) {
        if !snapshot.tick.is_multiple_of(self.every) {
            return;
        }
        if let Some(batch) = self.batch.push(Arc::clone(snapshot)) {
            self.send(batch);
        }
    }

    fn send(&self, batch: Vec<Arc<WatchtowerSnapshot>>) {
        if self.credit.take(batch.len()) {
            let _ = self.snapshots.send(batch);
        }
    }
}

/// The engine has stopped: the last rows go to the recorder.
impl Drop for TelemetryTap {
    fn drop(&mut self) {
        let rest = self.batch.take();
        if !rest.is_empty() {
            self.send(rest);
        }
    }
}

/// Starts the recorder writing to `dir` (created if missing), recording
/// every `every`-th tick. Ticks already in a finished chunk (a resumed run
/// re-running ticks after its checkpoint) are not written again. Runs
/// where `placement` says; its writes go through `disk`.
pub(super) fn spawn(
    dir: PathBuf,
    every: u64,
    placement: Placement,
    disk: Disk,
) -> Result<(TelemetryTap, JoinHandle<()>), StoreError> {
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
    table::remove_unfinished(&dir)?;
    let recorded_to = table::chunks(&dir)?.last().map(|c| c.last);
    let (snapshots, rx) = mpsc::channel();
    let credit = Credit::new(QUEUE_SNAPSHOTS);
    let mut recorder = Recorder {
        dir: dir.clone(),
        layout: None,
        rows: Vec::with_capacity(ROWS_PER_CHUNK),
        recorded_to,
        credit: credit.clone(),
        dropped_seen: 0,
        disk,
    };
    let thread = std::thread::Builder::new()
        .name("watchtower-telemetry".into())
        .spawn(move || {
            placement.apply();
            recorder.run(&rx);
        })
        .map_err(|e| StoreError::io(&dir, e))?;
    Ok((
        TelemetryTap {
            snapshots,
            credit,
            batch: Batch::default(),
            every: every.max(1),
        },
        thread,
    ))
}

/// The recorder thread's state.
struct Recorder {
    dir: PathBuf,
    /// The table's columns, fixed by the first snapshot.
    layout: Option<TableLayout>,
    /// The rows of the unfinished chunk.
    rows: Vec<Arc<WatchtowerSnapshot>>,
    /// The last tick in a finished chunk.
    recorded_to: Option<u64>,
    /// Rows the tap has sent that this thread has not taken yet, and the
    /// rows it dropped.
    credit: Credit,
    /// Drops already reported.
    dropped_seen: u64,
    disk: Disk,
}

impl Recorder {
    /// Records until the engine drops its tap, then writes the unfinished
    /// chunk.
    fn run(&mut self, batches: &Receiver<Vec<Arc<WatchtowerSnapshot>>>) {
        for batch in batches {
            self.credit.give_back(batch.len());
            for snapshot in batch {
                self.take(snapshot);
            }
        }
        self.finish_chunk();
        info!(dir = %self.dir.display(), last_tick = self.recorded_to, "telemetry recorder stopped");
    }

    /// Adds a row, unless a finished chunk has it; writes a full chunk.
    fn take(&mut self, snapshot: Arc<WatchtowerSnapshot>) {
        if self.recorded_to.is_some_and(|t| snapshot.tick <= t) {
            return;
        }
        self.rows.push(snapshot);
        if self.rows.len() >= ROWS_PER_CHUNK {
            self.finish_chunk();
        }
    }

    /// Writes the rows gathered so far as one chunk file.
    fn finish_chunk(&mut self) {
        self.report_drops();
        let Some(first) = self.rows.first() else {
            return;
        };
        let layout = self.layout.get_or_insert_with(|| TableLayout::of(first));
        let written = self.disk.write(|| {
            layout
                .batch(&self.rows)
                .and_then(|batch| table::write_chunk(&self.dir, &batch))
        });
        let (first, last) = (first.tick, self.rows[self.rows.len() - 1].tick);
        match written {
            Ok(_) => self.recorded_to = Some(last),
            Err(err) => error!(first, last, %err, "cannot write telemetry rows; they are lost"),
        }
        self.rows.clear();
    }

    fn report_drops(&mut self) {
        if let Some((dropped, total)) = self.credit.new_drops(&mut self.dropped_seen) {
            warn!(
                dropped,
                total, "telemetry rows dropped: the recorder fell behind the engine"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        pb::{MacroIndicators, ParameterValue, parameter_value::Kind},
        store::FaultSwitch,
    };

    fn snapshot(tick: u64) -> Arc<WatchtowerSnapshot> {
        Arc::new(WatchtowerSnapshot {
            tick,
            captured_at_unix_ms: 1_700_000_000_000 + tick as i64,
            r#macro: Some(MacroIndicators {
                nominal_gdp: tick as f64,
                ..Default::default()
            }),
            parameters: [(
                "fiscal.vat_rate".to_owned(),
                ParameterValue {
                    kind: Some(Kind::Number(0.1)),
                },
            )]
            .into(),
            ..Default::default()
        })
    }

    /// Records ticks `1..=to` into `dir` and returns the ticks on disk.
    fn record(dir: &std::path::Path, to: u64, every: u64) -> Vec<u64> {
        let (mut tap, thread) = spawn(
            dir.to_owned(),
            every,
            Placement::default(),
            Disk::new(FaultSwitch::default()),
        )
        .unwrap();
        for tick in 1..=to {
            tap.offer(&snapshot(tick));
        }
        drop(tap);
        thread.join().unwrap();
        table::chunks(dir)
            .unwrap()
            .iter()
            .flat_map(|c| table::read_chunk(&c.path).unwrap())
            .flat_map(|b| table::ticks(&b).unwrap().values().to_vec())
            .collect()
    }

    /// The queue holds rows, not batches: a slow engine hands over a row or
    /// two at a time, and still gets the same slack before rows are dropped.
    #[test]
    fn rows_beyond_the_queue_are_dropped_and_counted_however_they_are_batched() {
        let (snapshots, batches) = mpsc::channel();
        let tap = TelemetryTap {
            snapshots,
            batch: Batch::default(),
            every: 1,
            credit: Credit::new(QUEUE_SNAPSHOTS),
        };
        for tick in 1..=(QUEUE_SNAPSHOTS + 100) as u64 {
            tap.send(vec![snapshot(tick)]);
        }
        let queued: usize = batches.try_iter().map(|b| b.len()).sum();
        assert_eq!(queued, QUEUE_SNAPSHOTS);
        assert_eq!(tap.credit.new_drops(&mut 0), Some((100, 100)));
    }

    #[test]
    fn chunks_of_256_rows_then_the_rest_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(record(dir.path(), 600, 1), (1..=600).collect::<Vec<_>>());
        let names: Vec<_> = table::chunks(dir.path())
            .unwrap()
            .iter()
            .map(|c| (c.first, c.last))
            .collect();
        assert_eq!(names, [(1, 256), (257, 512), (513, 600)]);
    }

    #[test]
    fn a_restart_writes_only_ticks_not_yet_in_a_chunk() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), 300, 1);
        assert_eq!(record(dir.path(), 450, 1), (1..=450).collect::<Vec<_>>());
    }

    #[test]
    fn record_every_keeps_multiples_only() {
        let dir = tempfile::tempdir().unwrap();
        let expected: Vec<u64> = (1..=100).map(|i| i * 5).collect();
        assert_eq!(record(dir.path(), 500, 5), expected);
    }
}
