//! `AuditLog`: the engine's record of every god-mode command (spec §4.1).
//!
//! Phase 0 appends exactly one `GodResponse` per command it takes off the
//! queue, applied or rejected, before it replies to the caller. Totals count
//! every entry ever made; the entries themselves are kept in a bounded ring so
//! a long run under heavy command load cannot grow memory without limit.
//!
//! It is also the idempotency index: the ids of the last
//! `--idempotency-window` commands (default [`DEFAULT_IDEMPOTENCY_WINDOW`]),
//! with their outcomes, so a retry is answered from the record instead of
//! being applied twice. The index is bounded like the ring: the oldest id is
//! forgotten when a new one would exceed the window (a retry of a command
//! older than the window is a new command). A checkpoint leaves the index
//! out: it would be most of the checkpoint (10.7 MiB of 10.8 with a full
//! window, `benches/durability.rs`), and the audit log on disk, which a
//! resume reads anyway, holds every outcome in it. The store rebuilds
//! it from there ([`AuditLog::remember`]). The durable copy of the log is
//! the store's business. Engine thread only.
//!
//! Every checkpoint copies the log on the engine thread, so the ring and the
//! index are persistent collections (`imbl`) sharing one `Arc` per outcome:
//! the copy shares their nodes instead of cloning a full window of outcomes,
//! which had stalled the engine ~50 ms per checkpoint (`benches/durability.rs`).

use std::sync::Arc;

use imbl::{HashMap, Vector};

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::pb::GodResponse;

/// How many entries the log keeps by default.
pub const DEFAULT_AUDIT_CAPACITY: usize = 10_000;

/// How many command ids the idempotency index keeps by default: at about a
/// kilobyte each with its outcome, about 100 MB at most.
pub const DEFAULT_IDEMPOTENCY_WINDOW: usize = 100_000;

/// The command audit trail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "SavedAudit", from = "SavedAudit")]
pub struct AuditLog {
    entries: Vector<Arc<GodResponse>>,
    capacity: usize,
    applied: u64,
    rejected: u64,
    /// The last `window` recorded command ids and their outcomes.
    by_id: HashMap<Arc<str>, Arc<GodResponse>>,
    /// The ids in `by_id`, oldest first.
    id_order: Vector<Arc<str>>,
    /// Most ids `by_id` keeps.
    window: usize,
}

/// The log as a checkpoint stores it: entries as protobuf bytes, since the
/// generated serde impls speak only JSON.
#[derive(Serialize, Deserialize)]
struct SavedAudit {
    capacity: usize,
    applied: u64,
    rejected: u64,
    recent: Vec<Vec<u8>>,
    /// The idempotency index of older checkpoints, kept so they still
    /// decode: written empty and ignored on reading, since the store
    /// rebuilds the index from the log, which holds all of it.
    by_id: Vec<Vec<u8>>,
}

impl From<AuditLog> for SavedAudit {
    fn from(log: AuditLog) -> Self {
        Self {
            capacity: log.capacity,
            applied: log.applied,
            rejected: log.rejected,
            recent: log.entries().map(Message::encode_to_vec).collect(),
            by_id: Vec::new(),
        }
    }
}

