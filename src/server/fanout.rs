//! The fan-out's turns: subscribers are woken one group at a time, so a
//! command never waits behind a whole round of telemetry.
//!
//! Tokio serves its runnable tasks roughly in turn. Were every subscriber
//! woken at once by a publish (10,000 streams, about 0.1 s of CPU), a
//! command arriving just after would wait behind all of them; with the
//! network short of CPU the queue never empties and commands wait seconds.
//! So subscribers are split into [`SHARDS`] groups by connection (a
//! connection's streams are woken together, so its writes are batched), and
//! the hub opens one group at a time, moving on once that group's woken
//! streams have been polled (or after [`MAX_TURN`]). A command then waits
//! behind one group, not all. When the network is short of CPU, the turns
//! come round more slowly and each stream gets the newest snapshot later:
//! telemetry gives way, latest wins, and commands keep their turn.
//!
//! Each group has two gates: `fresh`, where streams wait for a snapshot
//! newer than their last, and `ready`, where a stream whose interval has
//! run out waits for its group's next turn. A parked stream holds a guard
//! that accounts for it if it is dropped, so a cancelled wait never stalls
//! a turn. Runs on the tokio runtime.

use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How many groups subscribers are woken in.
pub const SHARDS: usize = 64;
/// The longest the hub waits for one group's streams before the next turn.
pub const MAX_TURN: Duration = Duration::from_millis(20);

/// The groups, and the hub's signal that a stream is ready.
#[derive(Debug)]
pub struct Fanout {
    shards: Vec<Shard>,
    /// Notified when a stream parks at a `ready` gate.
    work: Notify,
    /// Set when the hub stops: read by every stream on every loop, so an
    /// atomic rather than the token (whose check takes a lock).
    closed: AtomicBool,
    /// Cancelled when the hub stops, for streams waiting out an interval.
    stopped: CancellationToken,
}

/// One group of subscribers.
#[derive(Debug, Default)]
struct Shard {
    fresh: Gate,
    ready: Gate,
}

/// Where a group's streams wait for their turn.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    open: Notify,
}

#[derive(Debug, Default)]
struct GateState {
    /// Counts openings; a stream parked in round `r` is woken by the
    /// opening that ends it.
    round: u64,
    /// Streams waiting for the next opening.
    parked: usize,
    /// The newest publication offered through this gate (`fresh` only).
    offered: u64,
    /// The turn of the last opening, which the streams it woke report to.
    turn: Option<Arc<Turn>>,
}

/// One opening's woken streams, counted down as each is polled.
#[derive(Debug, Default)]
struct Turn {
    left: AtomicUsize,
    done: Notify,
}

impl Turn {
    fn finish_one(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    /// Waits until every woken stream has been polled, at most `MAX_TURN`.
    async fn wait(&self) {
        let _ = tokio::time::timeout(MAX_TURN, async {
            while self.left.load(Ordering::Acquire) > 0 {
                self.done.notified().await;
            }
        })
        .await;
    }
}

/// Groups with no one parked, open until [`Fanout::close`].
impl Default for Fanout {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            work: Notify::new(),
            closed: AtomicBool::new(false),
            stopped: CancellationToken::new(),
        }
    }
}

impl Fanout {
    /// The group of a stream on connection `key`.
    pub fn shard_of(key: u64) -> usize {
        (key % SHARDS as u64) as usize
    }

    /// Parks a stream of `shard` that has sent publication `last_sent` until
    /// its group is offered a newer one. Returns at once if it already has
    /// been, or if the hub has stopped. Cancel-safe.
    pub async fn fresh(&self, shard: usize, last_sent: u64) {
        let gate = &self.shards[shard].fresh;
        gate.pass(&self.closed, |state| state.offered > last_sent, || {})
            .await;
    }

    /// Parks a stream of `shard` that may send until its group's next turn,
    /// and tells the hub. Cancel-safe.
    pub async fn ready(&self, shard: usize) {
        // The hub is told only once the stream is parked: told first, it
        // could open the gate before the stream reached it, and with no
        // further publication (a paused engine) never open it again.
        self.shards[shard]
            .ready
            .pass(&self.closed, |_| false, || self.work.notify_one())
            .await;
    }

