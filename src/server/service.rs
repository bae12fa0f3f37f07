//! `WatchtowerService`: the gRPC face of the bridge.
//!
//! `ApplyCommand` checks the caller and the command, queues it without
//! waiting and then awaits the engine's own verdict until the caller's
//! deadline; `SubscribeTelemetry` pushes each frame the [`TelemetryHub`]
//! publishes, at most one per the caller's interval; `ListParameters` joins the
//! fixed catalogue with the values in the latest snapshot. Runs on tokio
//! worker threads; never blocks.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use futures_util::{Stream, StreamExt, future::BoxFuture};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, metadata::MetadataMap};
use tracing::instrument;

use super::{
    auth::{ANONYMOUS, Authenticator, Principal, Role},
    encoded::watchtower_service_server::WatchtowerService,
    error::ApiError,
    hub::{EncodedTelemetry, Frame, Pacer, TelemetryHub},
    limits::{self, CommandRate, SubscriberSlot, SubscriberSlots},
    metrics,
    transport::ConnectionInfo,
};
use crate::{
    bridge::{CommandOrigin, CommandSender, PendingReply, TelemetryReader, Unrecorded},
    pb::{
        self, ApplyCommandRequest, ApplyCommandResponse, ApplyCommandsRequest,
        ApplyCommandsResponse, CancelScheduledCommandRequest, CancelScheduledCommandResponse,
        ControlEngineRequest, ControlEngineResponse, GetServerStatsRequest, GetServerStatsResponse,
        GodCommand, GodResponse, ListAuditEntriesRequest, ListAuditEntriesResponse,
        ListParametersRequest, ListParametersResponse, ListScheduledCommandsRequest,
        ListScheduledCommandsResponse, RevertCommandRequest, RevertCommandResponse,
        SubscribeTelemetryRequest, WhoAmIRequest, WhoAmIResponse, control_engine_request::Action,
    },
    store::{AuditFile, AuditQuery, LogHealth, Losses},
};

/// Audit entries per page when a caller asks for 0.
pub const DEFAULT_AUDIT_PAGE: usize = 100;
/// Most audit entries in one page.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// What the server may see of the recorded run.
#[derive(Clone, Debug)]
pub struct RunView {
    /// The run's id and parameter schema. An engine node's never changes; a
    /// relay's is replaced when the engine node starts another run.
    pub catalogue: Arc<ArcSwap<Catalogue>>,
    /// Whether the audit log can be written; commands are refused while it
    /// cannot.
    pub health: LogHealth,
    /// What the store dropped or skipped, for metrics; `None` without a
    /// store of this process's own (`--data-dir off`, a relay).
    pub losses: Option<Losses>,
    /// Where `ListAuditEntries` reads the audit log.
    pub audit: AuditSource,
}

/// The run id and the parameter schema; also what an engine node sends a
/// relay over the broker.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Catalogue {
    /// The run id (empty with `--data-dir off`).
    #[prost(string, tag = "1")]
    pub run_id: String,
    /// The parameter schema, fixed at the run's start; current values come
    /// from the latest snapshot.
    #[prost(message, repeated, tag = "2")]
    pub parameters: Vec<pb::ParameterSpec>,
}

impl Catalogue {
    /// A catalogue shared by the server's transports.
    pub fn shared(self) -> Arc<ArcSwap<Self>> {
        Arc::new(ArcSwap::from_pointee(self))
    }
}

/// Where `ListAuditEntries` reads the audit log.
#[derive(Clone, Debug)]
pub enum AuditSource {
    /// `--data-dir off`: the run keeps no audit log.
    Off,
    /// The run's durable audit log, on this node's disk.
    Local(AuditFile),
    /// A relay's: the engine node's log, asked over the broker.
    Remote(Arc<dyn RemoteAudit>),
}

/// Reads a page of the audit log kept by another node.
pub trait RemoteAudit: Send + Sync + std::fmt::Debug {
    /// The page `request` asks for, read by `caller` on the node that keeps
    /// the log; its refusal comes back as that node's status.
    fn page(
        &self,
        request: ListAuditEntriesRequest,
        caller: &Caller,
    ) -> BoxFuture<'static, Result<ListAuditEntriesResponse, ApiError>>;
}

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
    /// Ends every telemetry stream when the process shuts down, so graceful
    /// shutdown never waits on an endless stream.
    shutdown: CancellationToken,
    /// Open telemetry streams; each stream's guard decrements it on drop, so
    /// a disconnected client visibly releases its stream.
    subscribers: Arc<AtomicUsize>,
    /// Open WebSocket sessions, counted the same way.
    websockets: Arc<AtomicUsize>,
    /// `--max-subscribers`, for gRPC streams and WebSockets together.
    slots: SubscriberSlots,
    /// `--command-rate`, per principal.
    rate: Arc<CommandRate>,
    /// Tokens to principals, for transports that authenticate in-band.
    authenticator: Arc<Authenticator>,
    /// The recorded run: its id, its log's health and the log itself.
    run: RunView,
}

