//! The access log: one `debug` line per call on every listener (method,
//! path, status, duration, peer), through tower-http's `TraceLayer`, under
//! the target `watchtower::access`, so `RUST_LOG=info,watchtower::access=debug`
//! turns it on alone. A gRPC call adds a second line when its body ends, with
//! the `grpc-status` from the trailers and how long the stream was open.
//! Runs on the tokio worker serving the call; it only formats and logs.
//!
//! The log is decided once, when the routes are built: with its target off
//! (the default), no layer is added, so a telemetry stream's frames do not
//! pass a per-frame span and two clock reads each for nothing.

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, Response},
};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{DefaultOnBodyChunk, DefaultOnFailure, TraceLayer},
};
use tracing::{Level, Span, debug, debug_span};

use super::transport::ConnectionInfo;

/// The layer [`layer`] builds.
type AccessLog = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<Body>) -> Span,
    (),
    fn(&Response<Body>, Duration, &Span),
    DefaultOnBodyChunk,
    fn(Option<&HeaderMap>, Duration, &Span),
    DefaultOnFailure,
>;

/// `router` with the access log around it, if `watchtower::access` logs
/// at debug; otherwise `router` as it is.
pub fn around(router: Router) -> Router {
    if tracing::enabled!(target: "watchtower::access", Level::DEBUG) {
        router.layer(layer())
    } else {
        router
    }
}

/// The access log layer; the peer comes from the transport's
/// [`ConnectionInfo`] (empty for a request that came another way).
fn layer() -> AccessLog {
    TraceLayer::new_for_http()
        .make_span_with(call_span as fn(&Request<Body>) -> Span)
        .on_request(())
        .on_response(on_response as fn(&Response<Body>, Duration, &Span))
        .on_eos(on_eos as fn(Option<&HeaderMap>, Duration, &Span))
}

/// The span every line of the call is logged in.
fn call_span(request: &Request<Body>) -> Span {
    let peer = request
        .extensions()
        .get::<ConnectionInfo>()
        .map(|info| info.peer.to_string())
        .unwrap_or_default();
    debug_span!(
        target: "watchtower::access",
        "call",
        method = %request.method(),
        path = request.uri().path(),
        peer,
    )
}

/// The call's line: its HTTP status, and the gRPC status when the answer
/// is trailers-only (a gRPC error before any message).
fn on_response(response: &Response<Body>, latency: Duration, _span: &Span) {
    debug!(
        target: "watchtower::access",
        status = response.status().as_u16(),
        grpc_status = grpc_status(response.headers()),
        duration_ms = latency.as_secs_f64() * 1e3,
        "response"
    );
}

/// A gRPC call's closing line: the `grpc-status` its trailers carry.
fn on_eos(trailers: Option<&HeaderMap>, stream_duration: Duration, _span: &Span) {
    if let Some(status) = trailers.and_then(grpc_status) {
        debug!(
            target: "watchtower::access",
            grpc_status = status,
            duration_ms = stream_duration.as_secs_f64() * 1e3,
            "end of stream"
        );
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<&str> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok())
}
