//! `AuditLog`: the engine's record of every god-mode command (spec §4.1).
//!
//! Phase 0 appends exactly one `GodResponse` per command it takes off the
//! queue, applied or rejected, before it replies to the caller. Totals count
//! every entry ever made; the entries themselves are kept in a bounded ring so
//! a long run under heavy command load cannot grow memory without limit.
//! Engine thread only.

use std::collections::VecDeque;

use crate::pb::GodResponse;

/// How many entries the log keeps by default.
pub const DEFAULT_AUDIT_CAPACITY: usize = 10_000;

/// The command audit trail.
#[derive(Debug, Clone)]
pub struct AuditLog {
    entries: VecDeque<GodResponse>,
    capacity: usize,
    applied: u64,
    rejected: u64,
}

impl Default for AuditLog {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_AUDIT_CAPACITY)
    }
}

impl AuditLog {
    /// A log that keeps the last `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
            applied: 0,
            rejected: 0,
        }
    }

    /// Records one command's outcome.
    pub fn record(&mut self, response: GodResponse) {
        if response.success {
            self.applied += 1;
        } else {
            self.rejected += 1;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(response);
    }

    /// Commands applied since start.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Commands rejected since start.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Entries recorded since start.
    pub fn total(&self) -> u64 {
        self.applied + self.rejected
    }

    /// The retained entries, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &GodResponse> + ExactSizeIterator {
        self.entries.iter()
    }

    /// The last `n` entries, oldest first.
    pub fn recent(&self, n: usize) -> impl Iterator<Item = &GodResponse> {
        self.entries
            .iter()
            .skip(self.entries.len().saturating_sub(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_everything_and_keeps_the_tail() {
        let mut log = AuditLog::with_capacity(2);
        for (i, success) in [true, false, true].into_iter().enumerate() {
            log.record(GodResponse {
                command_id: i.to_string(),
                success,
                ..Default::default()
            });
        }
        assert_eq!((log.applied(), log.rejected(), log.total()), (2, 1, 3));
        let ids: Vec<_> = log.entries().map(|e| e.command_id.as_str()).collect();
        assert_eq!(ids, ["1", "2"]);
        let last: Vec<_> = log.recent(1).map(|e| e.command_id.as_str()).collect();
        assert_eq!(last, ["2"]);
    }
}
