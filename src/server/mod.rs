//! The gRPC server: tonic services on the tokio runtime, off the engine thread.
//!
//! - [`service`]: `WatchtowerService` (commands, telemetry, parameters);
//! - [`error`]: every error the API returns, mapped to `tonic::Status` with
//!   rich details in one place;
//! - [`shutdown`]: the Ctrl-C / SIGTERM signal.
//!
//! The server knows only the bridge halves and the protobuf data that crosses
//! it, never the engine (the spec's dependency inversion). Nothing here may
//! block: every wait is an `.await` on the runtime.

pub mod error;
pub mod service;
pub mod shutdown;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

pub use service::WatchtowerApi;
pub use shutdown::shutdown_signal;

use crate::pb::{self, watchtower_service_server::WatchtowerServiceServer};

/// Everything one run of the server needs; cheap to clone, so a restarted
/// server gets the same bridge halves, health state and shutdown token.
#[derive(Clone)]
pub struct ServerParts {
    /// The API, holding the bridge halves.
    pub api: WatchtowerApi,
    /// `grpc.health.v1` statuses; they outlive a server restart.
    pub health: HealthReporter,
    /// Cancelled once, when the whole process shuts down.
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for ServerParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerParts").finish_non_exhaustive()
    }
}

const DESCRIPTORS_VALID: &str = "the embedded descriptor sets are valid";

/// Reflection over our API, health, and the `google.rpc` error details, so
/// grpcurl can decode the rich error details of a rejected command too.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Serves every service on `listener` until `parts.shutdown` is cancelled,
/// then stops accepting and waits for in-flight calls (telemetry streams end
/// themselves on the same token).
pub async fn serve(
    listener: TcpListener,
    parts: ServerParts,
) -> Result<(), tonic::transport::Error> {
    let reflection_v1 = reflection().build_v1().expect(DESCRIPTORS_VALID);
    let reflection_v1alpha = reflection().build_v1alpha().expect(DESCRIPTORS_VALID);
    let shutdown = parts.shutdown.clone();
    tonic::transport::Server::builder()
        .add_service(HealthServer::new(HealthService::from_health_reporter(
            parts.health,
        )))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(WatchtowerServiceServer::new(parts.api))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await
}
