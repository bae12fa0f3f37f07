//! The server: tonic services plus the browser and legacy paths, on the tokio
//! runtime, off the engine thread.
//!
//! - [`service`]: `WatchtowerService` (commands, telemetry, parameters);
//! - [`error`]: every error the API returns, mapped to `tonic::Status` with
//!   rich details in one place;
//! - [`auth`]: tokens, principals and roles, enforced by one middleware;
//! - [`layers`]: the middleware as plain tower layers (checks, gRPC-Web
//!   switch, one message per request);
//! - [`origin`]: the origin and `Host` rules for every browser path;
//! - [`limits`]: every bound a client can hit on the API;
//! - [`transport`]: the accept loop, TLS and connection limits;
//! - `faults`: injected failures for the reliability tests (only with the
//!   `fault-injection` feature);
//! - [`hub`]: follows the exchange, encodes each snapshot once, keeps the
//!   history ring for late subscribers;
//! - [`web`]: the embedded dashboard;
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
pub mod auth;
pub mod error;
pub mod fanout;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod framed;
pub mod hub;
pub mod lanes;
pub mod layers;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod service;
pub mod shutdown;
pub mod transport;
pub mod web;
pub mod ws;

use std::sync::Arc;

use axum::{Router, body::Body, http};
use tonic::service::Routes;
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tonic_web::GrpcWebLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

pub use hub::TelemetryHub;
pub use service::{ApiOptions, AuditSource, RemoteAudit, RunView, WatchtowerApi};
pub use transport::{Transport, serve};

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
    /// The origin and host rules for browser calls.
    pub origins: Arc<origin::OriginPolicy>,
    /// Tokens to principals, for the auth guard.
    pub authenticator: Arc<auth::Authenticator>,
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
/// dashboard and `/metrics`, behind the origin guard, CORS and the auth guard.
pub fn router(parts: &ServerParts) -> Router {
    let api = WatchtowerServiceServer::new(parts.api.clone())
        .max_decoding_message_size(limits::MAX_REQUEST_BYTES);
    let grpc = Routes::builder()
        .add_service(HealthServer::new(HealthService::from_health_reporter(
            parts.health.clone(),
        )))
        .add_service(reflection().build_v1().expect(DESCRIPTORS_VALID))
        .add_service(reflection().build_v1alpha().expect(DESCRIPTORS_VALID))
        .add_service(api)
        .clone()
        .routes()
        .prepare()
        .into_axum_router()
        // Ahead of the generated handler for this one method: its frames go
        // out as the hub encoded them.
        .route(framed::PATH, framed::route(parts.api.clone()));
    // The same checks on both paths; inside the gRPC-Web layer, so their
    // refusals reach browsers as gRPC-Web statuses.
    let checks = ServiceBuilder::new()
        .layer(parts.auth(&[]))
        .layer(layers::OneMessageLayer);
    let web = grpc.clone().layer(
        ServiceBuilder::new()
            .layer(GrpcWebLayer::new())
            .map_request(|request: http::Request<tonic::body::Body>| request.map(Body::new))
            .layer(checks.clone()),
    );
    let grpc = grpc.layer(
        ServiceBuilder::new()
            .layer(layers::PlainOrWebLayer::new(web))
            .layer(checks),
    );
    let ws = ws::routes(parts.api.clone(), &["/ws"]).layer(parts.auth(&[]));
    let metrics = metrics::routes(parts.api.clone()).layer(parts.auth(&[]));
    browser_safe(grpc.merge(ws).merge(web::dashboard()).merge(metrics), parts)
}

/// The legacy listener's routes: the WebSocket at `/` and `/ws`.
pub fn legacy_router(parts: &ServerParts) -> Router {
    let ws = ws::routes(parts.api.clone(), &["/", "/ws"]).layer(parts.auth(&["/"]));
    browser_safe(ws, parts)
}

/// The layers every listener has: CORS, the origin guard, the access log,
/// and containment of handler panics.
fn browser_safe(router: Router, parts: &ServerParts) -> Router {
    let guarded = router.layer(
        ServiceBuilder::new()
            .layer(layers::CheckLayer::new(Arc::clone(&parts.origins)))
            .layer(parts.origins.cors()),
    );
    access_log::around(guarded)
        // A bug in one handler answers that one call with an error; it never
        // takes the connection, the server or the engine down with it.
        .layer(CatchPanicLayer::new())
}

impl ServerParts {
    /// The auth check, for a listener whose WebSocket is at
    /// `websocket_paths`.
    fn auth(
        &self,
        websocket_paths: &'static [&'static str],
    ) -> layers::CheckLayer<auth::AuthState> {
        layers::CheckLayer::new(Arc::new(auth::AuthState {
            authenticator: Arc::clone(&self.authenticator),
            websocket_paths,
        }))
    }
}