/// The API's own limits and sizes, from the configuration.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Most past snapshots a subscriber may ask for.
    pub history_cap: usize,
    /// Most bytes the history ring keeps.
    pub history_bytes: usize,
    /// Commands per second per principal; 0 = no limit.
    pub command_rate: f64,
    /// Most telemetry subscribers at once.
    pub max_subscribers: usize,
    /// Tokens to principals.
    pub authenticator: Arc<Authenticator>,
}

/// Who is calling, from where, and until when they wait: what every
/// transport knows of a command's sender.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated principal.
    pub principal: Principal,
    /// The connection the call came on (0 if unknown).
    pub connection: u64,
    /// When the caller stops waiting, if it said.
    pub deadline: Option<Instant>,
}

impl Caller {
    /// The caller of a gRPC request, from what the auth guard and the
    /// transport left in its extensions. Fails closed: a request the guard
    /// did not see has no principal and is refused.
    pub fn of<T>(request: &Request<T>) -> Result<Self, ApiError> {
        let principal = request
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthenticated(super::auth::AuthError::Missing))?;
        Ok(Self {
            principal,
            connection: connection_id(request),
            deadline: grpc_deadline(request.metadata()),
        })
    }
}

/// The id of the connection a gRPC request came on (0 if unknown).
fn connection_id<T>(request: &Request<T>) -> u64 {
    request
        .extensions()
        .get::<ConnectionInfo>()
        .map_or(0, |c| c.id)
}

impl WatchtowerApi {
    /// Builds the service over the server's bridge halves.
    pub fn new(
        commands: CommandSender,
        telemetry: TelemetryReader,
        shutdown: CancellationToken,
        options: &ApiOptions,
        run: RunView,
    ) -> Self {
        Self {
            run,
            hub: TelemetryHub::start(
                telemetry.clone(),
                options.history_cap,
                options.history_bytes,
                shutdown.clone(),
            ),
            commands,
            telemetry,
            shutdown,
            subscribers: Arc::default(),
            websockets: Arc::default(),
            slots: SubscriberSlots::new(options.max_subscribers),
            rate: Arc::new(CommandRate::new(options.command_rate)),
            authenticator: Arc::clone(&options.authenticator),
        }
    }

    /// Tokens to principals.
    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    /// The one way a command enters the queue, from any transport: the
    /// caller must be an operator, the command within its size limits, the
    /// caller within its rate and its share of the queue, and the audit log
    /// writable (otherwise its outcome could not be acknowledged).
    /// With `validate_only`, Phase 0 checks the command and changes nothing.
    pub fn submit(
        &self,
        command: GodCommand,
        validate_only: bool,
        caller: &Caller,
    ) -> Result<PendingReply, ApiError> {
        self.checked_submit(command, validate_only, caller)
            .inspect_err(metrics::command_refused)
    }

    fn checked_submit(
        &self,
        mut command: GodCommand,
        validate_only: bool,
        caller: &Caller,
    ) -> Result<PendingReply, ApiError> {
        caller.principal.require(Role::Operator)?;
        limits::check_command(&command, "command")?;
        self.admit(caller)?;
        fill_id(&mut command);
        Ok(if validate_only {
            self.commands.try_validate(command, origin(caller))?
        } else {
            self.commands.try_submit(command, origin(caller))?
        })
    }

    /// The one way a batch enters the queue, with the same checks as
    /// [`WatchtowerApi::submit`]; the batch takes one queue slot and counts
    /// once against the caller's rate.
    pub fn submit_batch(
        &self,
        mut commands: Vec<GodCommand>,
        validate_only: bool,
        caller: &Caller,
    ) -> Result<PendingReply<Vec<GodResponse>>, ApiError> {
        caller.principal.require(Role::Operator)?;
        limits::check_batch(&commands)?;
        self.admit(caller)?;
        commands.iter_mut().for_each(fill_id);
        Ok(self
            .commands
            .try_batch(commands, validate_only, origin(caller))?)
    }

    /// Refuses every state change while the audit log cannot be written
    /// (its outcome could not be acknowledged) or the caller is over its rate.
    fn admit(&self, caller: &Caller) -> Result<(), ApiError> {
        if let Some(why) = self.run.health.failure() {
            return Err(ApiError::Unrecorded(Unrecorded(why)));
        }
        self.rate.check(&caller.principal.name)
    }

