//! Connections and load: the subscriber fleet, the TPS probe and the command
//! drivers. Everything here talks to the server through the generated
//! `watchtower.v1` client, except the fleet's streams, which decode only the
//! two fields they measure (see [`LeanDecoder`]).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use hdrhistogram::Histogram;
use prost::bytes::Buf;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{
    Code,
    codec::{Codec, DecodeBuf, Decoder},
    transport::{Channel, Endpoint},
};
use watchtower::pb::{
    ApplyCommandRequest, GetServerStatsRequest, GetServerStatsResponse, GodCommand, ParameterValue,
    SubscribeTelemetryRequest, parameter_value::Kind,
    watchtower_service_client::WatchtowerServiceClient,
};

/// A client on one HTTP/2 connection.
pub type Client = WatchtowerServiceClient<Channel>;

/// Streams per HTTP/2 connection; hyper's server allows 200 concurrent
/// streams per connection by default, so stay well below it.
pub const DEFAULT_STREAMS_PER_CONNECTION: usize = 100;

/// Histogram shards, so thousands of subscriber tasks rarely share a lock.
const SHARDS: usize = 64;

fn endpoint(addr: &str) -> anyhow::Result<Endpoint> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(uri)
        .context("server address")?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10)))
}

/// A new connection with large flow-control windows, for readers that keep up.
pub async fn connect(addr: &str) -> anyhow::Result<Client> {
    Ok(WatchtowerServiceClient::new(wide_channel(addr).await?))
}

async fn wide_channel(addr: &str) -> anyhow::Result<Channel> {
    endpoint(addr)?
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .connect()
        .await
        .with_context(|| format!("connect to {addr}"))
}

/// The two fields of `WatchtowerSnapshot` the fleet measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeanSnapshot {
    /// `WatchtowerSnapshot.tick`.
    pub tick: u64,
    /// `WatchtowerSnapshot.captured_at_unix_ms`.
    pub captured_at_unix_ms: i64,
}

/// The fleet's codec: requests encoded by prost, responses read by
/// [`LeanDecoder`].
#[derive(Debug, Clone, Copy, Default)]
struct LeanCodec;

impl Codec for LeanCodec {
    type Encode = SubscribeTelemetryRequest;
    type Decode = Option<LeanSnapshot>;
    type Encoder = tonic_prost::ProstEncoder<SubscribeTelemetryRequest>;
    type Decoder = LeanDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        LeanDecoder
    }
}

/// Reads a `SubscribeTelemetryResponse` only as far as the snapshot's tick
/// and capture time, its fields 1 and 2, which prost writes first, and
/// skips the rest of the message unread. The load generator stands for
/// clients on other machines, and every microsecond it spends on a message
/// is taken from the server it measures on this box: decoding the whole
/// snapshot cost it about a quarter of its CPU, and walking past every
/// field with prost still an eighth.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeanDecoder;

impl Decoder for LeanDecoder {
    type Item = Option<LeanSnapshot>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let snapshot = lean_snapshot(buf.chunk())
            .map_err(|e| tonic::Status::internal(format!("telemetry message: {e}")))?;
        buf.advance(buf.remaining());
        Ok(Some(snapshot))
    }
}

/// The snapshot's tick and capture time from the start of an encoded
/// `SubscribeTelemetryResponse`; `None` if it holds no snapshot.
pub fn lean_snapshot(mut bytes: &[u8]) -> Result<Option<LeanSnapshot>, prost::DecodeError> {
    use prost::encoding::{WireType, decode_key, decode_varint};
    if bytes.is_empty() {
        return Ok(None);
    }
    // `snapshot = 1` is the response's only field.
    let (1, WireType::LengthDelimited) = decode_key(&mut bytes)? else {
        return Ok(None);
    };
    let len = usize::try_from(decode_varint(&mut bytes)?).unwrap_or(usize::MAX);
    let mut fields = &bytes[..len.min(bytes.len())];
    let mut snapshot = LeanSnapshot::default();
    while !fields.is_empty() {
        match decode_key(&mut fields)? {
            (1, WireType::Varint) => snapshot.tick = decode_varint(&mut fields)?,
            // An int64 is its two's complement as a varint.
            (2, WireType::Varint) => {
                snapshot.captured_at_unix_ms = decode_varint(&mut fields)? as i64
            }
            _ => break,
        }
    }
    Ok(Some(snapshot))
}

