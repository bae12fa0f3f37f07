//! The server: tonic services plus the browser and legacy paths, on the tokio
//! runtime, off the engine thread.
//!
//! - [`service`]: `WatchtowerService` (commands, telemetry, parameters);
//! - [`error`]: every error the API returns, mapped to `tonic::Status` with
//!   rich details in one place;
//! - [`hub`]: follows the exchange, encodes each snapshot once, keeps the
//!   history ring for late subscribers;
//! - [`web`]: gRPC-Web CORS and the embedded dashboard;
//! - [`ws`]: the legacy JSON WebSocket path;
//! - [`shutdown`]: the Ctrl-C / SIGTERM signal;
//! - [`access_log`]: one debug line per call, on every listener;
//! - [`metrics`]: Prometheus text at `/metrics`.
//!
//! One listener serves gRPC (HTTP/2), gRPC-Web (HTTP/1.1 and HTTP/2, binary
//! and text), the dashboard at `/` and the WebSocket at `/ws`. The server
//! knows only the bridge halves and the protobuf data that crosses it, never
//! the engine (the spec's dependency inversion). Nothing here may block.

pub mod access_log;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod web;
pub mod ws;

use axum::{Router, serve::ListenerExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tonic_web::GrpcWebLayer;
use tower_http::catch_panic::CatchPanicLayer;

pub use hub::TelemetryHub;
pub use service::WatchtowerApi;

/// The server-side rendering of `WatchtowerService`, in which telemetry
/// responses are pre-encoded frames (see [`hub::EncodedTelemetry`]). Clients
/// use [`crate::pb`], where the response is the ordinary message.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod encoded {
    include!(concat!(env!("OUT_DIR"), "/encoded/watchtower.v1.rs"));
}
pub use shutdown::shutdown_signal;

use self::encoded::watchtower_service_server::WatchtowerServiceServer;
use crate::pb;

/// Everything one run of the server needs; cheap to clone, so a restarted
/// server gets the same bridge halves, health state and shutdown token.
#[derive(Clone)]
pub struct ServerParts {
    /// The API, holding the bridge halves.
    pub api: WatchtowerApi,
    /// `grpc.health.v1` statuses; they outlive a server restart.
    pub health: HealthReporter,
    /// Extra origins allowed for browser calls.
    pub cors_origins: Vec<String>,
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

/// The main listener's routes: gRPC and gRPC-Web services, `/ws`, the
/// dashboard and `/metrics`.
pub fn router(parts: &ServerParts) -> Router {
    let grpc = Routes::builder()
        .add_service(HealthServer::new(HealthService::from_health_reporter(
            parts.health.clone(),
        )))
        .add_service(reflection().build_v1().expect(DESCRIPTORS_VALID))
        .add_service(reflection().build_v1alpha().expect(DESCRIPTORS_VALID))
        .add_service(WatchtowerServiceServer::new(parts.api.clone()))
        .clone()
        .routes()
        .prepare()
        .into_axum_router()
        .layer(GrpcWebLayer::new());
    grpc.merge(ws::routes(parts.api.clone(), &["/ws"]))
        .merge(web::dashboard())
        .merge(metrics::routes(parts.api.clone()))
        .layer(web::cors(&parts.cors_origins))
        // A bug in one handler answers that one call with an error; it never
        // takes the connection, the server or the engine down with it.
        .layer(CatchPanicLayer::new())
}

/// Serves `router` on `listener`, with the access log, until `shutdown` is
/// cancelled, then stops accepting and waits for open connections
/// (telemetry streams and WebSockets end themselves on the same token).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Telemetry frames are small and latency matters more than packing.
        let _ = tcp.set_nodelay(true);
    });
    let app = router
        .layer(access_log::layer())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
