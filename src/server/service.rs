//! `WatchtowerService`: the gRPC face of the bridge.
//!
//! `ApplyCommand` queues the command without waiting and then awaits the
//! engine's own verdict; `SubscribeTelemetry` streams the latest frame from
//! the [`TelemetryHub`] at the caller's interval; `ListParameters` joins the
//! fixed catalogue with the values in the latest snapshot. Runs on tokio
//! worker threads; never blocks.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use tokio::{
    sync::watch,
    time::{Interval, MissedTickBehavior},
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{
    encoded::watchtower_service_server::WatchtowerService,
    error::ApiError,
    hub::{EncodedTelemetry, Frame, TelemetryHub},
    metrics,
};
use crate::{
    bridge::{CommandSender, TelemetryReader},
    pb::{
        self, ApplyCommandRequest, ApplyCommandResponse, GetServerStatsRequest,
        GetServerStatsResponse, ListParametersRequest, ListParametersResponse,
        SubscribeTelemetryRequest,
    },
};

/// Telemetry interval used when a subscriber asks for 0.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest telemetry interval a subscriber may ask for.
pub const MIN_INTERVAL_MS: u32 = 10;
/// Longest telemetry interval a subscriber may ask for.
pub const MAX_INTERVAL_MS: u32 = 60_000;

/// The service state: bridge halves plus read-only data. Cloned per server run.
#[derive(Clone, Debug)]
pub struct WatchtowerApi {
    /// Submits commands without blocking; a full queue is refused at once.
    commands: CommandSender,
    /// Loads the latest snapshot directly, for `ListParameters`.
    telemetry: TelemetryReader,
    /// Encodes each snapshot once and fans it out to every stream.
    hub: TelemetryHub,
    /// The parameter schema, fixed at start-up; current values come from the
    /// latest snapshot, so the server never asks the engine.
    catalogue: Arc<[pb::ParameterSpec]>,
    /// Ends every telemetry stream when the process shuts down, so graceful
    /// shutdown never waits on an endless stream.
    shutdown: CancellationToken,
    /// Open telemetry streams; each stream's guard decrements it on drop, so
    /// a disconnected client visibly releases its stream.
    subscribers: Arc<AtomicUsize>,
    /// Open WebSocket sessions, counted the same way.
    websockets: Arc<AtomicUsize>,
}

impl WatchtowerApi {
    /// Builds the service over the server's bridge halves.
    pub fn new(
        commands: CommandSender,
        telemetry: TelemetryReader,
        catalogue: Vec<pb::ParameterSpec>,
        shutdown: CancellationToken,
        history_cap: usize,
    ) -> Self {
        Self {
            hub: TelemetryHub::start(telemetry.clone(), history_cap),
            commands,
            telemetry,
            catalogue: catalogue.into(),
            shutdown,
            subscribers: Arc::default(),
            websockets: Arc::default(),
        }
    }

    /// The server's half of the command queue.
    pub fn commands(&self) -> &CommandSender {
        &self.commands
    }

    /// The fan-out of encoded snapshots.
    pub fn hub(&self) -> &TelemetryHub {
        &self.hub
    }

    /// Cancelled when the process shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Telemetry streams open right now.
    pub fn active_subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Counts a WebSocket session for as long as the guard lives.
    pub fn websocket_guard(&self) -> CountGuard {
        metrics::websocket_opened();
        CountGuard::new(&self.websockets)
    }

    /// The server's counters.
    pub fn stats(&self) -> GetServerStatsResponse {
        let stats = self.hub.stats();
        GetServerStatsResponse {
            active_subscribers: self.active_subscribers() as u64,
            websocket_connections: self.websockets.load(Ordering::Relaxed) as u64,
            snapshots_encoded: stats.encoded.load(Ordering::Relaxed),
            snapshots_delivered: stats.delivered.load(Ordering::Relaxed),
            latest_tick: self.hub.latest().map_or(0, |f| f.tick()),
        }
    }
}

/// Checks a subscription interval: 0 means the default.
pub fn telemetry_interval(interval_ms: u32) -> Result<Duration, ApiError> {
    match interval_ms {
        0 => Ok(DEFAULT_INTERVAL),
        MIN_INTERVAL_MS..=MAX_INTERVAL_MS => Ok(Duration::from_millis(interval_ms.into())),
        other => Err(ApiError::InvalidField {
            field: "interval_ms",
            value: other.to_string(),
            allowed: "0 (the default, 100 ms) or 10 to 60000",
        }),
    }
}

