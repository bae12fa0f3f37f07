//! The telemetry history ring, so a late subscriber can start with a full
//! chart (`SubscribeTelemetryRequest.history`).
//!
//! One recorder task per process follows the `TelemetryExchange` and keeps
//! the last `cap` snapshots it saw, as `Arc`s shared with the exchange (no
//! copies). At very high tick rates it records the snapshots it is woken
//! for, so consecutive entries may skip ticks; at the default 10 ticks/s it
//! sees every one. Runs on the tokio runtime; never touches the engine.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use crate::{bridge::TelemetryReader, pb::WatchtowerSnapshot};

/// The last snapshots seen, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Held only to push one entry or clone a few `Arc`s out.
    ring: Arc<Mutex<VecDeque<Arc<WatchtowerSnapshot>>>>,
    cap: usize,
}

impl History {
    /// Starts recording from `reader`, keeping at most `cap` snapshots.
    pub fn record(mut reader: TelemetryReader, cap: usize) -> Self {
        let history = Self {
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(cap))),
            cap,
        };
        if cap > 0 {
            let ring = history.clone();
            tokio::spawn(async move {
                loop {
                    reader.mark_seen();
                    if let Some(snapshot) = reader.latest() {
                        ring.push(snapshot);
                    }
                    if reader.changed().await.is_err() {
                        break;
                    }
                }
            });
        }
        history
    }

    /// The most snapshots a subscriber may ask for.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn push(&self, snapshot: Arc<WatchtowerSnapshot>) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.back().is_some_and(|last| last.tick >= snapshot.tick) {
            return;
        }
        if ring.len() == self.cap {
            ring.pop_front();
        }
        ring.push_back(snapshot);
    }

    /// The last `n` snapshots, oldest first.
    pub fn last(&self, n: usize) -> Vec<Arc<WatchtowerSnapshot>> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter()
            .skip(ring.len().saturating_sub(n))
            .cloned()
            .collect()
    }
}
