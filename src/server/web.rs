//! Browser access: CORS for gRPC-Web callers, and the Watchtower dashboard
//! served from the binary itself (built from `web/` into `web/dist/`, then
//! embedded at compile time, so no Node is needed at run time).

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, header, request::Parts},
    response::IntoResponse,
    routing::get,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Response headers a gRPC-Web client must be able to read.
const EXPOSED: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// CORS for gRPC-Web: the configured origins, plus the page's own origin and
/// any port on localhost. Preflight requests are answered by the layer.
pub fn cors(origins: &[String]) -> CorsLayer {
    let any = origins.iter().any(|o| o == "*");
    let listed: Vec<String> = origins
        .iter()
        .map(|o| o.trim_end_matches('/').to_owned())
        .collect();
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        any || listed.iter().any(|o| o == origin) || is_local(origin) || same_origin(origin, parts)
    });
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static("connect-protocol-version"),
            HeaderName::from_static("connect-timeout-ms"),
        ])
        .expose_headers(EXPOSED.map(HeaderName::from_static))
        .max_age(std::time::Duration::from_secs(600))
}

fn is_local(origin: &str) -> bool {
    ["http://localhost", "http://127.0.0.1", "http://[::1]"]
        .iter()
        .any(|base| {
            origin == *base
                || origin
                    .strip_prefix(base)
                    .is_some_and(|rest| rest.starts_with(':'))
        })
}

fn same_origin(origin: &str, parts: &Parts) -> bool {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    host.is_some_and(|host| {
        origin
            .split_once("://")
            .is_some_and(|(_, origin_host)| origin_host == host)
    })
}

/// The dashboard's files, embedded from `web/dist/`.
pub fn dashboard() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/index.html",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

const INDEX_HTML: &[u8] = include_bytes!("../../web/dist/index.html");
const APP_JS: &[u8] = include_bytes!("../../web/dist/app.js");
const APP_CSS: &[u8] = include_bytes!("../../web/dist/app.css");

fn asset(content_type: &'static str, body: &'static [u8]) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_origins_on_any_port() {
        assert!(is_local("http://localhost:5173"));
        assert!(is_local("http://127.0.0.1:8080"));
        assert!(is_local("http://localhost"));
        assert!(!is_local("http://localhost.evil.com"));
        assert!(!is_local("https://example.com"));
    }
}