/// A server stream of pre-encoded snapshots.
pub type TelemetryStream =
    Pin<Box<dyn Stream<Item = Result<EncodedTelemetry, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl WatchtowerService for WatchtowerApi {
    #[instrument(skip_all, fields(command_id, key))]
    async fn apply_command(
        &self,
        request: Request<ApplyCommandRequest>,
    ) -> Result<Response<ApplyCommandResponse>, Status> {
        let mut command = request
            .into_inner()
            .command
            .ok_or(ApiError::MissingField { field: "command" })?;
        if command.id.is_empty() {
            command.id = uuid::Uuid::new_v4().to_string();
        }
        let span = tracing::Span::current();
        span.record("command_id", command.id.as_str());
        span.record("key", command.key.as_str());
        let pending = self
            .commands
            .try_submit(command)
            .inspect_err(metrics::command_refused)
            .map_err(ApiError::from)?;
        let response = pending.response().await.map_err(ApiError::from)?;
        metrics::command_answered(&response);
        if response.success {
            Ok(Response::new(ApplyCommandResponse {
                response: Some(response),
            }))
        } else {
            Err(ApiError::Rejected(Box::new(response)).into())
        }
    }

    type SubscribeTelemetryStream = TelemetryStream;

    #[instrument(skip_all, fields(interval_ms = request.get_ref().interval_ms))]
    async fn subscribe_telemetry(
        &self,
        request: Request<SubscribeTelemetryRequest>,
    ) -> Result<Response<Self::SubscribeTelemetryStream>, Status> {
        let request = request.into_inner();
        let interval = telemetry_interval(request.interval_ms)?;
        if self.telemetry.is_closed() {
            return Err(ApiError::EngineStopped.into());
        }
        let wanted = usize::try_from(request.history).unwrap_or(usize::MAX);
        if wanted > self.hub.history_cap() {
            return Err(ApiError::InvalidHistory {
                requested: request.history,
                cap: self.hub.history_cap(),
            }
            .into());
        }
        let past = self.hub.history(wanted);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let live = Subscriber {
            frames: self.hub.subscribe(),
            ticker,
            last_tick: past.last().map(|f| f.tick()),
            shutdown: self.shutdown.clone(),
            _guard: CountGuard::new(&self.subscribers),
        }
        .into_stream()
        .inspect(|frame| metrics::frame_sent("grpc", frame));
        let stats = Arc::clone(&self.hub.stats_arc());
        let stream = futures_util::stream::iter(past)
            .chain(live)
            .map(move |frame| {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(frame.grpc.clone())
            });
        Ok(Response::new(Box::pin(stream)))
    }

    #[instrument(skip_all)]
    async fn list_parameters(
        &self,
        _request: Request<ListParametersRequest>,
    ) -> Result<Response<ListParametersResponse>, Status> {
        if self.telemetry.is_closed() {
            return Err(ApiError::EngineStopped.into());
        }
        let snapshot = self.telemetry.latest().ok_or(ApiError::NoTelemetry)?;
        let parameters = self
            .catalogue
            .iter()
            .map(|spec| pb::ParameterSpec {
                current_value: snapshot
                    .parameters
                    .get(&spec.key)
                    .copied()
                    .or(spec.current_value),
                ..spec.clone()
            })
            .collect();
        Ok(Response::new(ListParametersResponse { parameters }))
    }

    #[instrument(skip_all)]
    async fn get_server_stats(
        &self,
        _request: Request<GetServerStatsRequest>,
    ) -> Result<Response<GetServerStatsResponse>, Status> {
        Ok(Response::new(self.stats()))
    }
}

/// One subscriber: at most one frame per interval, always the newest, never
/// the same tick twice. It holds at most one frame (an `Arc` shared with the
/// hub) and is only polled when the transport can send, so a reader that
/// stops reading costs nothing but its connection.
struct Subscriber {
    /// This stream's view of the hub's newest frame.
    frames: watch::Receiver<Option<Arc<Frame>>>,
    /// Paces sends to the subscriber's interval.
    ticker: Interval,
    /// The tick last sent, so a snapshot is never sent twice.
    last_tick: Option<u64>,
    /// Ends the stream at shutdown.
    shutdown: CancellationToken,
    /// Counts this stream as open until it is dropped.
    _guard: CountGuard,
}

impl Subscriber {
    fn into_stream(self) -> impl Stream<Item = Arc<Frame>> + Send + 'static {
        futures_util::stream::unfold(self, |mut s| async move {
            let frame = s.next().await?;
            Some((frame, s))
        })
    }

    /// Waits for the next interval, then for a frame newer than the last one
    /// sent. `None` ends the stream: shutdown, or the engine stopped.
    async fn next(&mut self) -> Option<Arc<Frame>> {
        tokio::select! {
            () = self.shutdown.cancelled() => return None,
            _ = self.ticker.tick() => {}
        }
        loop {
            let newest = self.frames.borrow_and_update().clone();
            if let Some(frame) = newest
                && self.last_tick.is_none_or(|last| frame.tick() > last)
            {
                self.last_tick = Some(frame.tick());
                return Some(frame);
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                changed = self.frames.changed() => changed.ok()?,
            }
        }
    }
}

/// Counts one open stream or session for as long as it lives.
#[derive(Debug)]
pub struct CountGuard(Arc<AtomicUsize>);

impl CountGuard {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
