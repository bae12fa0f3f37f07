//! The accept loop and each connection's lifetime: TLS, HTTP/1.1 and HTTP/2
//! through hyper-util (so keepalive and timeouts are ours to set, unlike
//! `axum::serve`), and the limits that keep a hostile or vanished peer from
//! holding resources: a cap on open connections shared by both listeners
//! (and never above the descriptor limit), an idle timeout, a header
//! timeout, HTTP/2 keepalive pings, TCP keepalive and a cap on streams per
//! connection. Runs on tokio workers; one task per connection.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    path::Path,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
};
use socket2::{SockRef, TcpKeepalive};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{self, RootCertStore, ServerConfig, server::WebPkiClientVerifier},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;
use tracing::{debug, info, warn};

use super::lanes::{Lane, LaneExecutor, LaneSocket, Lanes};
use crate::config::TransportConfig;

/// Descriptors kept back from connections for everything else the process
/// opens (listeners, files, the runtime's own).
pub const RESERVED_DESCRIPTORS: u64 = 128;
/// At most one log line per this interval for repeated refusals.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Pause after an accept error, so a persistent one does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Who is on the other end of a request's connection; in every request's
/// extensions.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Unique per connection for the life of the process.
    pub id: u64,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The connection's slot under `--max-connections`; an upgraded
    /// WebSocket keeps it after the HTTP connection hands its socket over.
    _slot: Arc<OwnedSemaphorePermit>,
    /// The lane the connection runs in ([`super::lanes`]).
    lane: Arc<Lane>,
}