    /// Queues the cancellation of a scheduled command.
    pub fn cancel_scheduled(
        &self,
        command_id: String,
        caller: &Caller,
    ) -> Result<PendingReply, ApiError> {
        caller.principal.require(Role::Operator)?;
        limits::check_command_id(&command_id)?;
        self.admit(caller)?;
        Ok(self.commands.try_cancel(command_id, origin(caller))?)
    }

    /// Queues the revert of an applied command, as a new command.
    pub fn revert(&self, command_id: String, caller: &Caller) -> Result<PendingReply, ApiError> {
        caller.principal.require(Role::Operator)?;
        limits::check_command_id(&command_id)?;
        self.admit(caller)?;
        let id = uuid::Uuid::new_v4().to_string();
        Ok(self.commands.try_revert(id, command_id, origin(caller))?)
    }

    /// Asks the engine for its scheduled commands, through the queue like
    /// everything else it answers (so a paused engine answers at once).
    pub fn list_scheduled(
        &self,
        caller: &Caller,
    ) -> Result<PendingReply<Vec<pb::ScheduledCommand>>, ApiError> {
        Ok(self.commands.try_list_scheduled(origin(caller))?)
    }

    /// The one way a control action enters the queue, with the same checks
    /// as [`WatchtowerApi::submit`]: it takes a queue slot and counts
    /// against the caller's rate and share.
    pub fn control(
        &self,
        action: Action,
        caller: &Caller,
    ) -> Result<PendingReply<ControlEngineResponse>, ApiError> {
        caller.principal.require(Role::Operator)?;
        limits::check_control(&action)?;
        self.admit(caller)?;
        let id = uuid::Uuid::new_v4().to_string();
        Ok(self.commands.try_control(id, action, origin(caller))?)
    }

    /// The parameter catalogue with the values of the latest snapshot.
    pub fn parameters(&self) -> Result<ListParametersResponse, ApiError> {
        if self.telemetry.is_closed() {
            return Err(ApiError::EngineStopped);
        }
        let snapshot = self.telemetry.latest().ok_or(ApiError::NoTelemetry)?;
        let parameters = self
            .run
            .catalogue
            .load()
            .parameters
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
        Ok(ListParametersResponse { parameters })
    }

    /// Commands waiting for the next Phase 0, and the queue's capacity.
    pub fn queue_depth(&self) -> (usize, usize) {
        (self.commands.len(), self.commands.capacity())
    }

    /// A slot for one more telemetry subscriber, under `--max-subscribers`.
    pub fn subscriber_slot(&self) -> Result<SubscriberSlot, ApiError> {
        self.slots.acquire()
    }

    /// A page of the audit log for `caller`: read from this node's disk, or
    /// asked of the engine node by a relay.
    pub async fn audit_page(
        &self,
        request: ListAuditEntriesRequest,
        caller: &Caller,
    ) -> Result<ListAuditEntriesResponse, ApiError> {
        let query = audit_query(request.clone())?;
        let audit = match &self.run.audit {
            AuditSource::Off => return Err(ApiError::NoAuditLog),
            AuditSource::Remote(remote) => return remote.page(request, caller).await,
            AuditSource::Local(audit) => audit.clone(),
        };
        let page = tokio::task::spawn_blocking(move || audit.page(&query))
            .await
            .map_err(|e| ApiError::AuditRead(e.to_string()))?
            .map_err(|e| ApiError::AuditRead(e.to_string()))?;
        Ok(ListAuditEntriesResponse {
            entries: page.entries,
            next_page_token: page.next_offset.map(|o| o.to_string()).unwrap_or_default(),
        })
    }

    /// This process's store, for metrics: whether its audit log can be
    /// written, and what it dropped or skipped. `None` without one.
    pub fn store_state(&self) -> Option<(bool, &Losses)> {
        let writable = self.run.health.failure().is_none();
        self.run.losses.as_ref().map(|losses| (writable, losses))
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
            run_id: self.run.catalogue.load().run_id.clone(),
        }
    }
}

/// Gives a command without an id a unique one.
fn fill_id(command: &mut GodCommand) {
    if command.id.is_empty() {
        command.id = uuid::Uuid::new_v4().to_string();
    }
}

