//! `WatchtowerService`: the gRPC face of the bridge.
//!
//! `ApplyCommand` queues the command without waiting and then awaits the
//! engine's own verdict; `SubscribeTelemetry` streams the latest snapshot at
//! the caller's interval; `ListParameters` joins the fixed catalogue with the
//! values in the latest snapshot. Runs on tokio worker threads; never blocks.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{error::ApiError, history::History};
use crate::{
    bridge::{CommandSender, TelemetryReader},
    pb::{
        self, ApplyCommandRequest, ApplyCommandResponse, ListParametersRequest,
        ListParametersResponse, SubscribeTelemetryRequest, SubscribeTelemetryResponse,
        watchtower_service_server::WatchtowerService,
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
    /// Loads the latest snapshot; each stream clones its own reader so it
    /// tracks what it has already sent.
    telemetry: TelemetryReader,
    /// The parameter schema, fixed at start-up; current values come from the
    /// latest snapshot, so the server never asks the engine.
    catalogue: Arc<[pb::ParameterSpec]>,
    /// Ends every telemetry stream when the process shuts down, so graceful
    /// shutdown never waits on an endless stream.
    shutdown: CancellationToken,
    /// Open telemetry streams; each stream's guard decrements it on drop, so
    /// a disconnected client visibly releases its stream.
    subscribers: Arc<AtomicUsize>,
    /// Recent snapshots for late joiners.
    history: History,
}

impl WatchtowerApi {
    /// Builds the service over the server's bridge halves.
    pub fn new(
        commands: CommandSender,
        telemetry: TelemetryReader,
        catalogue: Vec<pb::ParameterSpec>,
        shutdown: CancellationToken,
        history: History,
    ) -> Self {
        Self {
            commands,
            telemetry,
            catalogue: catalogue.into(),
            shutdown,
            subscribers: Arc::default(),
            history,
        }
    }

    /// The server's half of the command queue.
    pub fn commands(&self) -> &CommandSender {
        &self.commands
    }

    /// The server's half of the telemetry exchange.
    pub fn telemetry(&self) -> &TelemetryReader {
        &self.telemetry
    }

    /// Cancelled when the process shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Telemetry streams open right now.
    pub fn active_subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
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

/// A server stream of snapshots.
pub type TelemetryStream =
    Pin<Box<dyn Stream<Item = Result<SubscribeTelemetryResponse, Status>> + Send + 'static>>;

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
        let pending = self.commands.try_submit(command).map_err(ApiError::from)?;
        let response = pending.response().await.map_err(ApiError::from)?;
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
        let wanted = usize::try_from(request.history).unwrap_or(usize::MAX);
        if wanted > self.history.cap() {
            return Err(ApiError::InvalidHistory {
                requested: request.history,
                cap: self.history.cap(),
            }
            .into());
        }
        let past = self.history.last(wanted);
        let last_tick = past.last().map(|s| s.tick);
        let guard = SubscriberGuard::new(&self.subscribers);
        let live = latest_snapshots(
            self.telemetry.clone(),
            interval,
            self.shutdown.clone(),
            guard,
            last_tick,
        );
        let past = futures_util::stream::iter(past).map(|snapshot| Ok(response(&snapshot)));
        Ok(Response::new(Box::pin(past.chain(live))))
    }

    #[instrument(skip_all)]
    async fn list_parameters(
        &self,
        _request: Request<ListParametersRequest>,
    ) -> Result<Response<ListParametersResponse>, Status> {
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
}

/// One subscriber's stream: at most one snapshot per `interval`, always the
/// latest, never the same tick twice. It holds at most one snapshot (an `Arc`
/// into the exchange) and is only polled when the transport can send, so a
/// reader that stops reading costs nothing but its connection.
fn latest_snapshots(
    reader: TelemetryReader,
    interval: Duration,
    shutdown: CancellationToken,
    guard: SubscriberGuard,
    last_tick: Option<u64>,
) -> impl Stream<Item = Result<SubscribeTelemetryResponse, Status>> + Send + 'static {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = Subscriber {
        reader,
        ticker,
        last_tick,
        shutdown,
        _guard: guard,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        let snapshot = s.next().await?;
        Some((Ok(response(&snapshot)), s))
    })
}

fn response(snapshot: &pb::WatchtowerSnapshot) -> SubscribeTelemetryResponse {
    SubscribeTelemetryResponse {
        snapshot: Some(snapshot.clone()),
    }
}

struct Subscriber {
    /// This stream's own view of the exchange.
    reader: TelemetryReader,
    /// Paces sends to the subscriber's interval.
    ticker: Interval,
    /// The tick last sent, so a snapshot is never sent twice.
    last_tick: Option<u64>,
    /// Ends the stream at shutdown.
    shutdown: CancellationToken,
    /// Counts this stream as open until it is dropped.
    _guard: SubscriberGuard,
}

/// Counts one open stream for as long as it lives.
struct SubscriberGuard(Arc<AtomicUsize>);

impl SubscriberGuard {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscriber {
    /// Waits for the next interval, then for a snapshot newer than the last
    /// one sent. `None` ends the stream: shutdown, or the engine stopped.
    async fn next(&mut self) -> Option<Arc<pb::WatchtowerSnapshot>> {
        tokio::select! {
            () = self.shutdown.cancelled() => return None,
            _ = self.ticker.tick() => {}
        }
        loop {
            // Mark first, then load: a publish in between wakes us again
            // rather than being missed.
            self.reader.mark_seen();
            if let Some(snapshot) = self.reader.latest()
                && self.last_tick.is_none_or(|last| snapshot.tick > last)
            {
                self.last_tick = Some(snapshot.tick);
                return Some(snapshot);
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                changed = self.reader.changed() => changed.ok()?,
            }
        }
    }
}
