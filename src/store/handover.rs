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
//! Engine thread only.

use std::{
    mem,
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

    #[test]
    fn a_batch_goes_when_its_first_record_is_old() {
        let mut batch = Batch::default();
        assert_eq!(batch.push(1), None);
        std::thread::sleep(HANDOVER_AFTER);
        assert_eq!(batch.push(2), Some(vec![1, 2]));
    }
}
