//! The engine's side of durability: what Phase 0 and Phase 8 hand over to
//! whoever keeps the record on disk.
//!
//! The engine never does file I/O and never waits on a disk. It knows only
//! the [`Journal`] trait; the store's writer threads implement it behind
//! non-blocking channels, so every call here returns at once. Runs on the
//! engine thread.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{AuditLog, Economy, Value, control::RunSettings, schedule::SavedSchedule};
use crate::{
    bridge::Reply,
    pb::{GodResponse, WatchtowerSnapshot},
};

/// Where the engine hands its record. Every method must return at once.
pub trait Journal: Send + std::fmt::Debug {
    /// Phase 0's outcomes for `tick`, in the order they were decided. The
    /// journal appends the new ones, syncs once, then answers every caller.
    fn record(&mut self, tick: u64, outcomes: Vec<Outcome>);
    /// Phase 8: the digest of the state `tick` settled into.
    fn settled(&mut self, tick: u64, digest: u64);
    /// Whether a checkpoint due after `tick` is wanted: false while the
    /// previous one is still on its way to disk, so a slow or stuck disk
    /// does not make the engine queue copy after copy of its state.
    fn ready_for_checkpoint(&mut self, tick: u64) -> bool;
    /// A copy of the whole state after a tick, to save as a checkpoint.
    fn checkpoint(&mut self, state: Box<EngineState>);
    /// Phase 8: the snapshot `tick` published, shared with the telemetry
    /// exchange, for the run's telemetry table.
    fn published(&mut self, snapshot: &Arc<WatchtowerSnapshot>);
}

/// One command's outcome on its way to the audit log and its caller.
#[derive(Debug)]
pub struct Outcome {
    /// What Phase 0 decided (or, for a repeated id, what it decided before).
    pub response: GodResponse,
    /// The caller, answered once the outcome is durable; none for a `step`,
    /// whose caller is answered after its last tick.
    pub reply: Option<Reply>,
    /// False for a repeated id: the outcome is already in the log, so it is
    /// only acknowledged (after everything before it is durable).
    pub append: bool,
}

/// Everything a run needs to go on from a tick: what a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    /// The last tick completed.
    pub tick: u64,
    /// Seed the run started from.
    pub seed: u64,
    /// Every parameter value, in key order.
    pub parameters: Vec<Value>,
    /// Agents, ledger and the random stream.
    pub economy: Economy,
    /// Counts, the recent tail and the idempotency index. Its `total()` is
    /// the audit position: how many log lines the state includes.
    pub audit: AuditLog,
    /// Paused or running, and the target pace.
    pub run: RunSettings,
    /// Commands held for later ticks.
    pub scheduled: SavedSchedule,
}
