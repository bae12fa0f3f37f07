//! Watchtower: a live gRPC control plane for a tick-based agent-based economy.
//!
//! The simulation engine ticks on its own blocking thread; a tonic server on a
//! tokio runtime sits in front of it. The two share exactly two bridge objects
//! (spec INT-01 §2.2, §3):
//!
//! ```text
//!  gRPC clients ──▶ server (tokio)                     engine thread (std)
//!                   ApplyCommand ──try_submit──▶ CommandQueue ──▶ Phase 0 Intercept
//!                        ▲                       (bounded 100)      GlobalRegistry + AuditLog
//!                        │                                           │ outcomes (mpsc)
//!                        └── GodResponse, once fsync'd ── audit writer thread (store)
//!                                                                  Phases 1–7: the economy
//!                                                                  (Settlement last)
//!                   SubscribeTelemetry ◀─load── TelemetryExchange ◀── Phase 8 Broadcast
//!                                               (one slot, latest wins)  digest, checkpoints,
//!                                                                        the snapshot (Arc)
//!                                                                        ──▶ store threads
//! ```
//!
//! Layout (engine | bridge | server):
//! - [`engine`]: the `SimulationEngine`, `TickScheduler`, `GlobalRegistry`,
//!   `AuditLog` and the economy. No tokio, tonic or hyper.
//! - [`bridge`]: the `CommandQueue` and `TelemetryExchange`, the only types
//!   both threads see.
//! - [`server`]: the tonic services, error mapping and shutdown. Knows only
//!   the bridge and the protobuf data that crosses it.
//! - [`store`]: durability: the run directory, the audit writer (group
//!   commit, replies only once durable), checkpoints, resume and replay,
//!   and the telemetry table (Parquet) with `watchtower export`. The engine
//!   reaches it only through the `Journal` trait.
//! - [`broker`]: scale-out over NATS: the engine node publishes snapshots
//!   and answers forwarded commands; `watchtower relay` serves the same API
//!   from the broker with no engine.
//! - [`app`]: the production wiring (spec §4.3): `SimulationServer` starts the
//!   engine thread and the server, supervises the server and stops both.
//! - [`config`]: command-line and environment settings.
//! - [`healthcheck`]: the `watchtower healthcheck` client.
//! - [`logging`]: the log, written off the engine's thread.
//! - [`priority`]: every thread but the engine's runs below it.
//! - [`pb`]: the generated `watchtower.v1` protobuf types and service stubs.

pub mod app;
pub mod bridge;
pub mod broker;
pub mod config;
pub mod engine;
pub mod healthcheck;
pub mod logging;
pub mod priority;
pub mod server;
pub mod store;

pub use app::{SimulationServer, StartError, run};
pub use config::Config;

/// The generated `watchtower.v1` messages and service stubs.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("watchtower.v1");
    include!(concat!(env!("OUT_DIR"), "/watchtower.v1.serde.rs"));

    /// The encoded descriptor set served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("watchtower_descriptor");
}
