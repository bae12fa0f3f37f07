//! `CommandQueue`: the bounded queue of god-mode commands (spec §2.2).
//!
//! The server pushes with [`CommandSender::try_submit`], which never waits:
//! a full queue is refused at once. The engine drains everything queued at the
//! start of each tick (Phase 0) with [`CommandReceiver::drain_into`]. Every
//! command carries its own reply channel, so the caller gets the real
//! `GodResponse` once the engine has applied or rejected it.
//!
//! No one connection or named principal may hold more than a share of the
//! queue ([`QUEUE_SHARE_DIVISOR`]), so one client that floods cannot keep an
//! operator's command out. Each command also carries its caller's deadline;
//! the engine does not apply a command whose caller has given up.
//!
//! The queue is a `Mutex<VecDeque>` plus a `Condvar` rather than a channel
//! because the engine must be able to sleep between ticks and still wake at
//! once when the queue closes, without consuming a command early; no std or
//! crossbeam channel offers that. The lock is held only to push, or to swap
//! the whole queue out, so neither side ever waits on the other for long.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use crate::pb::{
    ControlEngineResponse, GodCommand, GodResponse, ScheduledCommand,
    control_engine_request::Action,
};

/// Creates a command queue holding at most `capacity` commands.
pub fn command_queue(capacity: usize) -> (CommandSender, CommandReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(capacity),
            held_by_connection: HashMap::new(),
            held_by_principal: HashMap::new(),
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

/// One holder may hold at most `capacity / QUEUE_SHARE_DIVISOR` queued
/// commands (at least one), so a second client always finds room.
pub const QUEUE_SHARE_DIVISOR: usize = 2;

struct State {
    queue: VecDeque<QueuedCommand>,
    /// Queued commands per connection; entries go when they reach zero, so
    /// the maps never hold more entries than the queue does.
    held_by_connection: HashMap<u64, usize>,
    /// Queued commands per named principal (anonymous callers are told apart
    /// by connection only).
    held_by_principal: HashMap<Arc<str>, usize>,
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

/// Who sent a command, over which connection, and until when they wait.
#[derive(Debug, Clone)]
pub struct CommandOrigin {
    /// The principal's name, recorded in the audit log.
    pub principal: Arc<str>,
    /// True for a principal named by a token: it has a share of its own.
    pub named: bool,
    /// The connection the command came on.
    pub connection: u64,
    /// When the caller stops waiting; past it the command is not applied.
    pub deadline: Option<Instant>,
}

/// Why Phase 0 will not apply a queued command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// The caller's deadline passed.
    Expired,
    /// The caller went away (cancelled, or its connection closed).
    Cancelled,
}

/// What a queued item asks Phase 0 to do.
#[derive(Debug, Clone)]
pub enum Request {
    /// Set one parameter (the command as the client sent it, its id filled in).
    Command(GodCommand),
    /// Set several parameters in one Phase 0, all or nothing; or, with
    /// `validate_only`, check them (one or many) and change nothing.
    Batch {
        /// The commands, in order, their ids filled in.
        commands: Vec<GodCommand>,
        /// Check only: nothing is changed or audited.
        validate_only: bool,
    },
    /// Drop a scheduled command; answered with its audit entry.
    Cancel {
        /// The scheduled command's id.
        command_id: String,
    },
    /// List the scheduled commands; changes nothing.
    ListScheduled,
    /// Set a parameter back to the old value an applied command replaced.
    Revert {
        /// The new command's id, assigned by the server.
        id: String,
        /// The command to revert.
        command_id: String,
    },
    /// Pause, resume, step or re-pace the engine.
    Control {
        /// The audit entry's id, assigned by the server.
        id: String,
        /// The action.
        action: Action,
    },
}

/// A command or control action waiting for Phase 0, with the channel its
/// verdict goes back on. Both kinds share the queue, so a control action
/// waits its turn behind the commands before it and takes one slot.
#[derive(Debug)]
pub struct QueuedCommand {
    /// What is asked.
    pub request: Request,
    /// Who sent it.
    pub origin: CommandOrigin,
    /// Where the verdict goes. Dropped unanswered, it tells the caller the
    /// engine went away.
    reply: Reply,
}

impl QueuedCommand {
    /// Whether the caller has given up on this command by `now`.
    pub fn abandoned(&self, now: Instant) -> Option<Abandoned> {
        if self.origin.deadline.is_some_and(|deadline| now >= deadline) {
            Some(Abandoned::Expired)
        } else if self.reply.is_closed() {
            Some(Abandoned::Cancelled)
        } else {
            None
        }
    }

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

    /// The request and the reply channel, apart.
    pub fn into_parts(self) -> (Request, Reply) {
        (self.request, self.reply)
    }
}

/// One caller's reply channel. It can leave the engine thread: the audit
/// writer answers once the outcome is durable.
#[derive(Debug)]
pub struct Reply(ReplyTo);

/// A command's caller wants its `GodResponse`; a control action's caller
/// wants the run state, which the engine attaches before handing it over.
#[derive(Debug)]
enum ReplyTo {
    Command(oneshot::Sender<Result<GodResponse, ReplyError>>),
    Control {
        tx: oneshot::Sender<Result<ControlEngineResponse, ReplyError>>,
        status: ControlEngineResponse,
    },
    Batch {
        tx: oneshot::Sender<Result<Vec<GodResponse>, ReplyError>>,
        responses: Vec<GodResponse>,
    },
    Listing(oneshot::Sender<Result<Vec<ScheduledCommand>, ReplyError>>),
}

impl Reply {
    /// Acknowledges `response` (for a control action: the run state
    /// attached with [`Reply::with_status`]); false if the caller is gone.
    pub fn send(self, response: GodResponse) -> bool {
        match self.0 {
            ReplyTo::Command(tx) => tx.send(Ok(response)).is_ok(),
            ReplyTo::Control { tx, status } => tx.send(Ok(status)).is_ok(),
            ReplyTo::Batch { tx, responses } => tx.send(Ok(responses)).is_ok(),
            ReplyTo::Listing(tx) => tx.send(Ok(Vec::new())).is_ok(),
        }
    }

    /// Answers a `ListScheduled` request; false for any other reply.
    pub fn send_listing(self, listing: Vec<ScheduledCommand>) -> bool {
        match self.0 {
            ReplyTo::Listing(tx) => tx.send(Ok(listing)).is_ok(),
            _ => false,
        }
    }

    /// Answers with `responses`: all of them to a batch's caller, the first
    /// to a single command's.
    pub fn send_all(self, mut responses: Vec<GodResponse>) -> bool {
        match self.0 {
            ReplyTo::Batch { tx, .. } => tx.send(Ok(responses)).is_ok(),
            _ if responses.is_empty() => false,
            _ => self.send(responses.swap_remove(0)),
        }
    }

    /// Sets the responses a batch's caller gets when the last one is
    /// durable; other replies are unchanged.
    pub fn with_responses(mut self, all: Vec<GodResponse>) -> Self {
        if let ReplyTo::Batch { responses, .. } = &mut self.0 {
            *responses = all;
        }
        self
    }

    /// Sets the run state a control action's caller gets; a command's reply
    /// is unchanged.
    pub fn with_status(mut self, run: ControlEngineResponse) -> Self {
        if let ReplyTo::Control { status, .. } = &mut self.0 {
            *status = run;
        }
        self
    }

    /// Answers a control action's caller with `run` at once.
    pub fn send_status(self, run: ControlEngineResponse) -> bool {
        self.with_status(run).send(GodResponse::default())
    }

    /// Tells the caller there is no verdict (its outcome could not be
    /// recorded, or the engine node behind a relay did not answer); false if
    /// the caller is gone.
    pub fn fail(self, error: impl Into<ReplyError>) -> bool {
        let error = error.into();
        match self.0 {
            ReplyTo::Command(tx) => tx.send(Err(error)).is_ok(),
            ReplyTo::Control { tx, .. } => tx.send(Err(error)).is_ok(),
            ReplyTo::Batch { tx, .. } => tx.send(Err(error)).is_ok(),
            ReplyTo::Listing(tx) => tx.send(Err(error)).is_ok(),
        }
    }

    fn is_closed(&self) -> bool {
        match &self.0 {
            ReplyTo::Command(tx) => tx.is_closed(),
            ReplyTo::Control { tx, .. } => tx.is_closed(),
            ReplyTo::Batch { tx, .. } => tx.is_closed(),
            ReplyTo::Listing(tx) => tx.is_closed(),
        }
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
    /// The sender already holds its share of the queue.
    #[error(
        "this {holder} already holds {share} queued commands, its share of the queue; wait for their answers"
    )]
    OverShare {
        /// "connection" or "principal".
        holder: &'static str,
        /// The share.
        share: usize,
    },
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
    /// A relay could not reach the engine node (broker down, no engine
    /// node, or no answer in time).
    #[error("the engine node cannot be reached: {0}")]
    Unreachable(String),
    /// The engine node behind a relay refused the call; its status as it
    /// would have answered a local caller.
    #[error("{}", .0.message)]
    Remote(RemoteStatus),
}

