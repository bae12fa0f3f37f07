//! Browser safety: one origin policy for every browser path (gRPC-Web, both
//! WebSocket ports, the dashboard), and the `Host` check that closes DNS
//! rebinding.
//!
//! An origin is allowed if it is a loopback origin, one of `--cors-origin`,
//! or the page's own origin on a host that `--allowed-hosts` (plus the
//! loopback names and the listen addresses) permits. Origins are parsed as
//! URLs, never matched as strings, so `http://localhost:1@evil.example` is
//! the host `evil.example`. A browser request from another origin, or to a
//! host not allowed, is refused with 403 before any handler runs. Native gRPC
//! clients send no `Origin` and are unaffected. Runs on tokio workers.

use std::{net::IpAddr, ops::ControlFlow, sync::Arc};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use tower_http::cors::{AllowOrigin, CorsLayer};
use url::{Host, Url};

use super::layers::Check;

/// Response headers a gRPC-Web client must be able to read.
const EXPOSED: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// A parsed origin: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: Host,
    port: Option<u16>,
}

impl Origin {
    /// Parses an `Origin` header value; `None` for `null`, userinfo, paths or
    /// anything that is not `scheme://host[:port]`.
    fn parse(text: &str) -> Option<Self> {
        let url = Url::parse(text).ok()?;
        let bare = url.username().is_empty()
            && url.password().is_none()
            && matches!(url.path(), "" | "/")
            && url.query().is_none()
            && url.fragment().is_none()
            && matches!(url.scheme(), "http" | "https");
        if !bare {
            return None;
        }
        Some(Self {
            scheme: url.scheme().to_owned(),
            host: url.host()?.to_owned(),
            port: url.port_or_known_default(),
        })
    }
}

/// The origin and host rules of one server.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// `--cors-origin` had `*`.
    any_origin: bool,
    /// `--cors-origin`, parsed.
    origins: Vec<Origin>,
    /// Host names (lowercase) and addresses browsers may use, besides loopback.
    hosts: Vec<Host>,
}

impl OriginPolicy {
    /// The policy for `--cors-origin` values and allowed hosts (the listen
    /// addresses and `--allowed-hosts`). An origin that does not parse is an
    /// error naming it.
    pub fn new(cors_origins: &[String], allowed_hosts: &[String]) -> Result<Self, String> {
        let any_origin = cors_origins.iter().any(|o| o == "*");
        let origins = cors_origins
            .iter()
            .filter(|o| *o != "*")
            .map(|o| {
                Origin::parse(o.trim_end_matches('/'))
                    .ok_or_else(|| format!("--cors-origin {o:?} is not scheme://host[:port]"))
            })
            .collect::<Result<_, _>>()?;
        let hosts = allowed_hosts
            .iter()
            .map(|h| parse_host(h).ok_or_else(|| format!("--allowed-hosts {h:?} is not a host")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            any_origin,
            origins,
            hosts,
        })
    }

    /// True if `host` (a `Host` header value) may be used by a browser.
    fn host_allowed(&self, host: &str) -> bool {
        parse_authority(host)
            .is_some_and(|(host, _)| is_loopback(&host) || self.hosts.contains(&host))
    }

    /// True if a page at `origin` may call this server through `host`.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let Some(origin) = Origin::parse(origin) else {
            return false;
        };
        self.any_origin
            || is_loopback(&origin.host)
            || self.origins.contains(&origin)
            || host.is_some_and(|h| self.same_origin(&origin, h))
    }

    /// The page's own origin: same host and port as the request, on a host
    /// that is allowed (otherwise a rebound name would count as "same").
    fn same_origin(&self, origin: &Origin, host: &str) -> bool {
        let Some((host, port)) = parse_authority(host) else {
            return false;
        };
        let port = port.or(match origin.scheme.as_str() {
            "https" => Some(443),
            _ => Some(80),
        });
        origin.host == host && origin.port == port && self.host_allowed_parsed(&host)
    }

    fn host_allowed_parsed(&self, host: &Host) -> bool {
        is_loopback(host) || self.hosts.contains(host)
    }

    /// Why a request must be refused, if it must.
    fn refusal(&self, request: &Request) -> Option<&'static str> {
        let headers = request.headers();
        let host = header_str(headers, &header::HOST)
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        let origin = header_str(headers, &header::ORIGIN);
        if !is_browser_request(request, origin.is_some()) {
            return None;
        }
        if !host.is_some_and(|h| self.host_allowed(h)) {
            return Some("this host name is not allowed (see --allowed-hosts)");
        }
        match origin {
            Some(origin) if !self.origin_allowed(origin, host) => {
                Some("this origin is not allowed (see --cors-origin)")
            }
            _ => None,
        }
    }

    /// CORS for gRPC-Web, answering preflights with the same rule.
    pub fn cors(self: &Arc<Self>) -> CorsLayer {
        let policy = Arc::clone(self);
        let allow = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| {
            let host = header_str(&parts.headers, &header::HOST);
            origin
                .to_str()
                .is_ok_and(|origin| policy.origin_allowed(origin, host))
        });
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-grpc-web"),
                HeaderName::from_static("x-user-agent"),
                HeaderName::from_static("grpc-timeout"),
                HeaderName::from_static("connect-protocol-version"),
                HeaderName::from_static("connect-timeout-ms"),
            ])
            .expose_headers(EXPOSED.map(HeaderName::from_static))
            .max_age(std::time::Duration::from_secs(600))
    }
}