/// Opens `SubscribeTelemetry` on `channel`, reading [`LeanSnapshot`]s.
async fn subscribe_lean(
    channel: Channel,
    request: SubscribeTelemetryRequest,
) -> Result<tonic::Streaming<Option<LeanSnapshot>>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/watchtower.v1.WatchtowerService/SubscribeTelemetry",
    );
    let response = grpc
        .server_streaming(tonic::Request::new(request), path, LeanCodec)
        .await?;
    Ok(response.into_inner())
}

/// A new connection with h2's default 64 KiB windows, for slow readers: the
/// windows fill quickly once the reader stops reading.
pub async fn connect_small_window(addr: &str) -> anyhow::Result<Client> {
    let channel = endpoint(addr)?
        .connect()
        .await
        .with_context(|| format!("connect to {addr}"))?;
    Ok(WatchtowerServiceClient::new(channel))
}

/// Wall-clock now in microseconds since the Unix epoch (the clock the
/// server stamps `captured_at_unix_ms` with, on the same machine).
pub fn now_unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of a histogram in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    /// Median, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// 99.9th percentile, ms.
    pub p999: f64,
    /// Largest sample, ms.
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// `GetServerStats`, or `None` if the server does not implement it.
pub async fn server_stats(client: &mut Client) -> anyhow::Result<Option<GetServerStatsResponse>> {
    match client.get_server_stats(GetServerStatsRequest {}).await {
        Ok(r) => Ok(Some(r.into_inner())),
        Err(s) if s.code() == Code::Unimplemented => Ok(None),
        Err(s) => Err(anyhow::anyhow!("GetServerStats: {s}")),
    }
}

/// What a fleet of subscribers saw, shared by its tasks.
#[derive(Debug)]
pub struct FleetShared {
    /// Subscribers that received at least one snapshot.
    pub live: AtomicUsize,
    /// Subscribe calls or streams that failed.
    pub failed: AtomicUsize,
    /// Streams the server ended.
    pub ended: AtomicUsize,
    /// Snapshots received since the last reset.
    pub deliveries: AtomicU64,
    /// Snapshots received per subscriber, since start.
    pub per_subscriber: Vec<AtomicU64>,
    /// Staleness (receipt time minus `captured_at_unix_ms`), µs.
    staleness: Vec<Mutex<Histogram<u64>>>,
    /// The first error seen, for the report.
    pub first_error: Mutex<Option<String>>,
}

impl FleetShared {
    fn new(n: usize) -> Self {
        Self {
            live: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            deliveries: AtomicU64::new(0),
            per_subscriber: (0..n).map(|_| AtomicU64::new(0)).collect(),
            staleness: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
            first_error: Mutex::new(None),
        }
    }

    fn error(&self, e: impl std::fmt::Display) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(e.to_string());
        }
    }
}

/// Subscribers that each read their own stream as fast as it comes.
pub struct Fleet {
    /// Counters and staleness, shared with the subscriber tasks.
    pub shared: Arc<FleetShared>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// Streams opened, but never read (slow readers); dropped on stop.
    held: Vec<tonic::Streaming<watchtower::pb::SubscribeTelemetryResponse>>,
}

