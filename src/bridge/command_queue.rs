//! `CommandQueue`: the bounded queue of god-mode commands (spec §2.2).
//!
//! The server pushes with [`CommandSender::try_submit`], which never waits:
//! a full queue is refused at once. The engine drains everything queued at the
//! start of each tick (Phase 0) with [`CommandReceiver::drain_into`]. Every
//! command carries its own reply channel, so the caller gets the real
//! `GodResponse` once the engine has applied or rejected it.
//!
//! The queue is a `Mutex<VecDeque>` plus a `Condvar` rather than a channel
//! because the engine must be able to sleep between ticks and still wake at
//! once when the queue closes, without consuming a command early; no std or
//! crossbeam channel offers that. The lock is held only to push, or to swap
//! the whole queue out, so neither side ever waits on the other for long.

use std::{
    collections::VecDeque,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::sync::oneshot;

use crate::pb::{GodCommand, GodResponse};

/// Creates a command queue holding at most `capacity` commands.
pub fn command_queue(capacity: usize) -> (CommandSender, CommandReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(capacity),
            senders: 1,
            closed: false,
        }),
        wake: Condvar::new(),
        capacity: capacity.max(1),
    });
    (
        CommandSender {
            shared: Arc::clone(&shared),
        },
        CommandReceiver { shared },
    )
}

struct Shared {
    /// One short critical section per push or drain; never held across I/O.
    state: Mutex<State>,
    /// Wakes the engine from its pacing wait when the queue closes.
    wake: Condvar,
    capacity: usize,
}

struct State {
    queue: VecDeque<QueuedCommand>,
    /// Live `CommandSender`s; the queue closes when the last one goes.
    senders: usize,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue half-updated
        // (every critical section is a single push, swap or flag), so a
        // poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

/// A command waiting for Phase 0, with the channel its verdict goes back on.
#[derive(Debug)]
pub struct QueuedCommand {
    /// The command as the client sent it (with its id filled in).
    pub command: GodCommand,
    /// Where the verdict goes. Dropped unanswered, it tells the caller the
    /// engine went away.
    reply: Reply,
}

impl QueuedCommand {
    /// Sends the engine's verdict back to the caller at once (no audit log
    /// on disk, so there is nothing to wait for).
    ///
    /// Returns false if the caller is gone (cancelled, or its deadline
    /// passed). That is not an error: the command was still applied or
    /// rejected and audited, and the engine carries on.
    pub fn reply(self, response: GodResponse) -> bool {
        self.reply.send(response)
    }

    /// The reply channel alone, to hand to whoever answers once the outcome
    /// is on disk.
    pub fn into_reply(self) -> Reply {
        self.reply
    }
}

/// One caller's reply channel. It can leave the engine thread: the audit
/// writer answers once the outcome is durable.
#[derive(Debug)]
pub struct Reply(oneshot::Sender<Result<GodResponse, Unrecorded>>);

impl Reply {
    /// Acknowledges `response`; false if the caller is gone.
    pub fn send(self, response: GodResponse) -> bool {
        self.0.send(Ok(response)).is_ok()
    }

    /// Tells the caller its outcome could not be recorded; false if the
    /// caller is gone.
    pub fn fail(self, error: Unrecorded) -> bool {
        self.0.send(Err(error)).is_ok()
    }
}

/// The audit log could not record a command's outcome, so it is not
/// acknowledged. The engine did decide it: a retry with the same id returns
/// that outcome once the log works again.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the audit log cannot be written ({0}); retry later with the same command id")]
pub struct Unrecorded(pub String);

/// The server's half: submits commands and never blocks.
#[derive(Debug)]
pub struct CommandSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandQueue")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Why a command could not be queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue already holds `capacity` commands.
    #[error("the command queue is full ({capacity} commands waiting for the next tick)")]
    Full {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The engine has stopped draining the queue.
    #[error("the engine is not running")]
    Closed,
}

/// Why a queued command got no verdict.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The engine dropped the command without answering: it stopped first.
    #[error("the engine stopped before answering the command")]
    Dropped,
    /// The outcome could not be written to the audit log.
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
}

/// The caller's end of a queued command's reply channel.
#[derive(Debug)]
pub struct PendingReply(oneshot::Receiver<Result<GodResponse, Unrecorded>>);