    /// Cancelled when the hub stops.
    pub fn stopped(&self) -> &CancellationToken {
        &self.stopped
    }

    /// True once the hub has stopped.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Waits until some stream is ready (or returns at once if one became
    /// ready since the last call).
    pub async fn work(&self) {
        self.work.notified().await;
    }

    /// One turn for every group: offers publication `newest` to the
    /// group's `fresh` streams and lets its `ready` ones go, then waits for
    /// them to be polled. Returns how many streams it woke.
    pub async fn pass(&self, newest: u64) -> usize {
        let mut woken = 0;
        for shard in &self.shards {
            if self.is_closed() {
                break;
            }
            let turn = Arc::new(Turn::default());
            let n = shard.fresh.open(&turn, Some(newest)) + shard.ready.open(&turn, None);
            if n > 0 {
                woken += n;
                turn.wait().await;
            }
        }
        woken
    }

    /// Wakes every parked stream for good; they see the hub has stopped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stopped.cancel();
        for shard in &self.shards {
            for gate in [&shard.fresh, &shard.ready] {
                let _state = gate.lock();
                gate.open.notify_waiters();
            }
        }
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the next opening, unless `passed` already holds (or the
    /// hub stopped); `parked` runs once the stream is counted as waiting.
    async fn pass(
        &self,
        closed: &AtomicBool,
        passed: impl Fn(&GateState) -> bool,
        parked: impl FnOnce(),
    ) {
        let opened = self.open.notified();
        tokio::pin!(opened);
        let guard = {
            let mut state = self.lock();
            if passed(&state) || closed.load(Ordering::Acquire) {
                return;
            }
            opened.as_mut().enable();
            state.parked += 1;
            Parked {
                gate: self,
                round: state.round,
            }
        };
        parked();
        opened.await;
        drop(guard);
    }

    /// Wakes every parked stream, counting them into `turn`; `offer` is a
    /// newer publication for a `fresh` gate. Returns how many it woke.
    fn open(&self, turn: &Arc<Turn>, offer: Option<u64>) -> usize {
        let mut state = self.lock();
        if let Some(seq) = offer {
            if seq <= state.offered {
                // Its streams have had this publication already.
                return 0;
            }
            state.offered = seq;
        }
        let n = state.parked;
        if n == 0 {
            return 0;
        }
        state.parked = 0;
        state.round += 1;
        turn.left.fetch_add(n, Ordering::AcqRel);
        state.turn = Some(Arc::clone(turn));
        self.open.notify_waiters();
        n
    }
}

/// A stream parked at a gate; dropping it (woken, or cancelled) settles
/// its account.
struct Parked<'a> {
    gate: &'a Gate,
    round: u64,
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        if state.round == self.round {
            // Cancelled before its turn.
            state.parked -= 1;
        } else if state.round == self.round + 1
            && let Some(turn) = &state.turn
        {
            turn.finish_one();
        }
        // Otherwise the hub has long moved on from the turn that woke it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_waits_for_the_streams_it_woke() {
        let fanout = Arc::new(Fanout::default());
        let parked = {
            let fanout = Arc::clone(&fanout);
            tokio::spawn(async move { fanout.fresh(3, 0).await })
        };
        while fanout.shards[3].fresh.lock().parked == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(fanout.pass(1).await, 1);
        parked.await.unwrap();
        // Offered already: passes without waiting.
        fanout.fresh(3, 0).await;
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_one_parked() {
        let fanout = Fanout::default();
        let wait = fanout.ready(5);
        let cancelled = tokio::time::timeout(Duration::from_millis(5), wait).await;
        assert!(cancelled.is_err());
        assert_eq!(fanout.shards[5].ready.lock().parked, 0);
        assert_eq!(fanout.pass(1).await, 0);
    }

    #[tokio::test]
    async fn closing_releases_every_stream() {
        let fanout = Arc::new(Fanout::default());
        let parked = {
            let fanout = Arc::clone(&fanout);
            tokio::spawn(async move { fanout.ready(0).await })
        };
        while fanout.shards[0].ready.lock().parked == 0 {
            tokio::task::yield_now().await;
        }
        fanout.close();
        parked.await.unwrap();
        fanout.ready(0).await;
    }
}