impl From<SavedAudit> for AuditLog {
    fn from(saved: SavedAudit) -> Self {
        // The checksum over the checkpoint has already vouched for these bytes.
        let decode = |bytes: Vec<u8>| GodResponse::decode(bytes.as_slice()).unwrap_or_default();
        let mut log = AuditLog::with_capacity(saved.capacity);
        log.applied = saved.applied;
        log.rejected = saved.rejected;
        log.entries = saved.recent.into_iter().map(decode).map(Arc::new).collect();
        log
    }
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
            entries: Vector::new(),
            capacity: capacity.max(1),
            applied: 0,
            rejected: 0,
            by_id: HashMap::new(),
            id_order: Vector::new(),
            window: DEFAULT_IDEMPOTENCY_WINDOW,
        }
    }

    /// Keeps at most `window` command ids (at least one), forgetting the
    /// oldest beyond it.
    pub fn set_idempotency_window(&mut self, window: usize) {
        self.window = window.max(1);
        self.forget_beyond_window();
    }

    fn forget_beyond_window(&mut self) {
        while self.id_order.len() > self.window {
            if let Some(old) = self.id_order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    /// The outcome recorded for command `id` in this run, if any.
    pub fn recorded(&self, id: &str) -> Option<&GodResponse> {
        self.by_id.get(id).map(Arc::as_ref)
    }

    /// Remembers an outcome already in the log on disk (read back on
    /// resume), so a retry of it is not applied again.
    pub fn remember(&mut self, response: GodResponse) {
        self.index(Arc::new(response));
    }

    /// Puts `response` under its id, newest last, unless the id is there.
    fn index(&mut self, response: Arc<GodResponse>) {
        let id: Arc<str> = response.command_id.as_str().into();
        if self.by_id.insert(Arc::clone(&id), response).is_none() {
            self.id_order.push_back(id);
            self.forget_beyond_window();
        }
    }

    /// Records one command's outcome.
    pub fn record(&mut self, response: GodResponse) {
        let response = Arc::new(response);
        self.index(Arc::clone(&response));
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
        self.entries.iter().map(Arc::as_ref)
    }

    /// The last `n` entries, oldest first.
    pub fn recent(&self, n: usize) -> impl Iterator<Item = &GodResponse> {
        // By index: skipping through a persistent vector's iterator would
        // walk every entry before the tail, on every snapshot.
        let len = self.entries.len();
        (len.saturating_sub(n)..len).map(|i| self.entries[i].as_ref())
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

    fn entry(id: &str) -> GodResponse {
        GodResponse {
            command_id: id.into(),
            success: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_idempotency_index_keeps_the_last_window_of_ids() {
        let mut log = AuditLog::with_capacity(10);
        log.set_idempotency_window(2);
        for id in ["a", "b", "c"] {
            log.record(entry(id));
        }
        assert!(log.recorded("a").is_none(), "the oldest id is forgotten");
        assert!(log.recorded("b").is_some() && log.recorded("c").is_some());
        // A repeated id takes no second place in the window.
        log.remember(entry("c"));
        assert!(log.recorded("b").is_some());
    }

    #[test]
    fn a_copy_keeps_the_log_as_it_was_when_copied() {
        let mut log = AuditLog::with_capacity(2);
        log.set_idempotency_window(2);
        for id in ["a", "b"] {
            log.record(entry(id));
        }
        let copy = log.clone();
        log.record(entry("c"));
        let ids = |l: &AuditLog| {
            l.entries()
                .map(|e| e.command_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            (ids(&copy), ids(&log)),
            (vec!["a".into(), "b".into()], vec!["b".into(), "c".into()])
        );
        assert!(copy.recorded("a").is_some() && copy.recorded("c").is_none());
        assert!(log.recorded("a").is_none() && log.recorded("c").is_some());
        assert_eq!((copy.total(), log.total()), (2, 3));
    }

    #[test]
    fn a_checkpoint_keeps_the_counts_and_the_tail_but_not_the_index() {
        let mut log = AuditLog::with_capacity(10);
        for id in ["a", "b", "c"] {
            log.record(entry(id));
        }
        let back = read_back(&log);
        // No index: the store rebuilds it from the log.
        let remembered = back.recorded("a").is_some();
        assert_eq!(
            (back.total(), back.entries().count(), remembered),
            (3, 3, false)
        );
    }

    /// `value` written as a checkpoint writes it, read back as a log.
    fn read_back(value: &impl Serialize) -> AuditLog {
        let bytes = postcard::to_stdvec(value).expect("serializes");
        postcard::from_bytes(&bytes).expect("deserializes")
    }

    #[test]
    fn an_older_checkpoint_with_the_index_still_decodes() {
        let saved = SavedAudit {
            capacity: 10,
            applied: 3,
            rejected: 0,
            recent: vec![entry("c").encode_to_vec()],
            by_id: ["a", "b", "c"].map(|id| entry(id).encode_to_vec()).to_vec(),
        };
        let back = read_back(&saved);
        let remembered = back.recorded("c").is_some();
        assert_eq!(
            (back.total(), back.entries().count(), remembered),
            (3, 1, false)
        );
    }
}