impl PendingReply {
    /// Waits for Phase 0 to apply or reject the command (and, with an audit
    /// log on disk, for the outcome to be durable).
    pub async fn response(self) -> Result<GodResponse, ReplyError> {
        Ok(self.0.await.map_err(|_| ReplyError::Dropped)??)
    }
}

impl CommandSender {
    /// Queues `command` for the next Phase 0 without waiting.
    pub fn try_submit(&self, command: GodCommand) -> Result<PendingReply, SubmitError> {
        let (reply, rx) = oneshot::channel();
        let mut state = self.shared.lock();
        if state.closed {
            return Err(SubmitError::Closed);
        }
        if state.queue.len() >= self.shared.capacity {
            return Err(SubmitError::Full {
                capacity: self.shared.capacity,
            });
        }
        state.queue.push_back(QueuedCommand {
            command,
            reply: Reply(reply),
        });
        Ok(PendingReply(rx))
    }

    /// Commands waiting for the next Phase 0.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// True if no command is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most commands the queue holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Closes the queue for every sender: the engine stops at its next wait
    /// and later submissions fail with [`SubmitError::Closed`].
    pub fn close(&self) {
        self.shared.close();
    }
}

impl Clone for CommandSender {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for CommandSender {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.close();
        }
    }
}

/// The engine's half: drains commands in Phase 0.
#[derive(Debug)]
pub struct CommandReceiver {
    shared: Arc<Shared>,
}

impl CommandReceiver {
    /// Moves every queued command into `out`, oldest first.
    ///
    /// Takes the lock once; commands submitted after this call wait for the
    /// next tick.
    pub fn drain_into(&self, out: &mut Vec<QueuedCommand>) {
        let mut state = self.shared.lock();
        out.extend(state.queue.drain(..));
    }

    /// Commands waiting for the next Phase 0.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// True if no command is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once every sender is gone or [`CommandReceiver::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Closes the queue: later submissions fail with [`SubmitError::Closed`].
    pub fn close(&self) {
        self.shared.close();
    }

    /// Sleeps up to `timeout`, waking early only if the queue closes.
    /// Returns true if the queue is closed.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .wake
            .wait_timeout_while(state, timeout, |s| !s.closed)
            .unwrap_or_else(PoisonError::into_inner);
        state.closed
    }
}

impl Drop for CommandReceiver {
    fn drop(&mut self) {
        // Close first so nothing new arrives, then drop what is left: each
        // dropped reply channel tells its caller the engine is gone.
        let left = {
            let mut state = self.shared.lock();
            state.closed = true;
            std::mem::take(&mut state.queue)
        };
        self.shared.wake.notify_all();
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(id: &str) -> GodCommand {
        GodCommand {
            id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn refuses_past_capacity_and_keeps_what_it_accepted() {
        let (tx, rx) = command_queue(2);
        let _a = tx.try_submit(command("a")).unwrap();
        let _b = tx.try_submit(command("b")).unwrap();
        assert_eq!(
            tx.try_submit(command("c")).unwrap_err(),
            SubmitError::Full { capacity: 2 }
        );
        let mut out = Vec::new();
        rx.drain_into(&mut out);
        let ids: Vec<_> = out.iter().map(|q| q.command.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(tx.try_submit(command("d")).is_ok());
    }

    #[test]
    fn closes_when_the_last_sender_drops() {
        let (tx, rx) = command_queue(4);
        let tx2 = tx.clone();
        drop(tx);
        assert!(!rx.is_closed());
        drop(tx2);
        assert!(rx.wait_closed(Duration::from_secs(5)));
    }

    #[test]
    fn dropping_the_receiver_fails_pending_replies() {
        let (tx, rx) = command_queue(4);
        let pending = tx.try_submit(command("a")).unwrap();
        drop(rx);
        assert_eq!(
            tx.try_submit(command("b")).unwrap_err(),
            SubmitError::Closed
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(pending.response()).is_err());
    }

    #[test]
    fn a_reply_to_a_departed_caller_is_not_an_error() {
        let (tx, rx) = command_queue(4);
        drop(tx.try_submit(command("a")).unwrap());
        let mut out = Vec::new();
        rx.drain_into(&mut out);
        assert!(!out.pop().unwrap().reply(GodResponse::default()));
    }
}
