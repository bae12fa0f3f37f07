//! The server: tonic services plus the browser and legacy paths, on the tokio
//! runtime, off the engine thread.
//!
//! - [`service`]: `WatchtowerService` (commands, telemetry, parameters);
//! - [`error`]: every error the API returns, mapped to `tonic::Status` with
//!   rich details in one place;
//! - [`auth`]: tokens, principals and roles, enforced by one middleware;
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
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod service;
pub mod shutdown;
pub mod transport;
pub mod web;
pub mod ws;

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    http::{Version, header::CONTENT_TYPE},
    middleware::{Next, from_fn, from_fn_with_state},
    response::Response,
};
use tonic::service::Routes;
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tonic_web::GrpcWebLayer;
use tower::ServiceExt;
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
        .route(framed::PATH, framed::route(parts.api.clone()))
        .layer(from_fn(limits::one_message))
        // Inside the gRPC-Web layer, so its refusals reach browsers as
        // gRPC-Web statuses.
        .layer(from_fn_with_state(parts.auth_state(&[]), auth::guard));
    let grpc = with_grpc_web(grpc);
    let ws = ws::routes(parts.api.clone(), &["/ws"])
        .layer(from_fn_with_state(parts.auth_state(&[]), auth::guard));
    let metrics = metrics::routes(parts.api.clone())
        .layer(from_fn_with_state(parts.auth_state(&[]), auth::guard));
    browser_safe(grpc.merge(ws).merge(web::dashboard()).merge(metrics), parts)
}

/// `grpc` with tonic-web's translation for the requests that need it.
/// Plain gRPC over HTTP/2, which tonic-web passes through, goes around it:
/// passing through still wraps every response in two more boxed bodies, and
/// every telemetry message crossed both.
fn with_grpc_web(grpc: Router) -> Router {
    let web = grpc.clone().layer(GrpcWebLayer::new());
    grpc.layer(from_fn_with_state(web, plain_or_web))
}

/// Plain gRPC (HTTP/2, `application/grpc…` but not `application/grpc-web…`)
/// goes straight on; everything else goes through tonic-web as before,
/// which translates gRPC-Web and refuses what is neither.
async fn plain_or_web(State(web): State<Router>, request: Request, next: Next) -> Response {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let plain = request.version() == Version::HTTP_2
        && content_type.starts_with("application/grpc")
        && !content_type.starts_with("application/grpc-web");
    if plain {
        next.run(request).await
    } else {
        match web.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The legacy listener's routes: the WebSocket at `/` and `/ws`.
pub fn legacy_router(parts: &ServerParts) -> Router {
    let ws = ws::routes(parts.api.clone(), &["/", "/ws"])
        .layer(from_fn_with_state(parts.auth_state(&["/"]), auth::guard));
    browser_safe(ws, parts)
}

/// The layers every listener has: CORS, the origin guard, the access log,
/// and containment of handler panics.
fn browser_safe(router: Router, parts: &ServerParts) -> Router {
    let guarded = router.layer(parts.origins.cors()).layer(from_fn_with_state(
        Arc::clone(&parts.origins),
        origin::guard,
    ));
    access_log::around(guarded)
        // A bug in one handler answers that one call with an error; it never
        // takes the connection, the server or the engine down with it.
        .layer(CatchPanicLayer::new())
}

impl ServerParts {
    fn auth_state(&self, websocket_paths: &'static [&'static str]) -> auth::AuthState {
        auth::AuthState {
            authenticator: Arc::clone(&self.authenticator),
            websocket_paths,
        }
    }
}