impl Fleet {
    /// Opens `n` subscribers at `interval_ms`, `per_connection` streams on
    /// each HTTP/2 connection.
    pub async fn start(
        addr: &str,
        n: usize,
        per_connection: usize,
        interval_ms: u32,
    ) -> anyhow::Result<Self> {
        let per_connection = per_connection.max(1);
        let mut channels = Vec::new();
        for _ in 0..n.div_ceil(per_connection) {
            channels.push(wide_channel(addr).await?);
        }
        let shared = Arc::new(FleetShared::new(n));
        let cancel = CancellationToken::new();
        let tasks = (0..n)
            .map(|i| {
                let channel = channels[i / per_connection].clone();
                let shared = Arc::clone(&shared);
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    let request = SubscribeTelemetryRequest {
                        interval_ms,
                        history: 0,
                    };
                    let opened = tokio::select! {
                        () = cancel.cancelled() => return,
                        r = subscribe_lean(channel, request) => r,
                    };
                    let mut stream = match opened {
                        Ok(stream) => stream,
                        Err(e) => return shared.error(e),
                    };
                    let shard = &shared.staleness[i % SHARDS];
                    // One wait on the token for the whole stream, not one
                    // per message (each took the token's lock twice).
                    let cancelled = cancel.cancelled();
                    tokio::pin!(cancelled);
                    loop {
                        let message = tokio::select! {
                            () = &mut cancelled => return,
                            m = stream.message() => m,
                        };
                        match message {
                            Ok(Some(snapshot)) => {
                                let now = now_unix_us();
                                if shared.per_subscriber[i].fetch_add(1, Ordering::Relaxed) == 0 {
                                    shared.live.fetch_add(1, Ordering::Relaxed);
                                }
                                shared.deliveries.fetch_add(1, Ordering::Relaxed);
                                if let Some(s) = snapshot {
                                    let stale = (now - s.captured_at_unix_ms * 1000).max(1);
                                    shard
                                        .lock()
                                        .unwrap_or_else(PoisonError::into_inner)
                                        .saturating_record(stale.unsigned_abs());
                                }
                            }
                            Ok(None) => {
                                shared.ended.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            Err(e) => return shared.error(e),
                        }
                    }
                })
            })
            .collect();
        Ok(Self {
            shared,
            cancel,
            tasks,
            held: Vec::new(),
        })
    }

    /// Opens `n` streams, each on its own small-window connection, and never
    /// reads them: their flow-control windows fill and stay full.
    pub async fn start_slow(addr: &str, n: usize, interval_ms: u32) -> anyhow::Result<Self> {
        let shared = Arc::new(FleetShared::new(n));
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            let mut client = connect_small_window(addr).await?;
            match client
                .subscribe_telemetry(SubscribeTelemetryRequest {
                    interval_ms,
                    history: 0,
                })
                .await
            {
                Ok(r) => {
                    held.push(r.into_inner());
                    shared.live.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => shared.error(e),
            }
        }
        Ok(Self {
            shared,
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
            held,
        })
    }

    /// Waits until every subscriber has had a snapshot, or `patience` ends;
    /// returns how many are live.
    pub async fn wait_live(&self, n: usize, patience: Duration) -> usize {
        let deadline = Instant::now() + patience;
        loop {
            let live = self.shared.live.load(Ordering::Relaxed);
            let failed = self.shared.failed.load(Ordering::Relaxed);
            if live + failed >= n || Instant::now() >= deadline {
                return live;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a new measurement window.
    pub fn reset(&self) {
        self.shared.deliveries.store(0, Ordering::Relaxed);
        for shard in &self.shared.staleness {
            shard.lock().unwrap_or_else(PoisonError::into_inner).reset();
        }
    }

    /// Deliveries and staleness since the last reset.
    pub fn window(&self) -> (u64, Histogram<u64>) {
        let mut merged = histogram();
        for shard in &self.shared.staleness {
            let h = shard.lock().unwrap_or_else(PoisonError::into_inner);
            merged.add(&*h).expect("same bounds");
        }
        (self.shared.deliveries.load(Ordering::Relaxed), merged)
    }

    /// Cancels every subscriber and closes its streams.
    pub async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        drop(self.held);
    }
}

/// One sample of the engine, as seen in a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct TickSample {
    /// When the probe received it.
    pub received: Instant,
    /// The same, on the wall clock the server stamps snapshots with, µs.
    pub received_unix_us: i64,
    /// The snapshot's tick.
    pub tick: u64,
    /// The snapshot's `captured_at_unix_ms`.
    pub captured_ms: i64,
}