/// A gRPC status as plain data, so it can cross the broker and the bridge
/// without either knowing tonic: the relay returns exactly what the engine
/// node's own error mapping produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStatus {
    /// The gRPC status code, as a number.
    pub code: i32,
    /// The status message.
    pub message: String,
    /// The encoded `google.rpc.Status` details (BadRequest, ErrorInfo, …).
    pub details: Vec<u8>,
}

/// The caller's end of a queued item's reply channel: a `GodResponse` for a
/// command, a `ControlEngineResponse` for a control action.
#[derive(Debug)]
pub struct PendingReply<T = GodResponse>(oneshot::Receiver<Result<T, ReplyError>>);

impl<T> PendingReply<T> {
    /// Waits for Phase 0 to apply or reject the command (and, with an audit
    /// log on disk, for the outcome to be durable).
    pub async fn response(self) -> Result<T, ReplyError> {
        self.0.await.map_err(|_| ReplyError::Dropped)?
    }
}

impl CommandSender {
    /// Queues `command` for the next Phase 0 without waiting.
    pub fn try_submit(
        &self,
        command: GodCommand,
        origin: CommandOrigin,
    ) -> Result<PendingReply, SubmitError> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply(ReplyTo::Command(tx));
        self.push(Request::Command(command), origin, reply)?;
        Ok(PendingReply(rx))
    }

    /// Queues `command` to be checked, not applied, by the next Phase 0.
    pub fn try_validate(
        &self,
        command: GodCommand,
        origin: CommandOrigin,
    ) -> Result<PendingReply, SubmitError> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply(ReplyTo::Command(tx));
        let request = Request::Batch {
            commands: vec![command],
            validate_only: true,
        };
        self.push(request, origin, reply)?;
        Ok(PendingReply(rx))
    }

    /// Queues a batch for the next Phase 0 without waiting; it takes one
    /// slot.
    pub fn try_batch(
        &self,
        commands: Vec<GodCommand>,
        validate_only: bool,
        origin: CommandOrigin,
    ) -> Result<PendingReply<Vec<GodResponse>>, SubmitError> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply(ReplyTo::Batch {
            tx,
            responses: Vec::new(),
        });
        let request = Request::Batch {
            commands,
            validate_only,
        };
        self.push(request, origin, reply)?;
        Ok(PendingReply(rx))
    }

    /// Queues the cancellation of scheduled command `command_id`.
    pub fn try_cancel(
        &self,
        command_id: String,
        origin: CommandOrigin,
    ) -> Result<PendingReply, SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.push(
            Request::Cancel { command_id },
            origin,
            Reply(ReplyTo::Command(tx)),
        )?;
        Ok(PendingReply(rx))
    }

    /// Queues the revert of command `command_id`, as a new command `id`.
    pub fn try_revert(
        &self,
        id: String,
        command_id: String,
        origin: CommandOrigin,
    ) -> Result<PendingReply, SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.push(
            Request::Revert { id, command_id },
            origin,
            Reply(ReplyTo::Command(tx)),
        )?;
        Ok(PendingReply(rx))
    }

    /// Asks the next Phase 0 for the scheduled commands.
    pub fn try_list_scheduled(
        &self,
        origin: CommandOrigin,
    ) -> Result<PendingReply<Vec<ScheduledCommand>>, SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.push(Request::ListScheduled, origin, Reply(ReplyTo::Listing(tx)))?;
        Ok(PendingReply(rx))
    }

    /// Queues a control action for the next Phase 0 without waiting; it
    /// takes one slot like a command.
    pub fn try_control(
        &self,
        id: String,
        action: Action,
        origin: CommandOrigin,
    ) -> Result<PendingReply<ControlEngineResponse>, SubmitError> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply(ReplyTo::Control {
            tx,
            status: ControlEngineResponse::default(),
        });
        self.push(Request::Control { id, action }, origin, reply)?;
        Ok(PendingReply(rx))
    }

    fn push(
        &self,
        request: Request,
        origin: CommandOrigin,
        reply: Reply,
    ) -> Result<(), SubmitError> {
        let share = self.share();
        let mut state = self.shared.lock();
        if state.closed {
            return Err(SubmitError::Closed);
        }
        if state.queue.len() >= self.shared.capacity {
            return Err(SubmitError::Full {
                capacity: self.shared.capacity,
            });
        }
        let over = |holder| SubmitError::OverShare { holder, share };
        if held(&state.held_by_connection, &origin.connection) >= share {
            return Err(over("connection"));
        }
        if origin.named && held(&state.held_by_principal, &origin.principal) >= share {
            return Err(over("principal"));
        }
        *state
            .held_by_connection
            .entry(origin.connection)
            .or_default() += 1;
        if origin.named {
            *state
                .held_by_principal
                .entry(Arc::clone(&origin.principal))
                .or_default() += 1;
        }
        state.queue.push_back(QueuedCommand {
            request,
            origin,
            reply,
        });
        drop(state);
        // A paused engine sleeps until something arrives.
        self.shared.wake.notify_all();
        Ok(())
    }

    /// The most commands one holder may have queued.
    pub fn share(&self) -> usize {
        (self.shared.capacity / QUEUE_SHARE_DIVISOR).max(1)
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
        let State {
            queue,
            held_by_connection,
            held_by_principal,
            ..
        } = &mut *state;
        for queued in queue.drain(..) {
            release(held_by_connection, &queued.origin.connection);
            if queued.origin.named {
                release(held_by_principal, &queued.origin.principal);
            }
            out.push(queued);
        }
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

    /// Sleeps until something is queued or the queue closes; false once it
    /// is closed. A paused engine waits here between its Phase 0 runs.
    pub fn wait_for_work(&self) -> bool {
        let state = self.shared.lock();
        let state = self
            .shared
            .wake
            .wait_while(state, |s| s.queue.is_empty() && !s.closed)
            .unwrap_or_else(PoisonError::into_inner);
        !state.closed
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

fn held<K: Hash + Eq>(counts: &HashMap<K, usize>, key: &K) -> usize {
    counts.get(key).copied().unwrap_or(0)
}

fn release<K: Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
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

    fn from(connection: u64, principal: Option<&str>) -> CommandOrigin {
        CommandOrigin {
            principal: principal.unwrap_or("anonymous").into(),
            named: principal.is_some(),
            connection,
            deadline: None,
        }
    }

    fn submit(tx: &CommandSender, id: &str) -> Result<PendingReply, SubmitError> {
        tx.try_submit(command(id), from(u64::from(id.as_bytes()[0]), None))
    }

    #[test]
    fn no_connection_holds_more_than_its_share() {
        let (tx, rx) = command_queue(4);
        let _a = tx.try_submit(command("a"), from(1, None)).unwrap();
        let _b = tx.try_submit(command("b"), from(1, None)).unwrap();
        assert_eq!(
            tx.try_submit(command("c"), from(1, None)).unwrap_err(),
            SubmitError::OverShare {
                holder: "connection",
                share: 2
            }
        );
        assert!(tx.try_submit(command("d"), from(2, None)).is_ok());
        let mut out = Vec::new();
        rx.drain_into(&mut out);
        assert!(tx.try_submit(command("e"), from(1, None)).is_ok());
    }

    #[test]
    fn no_named_principal_holds_more_than_its_share_over_many_connections() {
        let (tx, _rx) = command_queue(4);
        let _a = tx.try_submit(command("a"), from(1, Some("ops"))).unwrap();
        let _b = tx.try_submit(command("b"), from(2, Some("ops"))).unwrap();
        assert_eq!(
            tx.try_submit(command("c"), from(3, Some("ops")))
                .unwrap_err(),
            SubmitError::OverShare {
                holder: "principal",
                share: 2
            }
        );
        assert!(tx.try_submit(command("d"), from(3, Some("other"))).is_ok());
        assert!(tx.try_submit(command("e"), from(4, None)).is_ok());
    }

    #[test]
    fn a_command_past_its_deadline_or_without_a_caller_is_abandoned() {
        let (tx, rx) = command_queue(4);
        let mut expired = from(1, None);
        expired.deadline = Some(Instant::now());
        let _kept = tx.try_submit(command("a"), expired).unwrap();
        drop(tx.try_submit(command("b"), from(2, None)).unwrap());
        let _live = tx.try_submit(command("c"), from(3, None)).unwrap();
        let mut out = Vec::new();
        rx.drain_into(&mut out);
        let now = Instant::now();
        let verdicts: Vec<_> = out.iter().map(|q| q.abandoned(now)).collect();
        assert_eq!(
            verdicts,
            [Some(Abandoned::Expired), Some(Abandoned::Cancelled), None]
        );
    }

    #[test]
    fn refuses_past_capacity_and_keeps_what_it_accepted() {
        let (tx, rx) = command_queue(2);
        let _a = submit(&tx, "a").unwrap();
        let _b = submit(&tx, "b").unwrap();
        assert_eq!(
            submit(&tx, "c").unwrap_err(),
            SubmitError::Full { capacity: 2 }
        );
        let mut out = Vec::new();
        rx.drain_into(&mut out);
        let ids: Vec<_> = out
            .iter()
            .map(|q| match &q.request {
                Request::Command(c) => c.id.as_str(),
                Request::Control { id, .. } => id.as_str(),
                Request::Batch { commands, .. } => commands[0].id.as_str(),
                Request::Cancel { command_id } => command_id.as_str(),
                Request::ListScheduled => "",
                Request::Revert { id, .. } => id.as_str(),
            })
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(submit(&tx, "d").is_ok());
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
        let pending = submit(&tx, "a").unwrap();
        drop(rx);
        assert_eq!(submit(&tx, "b").unwrap_err(), SubmitError::Closed);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(pending.response()).is_err());
    }

    #[test]
    fn a_reply_to_a_departed_caller_is_not_an_error() {
        let (tx, rx) = command_queue(4);
        drop(submit(&tx, "a").unwrap());
        let mut out = Vec::new();
        rx.drain_into(&mut out);
        assert!(!out.pop().unwrap().reply(GodResponse::default()));
    }
}