/// The error for a refused batch: the refused command's own, with its field
/// named by index (`commands[2].value`).
pub fn batch_rejection(responses: Vec<GodResponse>) -> ApiError {
    let aborted = pb::RejectionReason::BatchAborted as i32;
    let (index, mut refused) = responses
        .into_iter()
        .enumerate()
        .find(|(_, r)| !r.success && r.rejection != aborted)
        .unwrap_or_default();
    let field = refused.field.trim_start_matches("command.").to_owned();
    refused.field = if field.is_empty() {
        format!("commands[{index}]")
    } else {
        format!("commands[{index}].{field}")
    };
    ApiError::Rejected(Box::new(refused))
}

/// Who a queued item comes from.
fn origin(caller: &Caller) -> CommandOrigin {
    CommandOrigin {
        principal: Arc::clone(&caller.principal.name),
        named: &*caller.principal.name != ANONYMOUS,
        connection: caller.connection,
        deadline: caller.deadline,
    }
}

/// The `command_id` a revert or cancellation names; it is required.
/// Public for the fuzz targets (`fuzz/`), which run every request check.
pub fn required_command_id(command_id: String) -> Result<String, ApiError> {
    if command_id.is_empty() {
        Err(ApiError::MissingField {
            field: "command_id",
        })
    } else {
        Ok(command_id)
    }
}

/// Waits for a queued item's answer until the caller's deadline.
pub async fn await_reply<T>(
    pending: PendingReply<T>,
    deadline: Option<Instant>,
) -> Result<T, ApiError> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), pending.response())
            .await
            .map_err(|_| ApiError::DeadlineExceeded)?,
        None => pending.response().await,
    }
    .map_err(ApiError::from)
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
    #[instrument(skip_all)]
    async fn apply_command(
        &self,
        request: Request<ApplyCommandRequest>,
    ) -> Result<Response<ApplyCommandResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let command = request
            .command
            .ok_or(ApiError::MissingField { field: "command" })?;
        let accepted = Instant::now();
        let pending = self.submit(command, request.validate_only, &caller)?;
        let response = await_reply(pending, caller.deadline).await?;
        metrics::command_answered(&response, accepted.elapsed());
        if response.success {
            Ok(Response::new(ApplyCommandResponse {
                response: Some(response),
            }))
        } else {
            Err(ApiError::Rejected(Box::new(response)).into())
        }
    }

    #[instrument(skip_all)]
    async fn apply_commands(
        &self,
        request: Request<ApplyCommandsRequest>,
    ) -> Result<Response<ApplyCommandsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let pending = self.submit_batch(request.commands, request.validate_only, &caller)?;
        let responses = await_reply(pending, caller.deadline).await?;
        if responses.iter().all(|r| r.success) {
            Ok(Response::new(ApplyCommandsResponse { responses }))
        } else {
            Err(batch_rejection(responses).into())
        }
    }

    #[instrument(skip_all)]
    async fn list_scheduled_commands(
        &self,
        request: Request<ListScheduledCommandsRequest>,
    ) -> Result<Response<ListScheduledCommandsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let pending = self.list_scheduled(&caller)?;
        let commands = await_reply(pending, caller.deadline).await?;
        Ok(Response::new(ListScheduledCommandsResponse { commands }))
    }

    #[instrument(skip_all)]
    async fn cancel_scheduled_command(
        &self,
        request: Request<CancelScheduledCommandRequest>,
    ) -> Result<Response<CancelScheduledCommandResponse>, Status> {
        let caller = Caller::of(&request)?;
        let command_id = required_command_id(request.into_inner().command_id)?;
        let pending = self.cancel_scheduled(command_id, &caller)?;
        let response = await_reply(pending, caller.deadline).await?;
        if response.rejection() == pb::RejectionReason::NotScheduled {
            return Err(ApiError::Rejected(Box::new(response)).into());
        }
        Ok(Response::new(CancelScheduledCommandResponse {
            response: Some(response),
        }))
    }

    #[instrument(skip_all)]
    async fn revert_command(
        &self,
        request: Request<RevertCommandRequest>,
    ) -> Result<Response<RevertCommandResponse>, Status> {
        let caller = Caller::of(&request)?;
        let command_id = required_command_id(request.into_inner().command_id)?;
        let pending = self.revert(command_id, &caller)?;
        let response = await_reply(pending, caller.deadline).await?;
        if response.success {
            Ok(Response::new(RevertCommandResponse {
                response: Some(response),
            }))
        } else {
            Err(ApiError::Rejected(Box::new(response)).into())
        }
    }

    #[instrument(skip_all)]
    async fn control_engine(
        &self,
        request: Request<ControlEngineRequest>,
    ) -> Result<Response<ControlEngineResponse>, Status> {
        let caller = Caller::of(&request)?;
        let action = request
            .into_inner()
            .action
            .ok_or(ApiError::MissingField { field: "action" })?;
        let pending = self.control(action, &caller)?;
        Ok(Response::new(await_reply(pending, caller.deadline).await?))
    }

    type SubscribeTelemetryStream = TelemetryStream;

    #[instrument(skip_all, fields(interval_ms = request.get_ref().interval_ms))]
    async fn subscribe_telemetry(
        &self,
        request: Request<SubscribeTelemetryRequest>,
    ) -> Result<Response<Self::SubscribeTelemetryStream>, Status> {
        let connection = connection_id(&request);
        let request = request.into_inner();
        let interval = telemetry_interval(request.interval_ms)?;
        if self.telemetry.is_closed() {
            return Err(ApiError::EngineStopped.into());
        }
        let slot = self.subscriber_slot()?;
        let wanted = usize::try_from(request.history).unwrap_or(usize::MAX);
        if wanted > self.hub.history_cap() {
            return Err(ApiError::InvalidHistory {
                requested: request.history,
                cap: self.hub.history_cap(),
            }
            .into());
        }
        let past = self.hub.history(wanted);
        let live = Subscriber {
            pacer: self
                .hub
                .pacer(interval, past.last().map(|f| f.seq()), connection),
            _guard: CountGuard::new(&self.subscribers),
            _slot: slot,
        }
        .into_stream();
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
        Ok(Response::new(self.parameters()?))
    }

    #[instrument(skip_all)]
    async fn get_server_stats(
        &self,
        _request: Request<GetServerStatsRequest>,
    ) -> Result<Response<GetServerStatsResponse>, Status> {
        Ok(Response::new(self.stats()))
    }

    #[instrument(skip_all)]
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        Ok(Response::new(Caller::of(&request)?.principal.to_pb()))
    }

    #[instrument(skip_all)]
    async fn list_audit_entries(
        &self,
        request: Request<ListAuditEntriesRequest>,
    ) -> Result<Response<ListAuditEntriesResponse>, Status> {
        let caller = Caller::of(&request)?;
        Ok(Response::new(
            self.audit_page(request.into_inner(), &caller).await?,
        ))
    }
}