/// One subscriber that records every snapshot's tick, to measure engine TPS
/// from tick deltas over the server's own capture times.
pub struct Probe {
    samples: Arc<Mutex<Vec<TickSample>>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Engine TPS over one window.
#[derive(Debug, Clone, Copy, Default)]
pub struct TpsWindow {
    /// Ticks per second from tick deltas over capture-time deltas.
    pub tps: f64,
}

impl Probe {
    /// Subscribes at `interval_ms` on its own connection.
    pub async fn start(addr: &str, interval_ms: u32) -> anyhow::Result<Self> {
        let mut client = connect(addr).await?;
        let mut stream = client
            .subscribe_telemetry(SubscribeTelemetryRequest {
                interval_ms,
                history: 0,
            })
            .await
            .context("probe subscribe")?
            .into_inner();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let task = {
            let samples = Arc::clone(&samples);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    let message = tokio::select! {
                        () = cancel.cancelled() => return,
                        m = stream.message() => m,
                    };
                    let Ok(Some(m)) = message else { return };
                    if let Some(s) = m.snapshot {
                        samples
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(TickSample {
                                received: Instant::now(),
                                received_unix_us: now_unix_us(),
                                tick: s.tick,
                                captured_ms: s.captured_at_unix_ms,
                            });
                    }
                }
            })
        };
        Ok(Self {
            samples,
            cancel,
            task,
        })
    }

    /// All samples so far.
    pub fn samples(&self) -> Vec<TickSample> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Engine TPS between two instants.
    pub fn tps(&self, from: Instant, to: Instant) -> TpsWindow {
        let samples = self.samples();
        let inside: Vec<_> = samples
            .iter()
            .filter(|s| s.received >= from && s.received <= to)
            .collect();
        let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
            return TpsWindow::default();
        };
        let ms = (last.captured_ms - first.captured_ms) as f64;
        let tps = if ms > 0.0 {
            (last.tick - first.tick) as f64 * 1000.0 / ms
        } else {
            0.0
        };
        TpsWindow { tps }
    }

    /// Staleness (receipt minus capture) of the snapshots received between
    /// two instants.
    pub fn staleness(&self, from: Instant, to: Instant) -> Percentiles {
        let mut h = histogram();
        for s in self.samples() {
            if s.received >= from && s.received <= to {
                let stale = (s.received_unix_us - s.captured_ms * 1000).max(1);
                h.saturating_record(stale.unsigned_abs());
            }
        }
        Percentiles::of(&h)
    }

    /// Stops the probe.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// The parameter the command drivers change, and its two values; the
/// drivers alternate them so every command is a real change.
pub const COMMAND_KEY: &str = "fiscal.vat_rate";
const COMMAND_VALUES: [f64; 2] = [0.10, 0.11];

