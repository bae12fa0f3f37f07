//! The bridge: the only objects the engine thread and the server share.
//!
//! Exactly two live objects cross the thread boundary (spec §2.2):
//! - [`command_queue`]: a bounded, never-blocking queue of god-mode commands,
//!   filled by the server and drained by the engine in Phase 0;
//! - [`telemetry_exchange`]: a single slot holding the latest snapshot,
//!   overwritten by the engine in Phase 8 and read by the server.
//!
//! Each constructor hands out paired halves, so each side holds only the half
//! it may use. Nothing here knows the engine's internals or the network; the
//! data that crosses is the protobuf `GodCommand`, `GodResponse` and
//! `WatchtowerSnapshot` (the spec's DTOs).

mod command_queue;
mod telemetry_exchange;

pub use command_queue::{
    Abandoned, CommandOrigin, CommandReceiver, CommandSender, PendingReply, QUEUE_SHARE_DIVISOR,
    QueuedCommand, RemoteStatus, Reply, ReplyError, Request, SubmitError, Unrecorded,
    command_queue,
};
pub use telemetry_exchange::{
    ExchangeClosed, TelemetryPublisher, TelemetryReader, telemetry_exchange,
};

/// The spec's default capacity of the command queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100;