/// The caller's deadline from `grpc-timeout` (gRPC and gRPC-Web): up to eight
/// digits and a unit, `H`, `M`, `S`, `m`, `u` or `n`. A malformed header is
/// ignored, as gRPC servers do.
fn grpc_deadline(metadata: &MetadataMap) -> Option<Instant> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Instant::now().checked_add(timeout)
}

/// Checks a `ListAuditEntries` request. Public for the fuzz targets.
pub fn audit_query(request: ListAuditEntriesRequest) -> Result<AuditQuery, ApiError> {
    let page_size = match request.page_size {
        0 => DEFAULT_AUDIT_PAGE,
        n @ 1..=MAX_AUDIT_PAGE => n as usize,
        n => {
            return Err(ApiError::InvalidField {
                field: "page_size",
                value: n.to_string(),
                allowed: "0 (the default, 100) or 1 to 1000",
            });
        }
    };
    let offset = match request.page_token.as_str() {
        "" => 0,
        token => token.parse().map_err(|_| ApiError::InvalidField {
            field: "page_token",
            value: token.to_owned(),
            allowed: "empty, or the next_page_token of a previous page",
        })?,
    };
    if request.to_tick != 0 && request.to_tick < request.from_tick {
        return Err(ApiError::InvalidField {
            field: "to_tick",
            value: request.to_tick.to_string(),
            allowed: "0 (no bound) or at least from_tick",
        });
    }
    Ok(AuditQuery {
        key: request.key,
        from_tick: request.from_tick,
        to_tick: request.to_tick,
        page_size,
        offset,
    })
}

/// One subscriber: each frame as soon as it is published, at most one per
/// interval, always the newest, never the same tick twice (the [`Pacer`]).
/// It holds at most one frame (an `Arc` shared with the hub) and is only
/// polled when the transport can send, so a reader that stops reading costs
/// nothing but its connection. It ends when the hub stops, at shutdown or
/// when the engine stops.
struct Subscriber {
    /// Picks the frame to send and when.
    pacer: Pacer,
    /// Counts this stream as open until it is dropped.
    _guard: CountGuard,
    /// Holds this stream's place under `--max-subscribers`.
    _slot: SubscriberSlot,
}

impl Subscriber {
    fn into_stream(self) -> impl Stream<Item = Arc<Frame>> + Send + 'static {
        futures_util::stream::unfold(self, |mut s| async move {
            let frame = s.pacer.next().await?;
            metrics::frame_sent("grpc", frame.lag_at(s.pacer.sent_at()));
            Some((frame, s))
        })
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