/// One `ApplyCommand` request, the `n`th of a run.
pub fn command(n: u64) -> ApplyCommandRequest {
    ApplyCommandRequest {
        command: Some(GodCommand {
            id: String::new(),
            key: COMMAND_KEY.to_owned(),
            value: Some(ParameterValue {
                kind: Some(Kind::Number(COMMAND_VALUES[(n % 2) as usize])),
            }),
            reason: "watchtower-bench".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Outcomes of commands, shared by the driver's tasks.
#[derive(Debug)]
pub struct CommandShared {
    latency: Mutex<Histogram<u64>>,
    /// How late each command left, after its scheduled time.
    late: Mutex<Histogram<u64>>,
    /// Commands applied.
    pub ok: AtomicU64,
    /// Commands refused with RESOURCE_EXHAUSTED (queue full).
    pub exhausted: AtomicU64,
    /// Other failures, by status code.
    pub errors: Mutex<BTreeMap<String, u64>>,
    sequence: AtomicU64,
}

impl CommandShared {
    fn new() -> Self {
        Self {
            latency: Mutex::new(histogram()),
            late: Mutex::new(histogram()),
            ok: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
            errors: Mutex::default(),
            sequence: AtomicU64::new(0),
        }
    }

    /// Sends one command; records its latency from `due` if it succeeded.
    /// Returns the status code.
    async fn send(&self, client: &mut Client, due: Instant) -> Code {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        record(&self.late, due.elapsed());
        let code = match client.apply_command(command(n)).await {
            Ok(r) if r.get_ref().response.as_ref().is_some_and(|r| r.success) => Code::Ok,
            Ok(_) => Code::Unknown,
            Err(s) => s.code(),
        };
        match code {
            Code::Ok => {
                record(&self.latency, due.elapsed());
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Code::ResourceExhausted => {
                self.exhausted.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                *self
                    .errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(format!("{other:?}"))
                    .or_default() += 1;
            }
        }
        code
    }

    /// Counts and latencies since the last reset.
    pub fn window(&self) -> CommandWindow {
        CommandWindow {
            ok: self.ok.load(Ordering::Relaxed),
            exhausted: self.exhausted.load(Ordering::Relaxed),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            latency: Percentiles::of(&self.latency.lock().unwrap_or_else(PoisonError::into_inner)),
            late: Percentiles::of(&self.late.lock().unwrap_or_else(PoisonError::into_inner)),
        }
    }

    /// Starts a new measurement window.
    pub fn reset(&self) {
        self.ok.store(0, Ordering::Relaxed);
        self.exhausted.store(0, Ordering::Relaxed);
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        for histogram in [&self.latency, &self.late] {
            histogram
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reset();
        }
    }
}

/// Adds `took` to `histogram`, in microseconds.
fn record(histogram: &Mutex<Histogram<u64>>, took: Duration) {
    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    histogram
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .saturating_record(us.max(1));
}

/// Command outcomes over one window.
#[derive(Debug, Clone, Default)]
pub struct CommandWindow {
    /// Applied.
    pub ok: u64,
    /// RESOURCE_EXHAUSTED.
    pub exhausted: u64,
    /// Other failures by code.
    pub errors: BTreeMap<String, u64>,
    /// Latency of applied commands, from their scheduled time.
    pub latency: Percentiles,
    /// How late the driver itself sent each command: the load generator's
    /// own share of the latency, from a starved CPU (0 in a closed loop).
    pub late: Percentiles,
}

impl CommandWindow {
    /// Failures other than RESOURCE_EXHAUSTED.
    pub fn other_errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// How a command driver paces itself.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Open loop: one command every 1/rate seconds, whatever the answers;
    /// latency counts from the scheduled send time, so a stall is not hidden
    /// (no coordinated omission).
    Rate(f64),
    /// Closed loop: this many callers, each sending its next command when
    /// the last is answered. A RESOURCE_EXHAUSTED caller waits 1 ms.
    Concurrency(usize),
}

/// A running command driver, on its own threads: it stands for an operator
/// on another machine, so it does not queue behind the bench's own
/// subscribers in one runtime.
pub struct CommandLoad {
    /// Outcomes, shared with the driver.
    pub shared: Arc<CommandShared>,
    cancel: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl CommandLoad {
    /// Starts sending commands over `connections` connections.
    pub async fn start(addr: &str, pace: Pace, connections: usize) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-commands")
            .enable_all()
            .build()?;
        let shared = Arc::new(CommandShared::new());
        let cancel = CancellationToken::new();
        let (ready, connected) = tokio::sync::oneshot::channel();
        let addr = addr.to_owned();
        let driver = {
            let shared = Arc::clone(&shared);
            let cancel = cancel.clone();
            async move {
                let mut clients = Vec::new();
                for _ in 0..connections.max(1) {
                    match connect(&addr).await {
                        Ok(client) => clients.push(client),
                        Err(err) => return drop(ready.send(Err(err))),
                    }
                }
                let _ = ready.send(Ok(()));
                match pace {
                    Pace::Rate(rate) => open_loop(clients, rate, shared, cancel).await,
                    Pace::Concurrency(n) => closed_loop(clients, n, shared, cancel).await,
                }
            }
        };
        let thread = std::thread::Builder::new()
            .name("bench-commands".into())
            .spawn(move || runtime.block_on(driver))?;
        connected.await.context("the command driver ended")??;
        Ok(Self {
            shared,
            cancel,
            thread,
        })
    }

    /// Stops sending and waits (up to 5 s) for commands in flight.
    pub async fn stop(self) {
        self.cancel.cancel();
        let thread = self.thread;
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::task::spawn_blocking(move || thread.join()),
        )
        .await;
    }
}

/// Sends a command every 1/`rate` s, whatever the answers.
///
/// The schedule is a kernel timer (`timerfd`), not tokio's: tokio's timer
/// has whole-millisecond ticks (and parks with a millisecond timeout), so
/// each command went out up to 2 ms late, and latency, counted from the
/// schedule, counted that too.
async fn open_loop(
    clients: Vec<Client>,
    rate: f64,
    shared: Arc<CommandShared>,
    cancel: CancellationToken,
) {
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    // A late tick comes at once, with its own scheduled time (burst).
    let mut schedule = tokio_osinterval::interval(period);
    let mut in_flight = tokio::task::JoinSet::new();
    for n in 0usize.. {
        let due = tokio::select! {
            () = cancel.cancelled() => break,
            due = schedule.tick() => due.into_std(),
        };
        let mut client = clients[n % clients.len()].clone();
        let shared = Arc::clone(&shared);
        in_flight.spawn(async move {
            shared.send(&mut client, due).await;
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

async fn closed_loop(
    clients: Vec<Client>,
    callers: usize,
    shared: Arc<CommandShared>,
    cancel: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..callers {
        let mut client = clients[i % clients.len()].clone();
        let shared = Arc::clone(&shared);
        let cancel = cancel.clone();
        tasks.spawn(async move {
            while !cancel.is_cancelled() {
                if shared.send(&mut client, Instant::now()).await == Code::ResourceExhausted {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use watchtower::pb::{MacroIndicators, SubscribeTelemetryResponse, WatchtowerSnapshot};

    use super::*;

    fn encoded(snapshot: Option<WatchtowerSnapshot>) -> Vec<u8> {
        SubscribeTelemetryResponse { snapshot }.encode_to_vec()
    }

    #[test]
    fn the_lean_read_finds_tick_and_capture_time_in_a_whole_snapshot() {
        let snapshot = WatchtowerSnapshot {
            tick: 123_456,
            captured_at_unix_ms: 1_790_000_000_123,
            r#macro: Some(MacroIndicators {
                nominal_gdp: 9.5,
                ..Default::default()
            }),
            parameters: [(
                "tax.vat_rate".to_owned(),
                ParameterValue {
                    kind: Some(Kind::Number(0.1)),
                },
            )]
            .into(),
            ..Default::default()
        };
        let read = lean_snapshot(&encoded(Some(snapshot))).unwrap();
        assert_eq!(
            read,
            Some(LeanSnapshot {
                tick: 123_456,
                captured_at_unix_ms: 1_790_000_000_123,
            })
        );
    }

    #[test]
    fn tick_zero_is_left_out_on_the_wire_and_read_as_zero() {
        let snapshot = WatchtowerSnapshot {
            captured_at_unix_ms: 5,
            ..Default::default()
        };
        let read = lean_snapshot(&encoded(Some(snapshot))).unwrap().unwrap();
        assert_eq!((read.tick, read.captured_at_unix_ms), (0, 5));
        assert_eq!(lean_snapshot(&encoded(None)).unwrap(), None);
    }
}