impl ConnectionInfo {
    /// The lanes this connection's listener serves on.
    pub fn lanes(&self) -> &Lanes {
        self.lane.lanes()
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificates or key.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA could not be used.
    #[error("--tls-client-ca: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// Builds the TLS acceptor for `--tls-cert`, `--tls-key` and, if given,
/// `--tls-client-ca` (then client certificates are required). Offers
/// HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_acceptor(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<TlsAcceptor, TlsError> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let pem_error = |path: &Path, message: String| TlsError::Pem {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| pem_error(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error(cert, "no certificate found".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in
                CertificateDer::pem_file_iter(path).map_err(|e| pem_error(path, e.to_string()))?
            {
                roots.add(ca.map_err(|e| pem_error(path, e.to_string()))?)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Connection settings and state shared by both listeners and kept across
/// server restarts.
pub struct Transport {
    limits: TransportConfig,
    tls: Option<TlsAcceptor>,
    /// One permit per open connection, both listeners together.
    connections: Arc<Semaphore>,
    max_connections: usize,
    next_id: AtomicU64,
    refusals: Throttled,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Settings from `limits`; the connection cap is lowered to fit the
    /// process's descriptor limit (raised to its hard limit first).
    pub fn new(limits: TransportConfig, tls: Option<TlsAcceptor>) -> Self {
        let max_connections = descriptor_budget().map_or(limits.max_connections, |budget| {
            let capped = limits.max_connections.min(budget);
            if capped < limits.max_connections {
                info!(
                    max_connections = capped,
                    asked = limits.max_connections,
                    "connection cap lowered to fit the descriptor limit"
                );
            }
            capped
        });
        Self {
            limits,
            tls,
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            next_id: AtomicU64::new(1),
            refusals: Throttled::default(),
        }
    }

    /// The connection cap in force.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Connections open right now, both listeners together.
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.connections.available_permits()
    }

    /// True if connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// The descriptors connections may use: the soft limit, raised to the hard
/// limit, less what the process keeps for itself.
fn descriptor_budget() -> Option<usize> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).ok()?;
    usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS).max(1)).ok()
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting and waits for open connections to finish (telemetry streams and
/// WebSockets end themselves on the same token). Connections start in the
/// command lane of `lanes`.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    transport: Arc<Transport>,
    shutdown: CancellationToken,
    lanes: Lanes,
) -> io::Result<()> {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors, or the peer reset before we accepted:
                // nothing to do for this one but not to spin.
                transport
                    .refusals
                    .note(|n| warn!(error = %err, times = n, "accept failed"));
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        #[cfg(feature = "fault-injection")]
        super::faults::on_accept(name)?;
        let Ok(slot) = Arc::clone(&transport.connections).try_acquire_owned() else {
            transport.refusals.note(|n| {
                warn!(
                    %peer,
                    listener = name,
                    times = n,
                    max_connections = transport.max_connections,
                    "connection refused: at the connection cap"
                );
            });
            continue;
        };
        let lane = Lane::new(lanes.clone());
        let info = ConnectionInfo {
            id: transport.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            _slot: Arc::new(slot),
            lane: Arc::clone(&lane),
        };
        let serve = connection(
            tcp,
            info,
            router.clone(),
            Arc::clone(&transport),
            shutdown.clone(),
        );
        lanes.spawn_connection(&tracker, lane, serve);
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// One connection: socket options, the TLS handshake (bounded by the header
/// timeout), then HTTP.
async fn connection(
    tcp: TcpStream,
    info: ConnectionInfo,
    router: Router,
    transport: Arc<Transport>,
    shutdown: CancellationToken,
) {
    let limits = &transport.limits;
    // Telemetry frames are small and latency matters more than packing.
    let _ = tcp.set_nodelay(true);
    let keepalive = TcpKeepalive::new()
        .with_time(limits.keepalive_interval)
        .with_interval(limits.keepalive_interval);
    let _ = SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
    let tcp = LaneSocket::new(tcp);
    match &transport.tls {
        None => serve_http(tcp, info, router, limits, shutdown).await,
        Some(tls) => match tokio::time::timeout(limits.header_timeout, tls.accept(tcp)).await {
            Ok(Ok(stream)) => serve_http(stream, info, router, limits, shutdown).await,
            Ok(Err(err)) => debug!(peer = %info.peer, error = %err, "TLS handshake failed"),
            Err(_) => debug!(peer = %info.peer, "TLS handshake timed out"),
        },
    }
}

/// HTTP/1.1 or HTTP/2 on one connection, closed gracefully once it has had
/// no request in flight for the idle timeout, or at shutdown.
async fn serve_http<I>(
    io: I,
    info: ConnectionInfo,
    router: Router,
    limits: &TransportConfig,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let builder = http_builder(limits, LaneExecutor(Arc::clone(&info.lane)));
    let activity = Arc::new(Activity::new());
    let watched = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // Before hyper starts the request's task, so that task starts in
        // the right lane.
        info.lane.note(&request);
        handle(request, info.clone(), router.clone(), Arc::clone(&activity))
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(Unvectored(io)), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            () = idle(&watched, limits.idle_timeout), if !closing => {
                debug!(%peer, "closing an idle connection");
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = shutdown.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// A connection's socket (or TLS stream) as HTTP sees it: reads and writes
/// pass through, but it does not offer vectored writes. h2 then copies a
/// DATA frame under 1 KiB into its 16 KiB write buffer, so one write carries
/// many telemetry messages (~970 bytes each); offered vectored writes, it
/// sends every frame over 256 bytes with a `writev` of its own, one system
/// call per message per subscriber. A larger frame is chained either way.
struct Unvectored<I>(I);

impl<I: AsyncRead + Unpin> AsyncRead for Unvectored<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Unvectored<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

fn http_builder(limits: &TransportConfig, executor: LaneExecutor) -> auto::Builder<LaneExecutor> {
    let mut builder = auto::Builder::new(executor);
    // half_close: a client that shuts down its sending side after a whole
    // request still reads; it gets its answer rather than a dropped call
    // (hyper would otherwise take the FIN for the client going away).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .half_close(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout)
        .max_concurrent_streams(limits.max_streams_per_connection);
    builder
}

/// Runs one request through the router, counting it as in flight until its
/// response body (a telemetry stream, say) is finished or dropped.
async fn handle(
    mut request: hyper::Request<Incoming>,
    info: ConnectionInfo,
    router: Router,
    activity: Arc<Activity>,
) -> Result<hyper::Response<InFlightBody>, Infallible> {
    request.extensions_mut().insert(info);
    let in_flight = InFlight::new(activity);
    let response = router.oneshot(request.map(Body::new)).await?;
    Ok(response.map(|body| InFlightBody {
        body,
        _in_flight: in_flight,
    }))
}

/// A response body that keeps its request counted as in flight until it
/// ends or is dropped. Its frames pass through as they are: no box and no
/// adapter per frame, which every telemetry message would cross.
struct InFlightBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A connection's requests in flight, and since when it has had none:
/// counters, not a channel, so a request wakes nothing when it starts or
/// ends (a channel woke the connection's task, and with it a poll of the
/// whole HTTP/2 connection, twice per request). [`idle`] looks at them only
/// when its timer runs out.
struct Activity {
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds since `opened` (0 while
    /// none has).
    idle_since_ms: AtomicU64,
    opened: Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            opened: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How long the connection has had nothing in flight; `None` while it
    /// has.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Acquire);
        Some(Duration::from_millis(self.now_ms().saturating_sub(since)))
    }
}

/// One request in flight on a connection.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The time first: once the count reads zero, it is never older
        // than this request's end.
        let activity = &self.0;
        activity
            .idle_since_ms
            .store(activity.now_ms(), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves once the connection has had nothing in flight for `timeout`;
/// checks only when that could first be true.
async fn idle(activity: &Activity, timeout: Duration) {
    loop {
        let wait = match activity.idle_for() {
            Some(idle) if idle >= timeout => return,
            Some(idle) => timeout - idle,
            None => timeout,
        };
        tokio::time::sleep(wait).await;
    }
}

/// Logs a repeated event at most once per [`REFUSAL_LOG_EVERY`], with how
/// many times it happened since the last line.
#[derive(Debug, Default)]
struct Throttled {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttled {
    fn note(&self, log: impl FnOnce(u64)) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.1 += 1;
        let due = state
            .0
            .is_none_or(|last| last.elapsed() >= REFUSAL_LOG_EVERY);
        if due {
            let times = std::mem::take(&mut state.1);
            state.0 = Some(Instant::now());
            drop(state);
            log(times);
        }
    }
}
