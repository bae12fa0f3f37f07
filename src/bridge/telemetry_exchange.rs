//! `TelemetryExchange`: the single-slot snapshot buffer (spec §2.2).
//!
//! The engine overwrites the slot at the end of every tick (Phase 8); readers
//! load whatever is there. The latest snapshot always wins and an unread one
//! is simply replaced (spec §5, "Telemetry Buffer Overflow"), so a slow reader
//! can never make the engine wait or make memory grow.
//!
//! The slot is an `ArcSwapOption`: publishing is one atomic pointer swap, and
//! loading never blocks the publisher. Beside it, a `tokio::sync::watch`
//! carrying only the tick number wakes readers when something new arrives,
//! so subscribers never poll.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use crate::pb::WatchtowerSnapshot;

/// Creates an empty exchange.
pub fn telemetry_exchange() -> (TelemetryPublisher, TelemetryReader) {
    let slot = Arc::new(ArcSwapOption::empty());
    let (tick_tx, tick_rx) = watch::channel(None);
    (
        TelemetryPublisher {
            slot: Arc::clone(&slot),
            ticks: tick_tx,
        },
        TelemetryReader {
            slot,
            ticks: tick_rx,
        },
    )
}

/// The engine's half: overwrites the slot.
#[derive(Debug)]
pub struct TelemetryPublisher {
    /// The slot itself; one pointer swap per publish.
    slot: Arc<ArcSwapOption<WatchtowerSnapshot>>,
    /// Wake-up signal only (the tick just published); the data lives in `slot`.
    ticks: watch::Sender<Option<u64>>,
}

impl TelemetryPublisher {
    /// Replaces the snapshot in the slot and wakes readers.
    /// A shared snapshot is stored as is, so others (the run's recorder)
    /// can hold the same one without a copy.
    pub fn publish(&self, snapshot: impl Into<Arc<WatchtowerSnapshot>>) {
        let snapshot = snapshot.into();
        let tick = snapshot.tick;
        self.slot.store(Some(snapshot));
        // Never waits: watch keeps one value and no reader can hold it long.
        self.ticks.send_replace(Some(tick));
    }
}

/// The engine has stopped publishing.
#[derive(Debug, thiserror::Error)]
#[error("the engine stopped publishing telemetry")]
pub struct ExchangeClosed;

/// The server's half: loads the latest snapshot. Cheap to clone; each clone
/// tracks what it has seen on its own.
#[derive(Debug, Clone)]
pub struct TelemetryReader {
    slot: Arc<ArcSwapOption<WatchtowerSnapshot>>,
    /// Tells this reader that a newer snapshot is in the slot.
    ticks: watch::Receiver<Option<u64>>,
}

impl TelemetryReader {
    /// The latest snapshot, if the engine has published one.
    pub fn latest(&self) -> Option<Arc<WatchtowerSnapshot>> {
        self.slot.load_full()
    }

    /// Waits until a snapshot newer than the last one this reader saw is
    /// published, and marks it seen.
    pub async fn changed(&mut self) -> Result<(), ExchangeClosed> {
        self.ticks.changed().await.map_err(|_| ExchangeClosed)
    }

    /// Marks the current snapshot as seen, so [`TelemetryReader::changed`]
    /// waits for the next one.
    pub fn mark_seen(&mut self) {
        self.ticks.mark_unchanged();
    }

    /// True once the publisher is gone: no newer snapshot will come.
    pub fn is_closed(&self) -> bool {
        self.ticks.has_changed().is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(tick: u64) -> WatchtowerSnapshot {
        WatchtowerSnapshot {
            tick,
            ..Default::default()
        }
    }

    #[test]
    fn the_latest_snapshot_wins() {
        let (publisher, reader) = telemetry_exchange();
        assert!(reader.latest().is_none());
        publisher.publish(snapshot(1));
        publisher.publish(snapshot(2));
        assert_eq!(reader.latest().unwrap().tick, 2);
    }

    #[test]
    fn readers_wake_on_publish_and_see_the_close() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (publisher, mut reader) = telemetry_exchange();
        rt.block_on(async {
            let waiter = tokio::spawn(async move {
                reader.changed().await.unwrap();
                let tick = reader.latest().unwrap().tick;
                (tick, reader.changed().await.is_err())
            });
            tokio::task::yield_now().await;
            publisher.publish(snapshot(7));
            tokio::task::yield_now().await;
            drop(publisher);
            let (tick, closed) = waiter.await.unwrap();
            assert_eq!(tick, 7);
            assert!(closed);
        });
    }
}