/// Refuses a browser request from a foreign origin or to a host that is
/// not allowed with 403, before CORS, upgrades or handlers.
impl Check for OriginPolicy {
    fn check(&self, request: &mut Request) -> ControlFlow<Response> {
        let Some(why) = self.refusal(request) else {
            return ControlFlow::Continue(());
        };
        let headers = request.headers();
        tracing::debug!(
            origin = ?headers.get(header::ORIGIN),
            host = ?headers.get(header::HOST),
            path = request.uri().path(),
            "browser request refused: {why}"
        );
        ControlFlow::Break((StatusCode::FORBIDDEN, why).into_response())
    }
}

/// A request a browser could have made on a page's behalf: anything with an
/// `Origin`, gRPC-Web, and plain GETs (the dashboard, `/metrics`). Native
/// gRPC (HTTP/2 POSTs of `application/grpc` with no `Origin`) is not, and
/// neither is a WebSocket upgrade without an `Origin`: browsers always send
/// one there, so it comes from a program (Python, Streamlit).
fn is_browser_request(request: &Request, has_origin: bool) -> bool {
    let headers = request.headers();
    let content_type = header_str(headers, &header::CONTENT_TYPE).unwrap_or("");
    let websocket =
        header_str(headers, &header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    has_origin
        || content_type.starts_with("application/grpc-web")
        || (request.method() == Method::GET && !websocket)
        || request.method() == Method::OPTIONS
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `host[:port]` of a Host header.
fn parse_authority(text: &str) -> Option<(Host, Option<u16>)> {
    let url = Url::parse(&format!("http://{text}/")).ok()?;
    if !url.username().is_empty() || url.path() != "/" {
        return None;
    }
    Some((url.host()?.to_owned(), url.port()))
}

/// A bare host name or address from `--allowed-hosts`.
fn parse_host(text: &str) -> Option<Host> {
    match parse_authority(text)? {
        (host, None) => Some(host),
        _ => None,
    }
}

fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OriginPolicy {
        OriginPolicy::new(&["https://dash.example".into()], &["watch.example".into()]).unwrap()
    }

    #[test]
    fn loopback_origins_on_any_port() {
        let p = policy();
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
        ] {
            assert!(p.origin_allowed(origin, None), "{origin}");
        }
    }

    #[test]
    fn origins_are_parsed_not_matched_as_text() {
        let p = policy();
        for origin in [
            "http://localhost:1@evil.example",
            "http://localhost.evil.example",
            "http://evil.example",
            "null",
            "http://localhost/path",
        ] {
            assert!(
                !p.origin_allowed(origin, Some("127.0.0.1:50051")),
                "{origin}"
            );
        }
        assert!(p.origin_allowed("https://dash.example", None));
        assert!(p.origin_allowed("https://dash.example:443", None));
        assert!(!p.origin_allowed("http://dash.example", None));
    }

    #[test]
    fn same_origin_counts_only_on_an_allowed_host() {
        let p = policy();
        assert!(p.origin_allowed("http://watch.example:8080", Some("watch.example:8080")));
        assert!(!p.origin_allowed("http://evil.example:8080", Some("evil.example:8080")));
        assert!(!p.origin_allowed("http://watch.example:8081", Some("watch.example:8080")));
    }

    #[test]
    fn hosts_are_loopback_or_listed() {
        let p = policy();
        assert!(p.host_allowed("localhost:50051"));
        assert!(p.host_allowed("127.0.0.2"));
        assert!(p.host_allowed("[::1]:80"));
        assert!(p.host_allowed("WATCH.example:1"));
        assert!(!p.host_allowed("evil.example:50051"));
        assert!(!p.host_allowed("localhost:1@evil.example"));
    }
}
