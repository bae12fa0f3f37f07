//! The engine's per-tick records (state digests, telemetry rows) reach the
//! store's threads a batch at a time, not one wake-up per tick.
//!
//! Waking a thread costs the engine a system call, and the woken thread
//! tends to be placed on the engine's own core, where it takes the CPU from
//! the engine. At `--tps 0` (about a thousand ticks a second) the telemetry
//! recorder and the audit writer were woken on every tick and preempted the
//! engine thousands of times a second (docs/benchmarks.md, "Issue 11: the
//! engine's own core"). A batch goes when it holds [`HANDOVER_TICKS`]
//! records or, when the next record comes, its first is [`HANDOVER_AFTER`]
//! old; a paused engine's last batch waits for the next tick or the stop.
//!
//! What waits for a store thread is bounded by a [`Credit`]: a thread that
//! falls behind (a stuck disk) costs dropped, counted records, never memory
//! without end and never a wait on the engine. [`Batch`] is engine thread
//! only; a [`Credit`] is shared by the engine and one store thread.

use std::{
    mem,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// Most records a batch holds.
pub const HANDOVER_TICKS: usize = 32;
/// Longest a record waits in a batch (checked when the next one comes).
pub const HANDOVER_AFTER: Duration = Duration::from_millis(50);

/// Records waiting to be handed over.
#[derive(Debug)]
pub struct Batch<T> {
    items: Vec<T>,
    /// When the first waiting record came.
    since: Instant,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Self {
            items: Vec::with_capacity(HANDOVER_TICKS),
            since: Instant::now(),
        }
    }
}

impl<T> Batch<T> {
    /// Adds `item`; returns the whole batch once it is due.
    pub fn push(&mut self, item: T) -> Option<Vec<T>> {
        if self.items.is_empty() {
            self.since = Instant::now();
        }
        self.items.push(item);
        let due = self.items.len() >= HANDOVER_TICKS || self.since.elapsed() >= HANDOVER_AFTER;
        due.then(|| self.take())
    }

    /// Everything waiting, now (empty if nothing is).
    pub fn take(&mut self) -> Vec<T> {
        mem::replace(&mut self.items, Vec::with_capacity(HANDOVER_TICKS))
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// How many records the engine may have waiting for one store thread, and
/// how many it dropped for want of room. Clones share the counts.
#[derive(Debug, Clone)]
pub struct Credit {
    limit: usize,
    /// Records sent and not yet taken.
    queued: Arc<AtomicUsize>,
    /// Records dropped because the queue was full.
    dropped: Arc<AtomicU64>,
}

impl Credit {
    /// Room for `limit` records.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            queued: Arc::default(),
            dropped: Arc::default(),
        }
    }

    /// The engine side: room for `n` more records, or false (and `n`
    /// counted as dropped) if there is not. Only one thread may take.
    pub fn take(&self, n: usize) -> bool {
        // The only taker cannot race itself between the check and the add.
        if self.queued.load(Ordering::Acquire) + n > self.limit {
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return false;
        }
        self.queued.fetch_add(n, Ordering::AcqRel);
        true
    }

    /// The store side: `n` records are off the queue.
    pub fn give_back(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The store side: `(dropped since, dropped in all)` if any were
    /// dropped since `reported`, which is moved up to the total.
    pub fn new_drops(&self, reported: &mut u64) -> Option<(u64, u64)> {
        let total = self.dropped();
        let new = total.checked_sub(*reported).filter(|&n| n > 0)?;
        *reported = total;
        Some((new, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_when_full() {
        let mut batch = Batch::default();
        for i in 1..HANDOVER_TICKS {
            assert_eq!(batch.push(i), None);
        }
        assert_eq!(
            batch.push(HANDOVER_TICKS).map(|b| b.len()),
            Some(HANDOVER_TICKS)
        );
        assert!(batch.is_empty());
    }

    /// The credit counts records, not batches, and drops only what does
    /// not fit; room given back can be taken again.
    #[test]
    fn records_beyond_the_credit_are_dropped_and_counted() {
        let credit = Credit::new(100);
        assert!((0..3).all(|_| credit.take(32)));
        assert!(!credit.take(32), "96 + 32 is over 100");
        assert!(credit.take(4));
        assert!(!credit.take(1));
        let mut reported = 0;
        assert_eq!(credit.new_drops(&mut reported), Some((33, 33)));
        assert_eq!(credit.new_drops(&mut reported), None);
        credit.give_back(32);
        assert!(credit.take(32));
        assert_eq!(credit.new_drops(&mut reported), None);
    }

    #[test]
    fn a_batch_goes_when_its_first_record_is_old() {
        let mut batch = Batch::default();
        assert_eq!(batch.push(1), None);
        std::thread::sleep(HANDOVER_AFTER);
        assert_eq!(batch.push(2), Some(vec![1, 2]));
    }
}
