//! Production wiring (spec §4.3, §9): `SimulationServer` builds the bridge,
//! starts the engine on its own thread and the gRPC server on the tokio
//! runtime, restarts the server if it fails, and stops both in order.
//! [`network_runtime`] builds that runtime with its threads below the
//! engine's priority, so the engine comes first in the scheduler too.
//!
//! With a data directory it also opens the run's store (the audit and
//! checkpoint writer threads) and joins them after the engine stops.
//!
//! This is the only module that knows both the engine and the server; each of
//! them knows only its half of the bridge.

use std::{future::Future, net::SocketAddr, sync::Arc, thread, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};
use tracing::{debug, error, info, warn};

use crate::{
    bridge::{CommandSender, TelemetryReader, command_queue, telemetry_exchange},
    broker,
    config::{Config, ConfigError},
    engine::{EngineError, EngineReport, Pacing, SimulationEngine, StepGate},
    server::{
        self, ApiOptions, AuditSource, RunView, ServerParts, Transport, WatchtowerApi,
        auth::{Authenticator, TokenConfigError},
        encoded::watchtower_service_server::WatchtowerServiceServer,
        lanes::Lanes,
        origin::OriginPolicy,
        transport::{TlsError, tls_acceptor},
    },
    store::{self, FaultSwitch, LogHealth, Store, StoreError, StoreOptions},
};

/// How long `stop` lets in-flight calls finish before closing the queue.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(1200);
/// Pause before the first restart of a failed server; it doubles with each
/// failure in a row, up to [`MAX_RESTART_BACKOFF`].
const RESTART_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between two restarts.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(5);
/// A server up this long after a failure ends the episode.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Why Watchtower could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or a `--params` file was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine could not be built.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The run directory could not be opened or resumed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--resume` needs a data directory.
    #[error("--resume needs a data directory, but --data-dir is off")]
    ResumeWithoutDataDir,
    /// A socket or thread could not be set up.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The tokens could not be used.
    #[error(transparent)]
    Tokens(#[from] TokenConfigError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `--engine-cpu` names a CPU the process may not run on.
    #[error(transparent)]
    EngineCpu(#[from] crate::priority::EngineCpuError),
    /// The broker could not be used.
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    /// An origin or host setting is not valid.
    #[error("{0}")]
    Origins(String),
    /// Anyone who reaches a non-loopback address could steer.
    #[error(
        "refusing to listen on {addr} without an operator token: anyone who reaches it could \
         steer the economy. Set --operator-token (WATCHTOWER_OPERATOR_TOKEN) or --tokens-file, \
         or pass --allow-anonymous-operators"
    )]
    AnonymousOperators {
        /// The non-loopback address.
        addr: SocketAddr,
    },
}

/// The engine thread and the gRPC server, running together (spec §9's
/// `SimulationServerInterface`: `start` and `stop`; broadcasting and pending
/// commands are the bridge's job).
#[derive(Debug)]
pub struct SimulationServer {
    /// The listeners, their supervisor and the API.
    front: Front,
    /// The engine thread, joined by `stop`.
    engine: Option<thread::JoinHandle<Result<EngineReport, EngineError>>>,
    /// Fires when the engine thread ends, for whatever reason.
    engine_done: Option<oneshot::Receiver<()>>,
    /// Our own sender: lets tests read the queue depth, and `stop` close the
    /// queue even while a server task still holds a clone.
    commands: CommandSender,
    /// A reader for callers that want to watch the engine in-process.
    telemetry: TelemetryReader,
    /// Present only with `Pacing::Manual`.
    gate: Option<StepGate>,
    /// The run's writer threads, joined by `stop` after the engine; `None`
    /// with `--data-dir off`.
    store: Option<Store>,
}

impl SimulationServer {
    /// Starts the engine at `config.tps` and serves on `listener`.
    pub async fn start(listener: TcpListener, config: &Config) -> Result<Self, StartError> {
        Self::start_with_pacing(listener, config, Pacing::from_tps(config.tps)).await
    }

    /// Starts with explicit pacing; tests use `Pacing::Manual` to release
    /// ticks one at a time.
    pub async fn start_with_pacing(
        listener: TcpListener,
        config: &Config,
        pacing: Pacing,
    ) -> Result<Self, StartError> {
        // Everything that can fail comes before the engine thread starts, so
        // a failed start leaves nothing running.
        let registry = config.registry()?;
        let engine_cpu = config.engine_cpu.resolve()?;
        if let Some(cpu) = engine_cpu {
            crate::logging::keep_off_cpu(cpu);
        }
        if config.data_dir.is_none() && config.resume.is_some() {
            return Err(StartError::ResumeWithoutDataDir);
        }
        let front = FrontPlan::prepare(listener, config).await?;
        let broker = match config.broker.urls.is_empty() {
            true => None,
            false => Some(broker::connect(&config.broker, "engine node").await?),
        };
        let (commands, receiver) = command_queue(config.queue_capacity);
        let (publisher, telemetry) = telemetry_exchange();
        let (mut engine, store) = open_engine(config, registry, engine_cpu)?;
        let catalogue = engine.world().registry.catalogue();
        engine.attach_bridge(receiver, publisher);
        let run = RunView {
            catalogue: broker::Catalogue {
                run_id: engine.world().run_id.clone(),
                parameters: catalogue,
            }
            .shared(),
            health: store
                .as_ref()
                .map_or_else(LogHealth::always_ok, |s| s.health.clone()),
            losses: store.as_ref().map(|s| s.losses.clone()),
            audit: store
                .as_ref()
                .map_or(AuditSource::Off, |s| AuditSource::Local(s.audit.clone())),
        };

        let gate = match &pacing {
            Pacing::Manual(gate) => Some(gate.clone()),
            _ => None,
        };
        let (done_tx, engine_done) = oneshot::channel();
        let engine = thread::Builder::new()
            .name("watchtower-engine".into())
            .spawn(move || {
                if let Some(cpu) = engine_cpu {
                    crate::priority::pin_this_thread(cpu);
                }
                let result = engine.run(pacing);
                let _ = done_tx.send(());
                result
            })?;
        let front = front.start(Backend {
            commands: commands.clone(),
            telemetry: telemetry.clone(),
            run: run.clone(),
            upstream: None,
        });
        if let Some(client) = broker {
            broker::engine_node::start(
                client,
                front.api.clone(),
                broker::Catalogue::clone(&run.catalogue.load()),
                front.shutdown.clone(),
            );
        }
        Ok(Self {
            front,
            engine: Some(engine),
            engine_done: Some(engine_done),
            commands,
            telemetry,
            gate,
            store,
        })
    }

    /// Injects audit-log write failures, if the run is recorded.
    pub fn store_faults(&self) -> Option<FaultSwitch> {
        self.store.as_ref().map(|s| s.faults.clone())
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.front.local_addr
    }

    /// The legacy WebSocket listener's address, if it is on.
    pub fn legacy_ws_addr(&self) -> Option<SocketAddr> {
        self.front.legacy_ws_addr
    }

    /// Commands waiting for the next Phase 0.
    pub fn queue_depth(&self) -> usize {
        self.commands.len()
    }

    /// Telemetry streams open right now.
    pub fn active_subscribers(&self) -> usize {
        self.front.api.active_subscribers()
    }

    /// An in-process view of the telemetry exchange.
    pub fn telemetry(&self) -> TelemetryReader {
        self.telemetry.clone()
    }

    /// Releases `n` ticks; only with `Pacing::Manual`.
    pub fn step(&self, n: u64) {
        if let Some(gate) = &self.gate {
            gate.step(n);
        }
    }

    /// Resolves when the engine thread has ended (it halted, or `stop` ran).
    pub async fn engine_stopped(&mut self) {
        if let Some(done) = self.engine_done.as_mut() {
            let _ = done.await;
            self.engine_done = None;
        }
    }

    /// Stops gracefully: stop accepting, end telemetry streams, let in-flight
    /// commands finish, then close the queue (anything still queued is
    /// answered UNAVAILABLE) and join the engine thread.
    pub async fn stop(mut self) -> Result<EngineReport, EngineError> {
        let drained = self.front.drain().await;
        self.commands.close();
        if let Some(gate) = &self.gate {
            gate.close();
        }
        self.engine_stopped().await;
        let result = match self.engine.take().map(thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(EngineError::Panicked),
            None => unreachable!("stop consumes the server"),
        };
        // The engine has dropped its journal: the writers finish the last
        // outcomes and the shutdown checkpoint, then end.
        if let Some(store) = self.store.take() {
            store.join().await;
        }
        if !drained {
            // The queue is closed, so any call still waiting has its answer.
            self.front.finish().await;
        }
        result
    }
}

/// Builds the engine, from a new or resumed run directory, or in memory; the
/// store's threads keep off `engine_cpu`, the engine's own CPU if it has one.
fn open_engine(
    config: &Config,
    registry: crate::engine::GlobalRegistry,
    engine_cpu: Option<usize>,
) -> Result<(SimulationEngine, Option<Store>), StartError> {
    let (mut engine, store) = match &config.data_dir {
        None => (SimulationEngine::new(registry, config.seed)?, None),
        Some(data_dir) => {
            let options = StoreOptions {
                data_dir: data_dir.clone(),
                resume: config.resume.clone(),
                checkpoint_every: config.checkpoint_every,
                seed: config.seed,
                tps: config.tps,
                record_every: config.record_every,
                placement: crate::priority::Placement {
                    nice: config.network_nice,
                    off_cpu: engine_cpu,
                },
                idempotency_window: config.idempotency_window,
            };
            let opened = store::open(&options, registry)?;
            #[cfg(feature = "fault-injection")]
            if let Some(nth) = crate::server::faults::disk_hang_at() {
                opened.store.faults.hang_at_commit(nth);
            }
            (opened.engine, Some(opened.store))
        }
    };
    if config.start_paused {
        engine.world_mut().run.settings.paused = true;
    }
    engine
        .world_mut()
        .schedule
        .set_capacity(config.max_scheduled);
    engine
        .world_mut()
        .audit
        .set_idempotency_window(config.idempotency_window);
    Ok((engine, store))
}

/// What a server stack serves from: the bridge halves it talks to and what
/// it may see of the run. An engine node fills it from its own engine; a
/// relay from the broker.
#[derive(Debug)]
pub struct Backend {
    /// Where commands go: the engine's queue, or a relay's forwarder.
    pub commands: CommandSender,
    /// Where snapshots come from.
    pub telemetry: TelemetryReader,
    /// The run's id and parameter schema, log health and audit log.
    pub run: RunView,
    /// A relay's broker connection: health is NOT_SERVING while it is down.
    /// `None` on an engine node, whose health does not depend on the broker.
    pub upstream: Option<watch::Receiver<bool>>,
}

/// The listeners and settings of a server stack, checked and bound before
/// anything starts, so a refused configuration leaves nothing running.
pub struct FrontPlan {
    local_addr: SocketAddr,
    listener: std::net::TcpListener,
    legacy: Option<(SocketAddr, std::net::TcpListener)>,
    authenticator: Arc<Authenticator>,
    transport: Arc<Transport>,
    origins: Arc<OriginPolicy>,
    config: Config,
}

impl FrontPlan {
    /// Checks the tokens, TLS and origins, and binds the legacy listener.
    pub async fn prepare(listener: TcpListener, config: &Config) -> Result<Self, StartError> {
        let local_addr = listener.local_addr()?;
        let authenticator = Arc::new(Authenticator::from_config(&config.security)?);
        refuse_anonymous_operators(config, &authenticator, local_addr)?;
        let transport = Arc::new(transport(config)?);
        let listener = listener.into_std()?;
        let legacy = match config.legacy_ws_listen {
            Some(addr) => {
                let legacy = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?;
                Some((legacy.local_addr()?, legacy.into_std()?))
            }
            None => None,
        };
        let origins = Arc::new(origin_policy(
            config,
            local_addr,
            legacy.as_ref().map(|l| l.0),
        )?);
        Ok(Self {
            local_addr,
            listener,
            legacy,
            authenticator,
            transport,
            origins,
            config: config.clone(),
        })
    }

    /// Starts the API over `backend`, health reporting, metrics, and a
    /// supervised server on each listener.
    pub fn start(self, backend: Backend) -> Front {
        let config = &self.config;
        let shutdown = CancellationToken::new();
        let health = HealthReporter::new();
        // Listeners being restarted right now.
        let servers_down = Arc::new(watch::channel(0usize).0);
        tokio::spawn(report_health(
            health.clone(),
            backend.telemetry.clone(),
            backend.run.health.clone(),
            servers_down.subscribe(),
            backend.upstream,
        ));
        let api = WatchtowerApi::new(
            backend.commands,
            backend.telemetry,
            shutdown.clone(),
            &ApiOptions {
                history_cap: config.history_cap,
                history_bytes: config.history_bytes,
                command_rate: config.security.command_rate,
                max_subscribers: config.transport.max_subscribers,
                authenticator: Arc::clone(&self.authenticator),
            },
            backend.run,
        );
        tokio::spawn(server::metrics::follow_snapshots(
            api.hub().clone(),
            shutdown.clone(),
        ));
        let parts = ServerParts {
            api: api.clone(),
            health,
            origins: self.origins,
            authenticator: self.authenticator,
        };
        let transport = self.transport;
        let serve = |name, listener, router| {
            tokio::spawn(supervise(
                name,
                listener,
                router,
                Arc::clone(&transport),
                shutdown.clone(),
                Arc::clone(&servers_down),
            ))
        };
        let local_addr = self.local_addr;
        let mut servers = vec![serve("gRPC", self.listener, server::router(&parts))];
        info!(%local_addr, tls = transport.is_tls(), "gRPC server listening");
        let legacy_ws_addr = self.legacy.map(|(addr, listener)| {
            servers.push(serve(
                "legacy WebSocket",
                listener,
                server::legacy_router(&parts),
            ));
            info!(%addr, "legacy WebSocket listening");
            addr
        });
        let server = tokio::spawn(async move {
            for server in servers {
                let _ = server.await;
            }
        });
        Front {
            local_addr,
            shutdown,
            server,
            api,
            legacy_ws_addr,
        }
    }
}

/// A running server stack: the API, health and supervised listeners.
#[derive(Debug)]
pub struct Front {
    local_addr: SocketAddr,
    /// Cancelled on stop: ends telemetry streams and the accept loops.
    shutdown: CancellationToken,
    /// The supervisor tasks that run, and restart, the servers.
    server: JoinHandle<()>,
    /// A handle on the API state, for its gauges.
    api: WatchtowerApi,
    /// Where the legacy WebSocket listener is, if it is on.
    legacy_ws_addr: Option<SocketAddr>,
}

impl Front {
    /// The main listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The API state.
    pub fn api(&self) -> &WatchtowerApi {
        &self.api
    }

    /// Cancelled when the stack stops.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Stops accepting and ends telemetry streams; true if every in-flight
    /// call finished within [`DRAIN_TIMEOUT`].
    pub async fn drain(&mut self) -> bool {
        self.shutdown.cancel();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, &mut self.server)
            .await
            .is_ok();
        if !drained {
            warn!("in-flight calls still running after the drain timeout; closing the queue");
        }
        drained
    }

    /// Waits once more for the calls still in flight, then aborts them.
    pub async fn finish(&mut self) {
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
    }
}

/// Runs a server on `listener` and restarts it if it fails (returns, errs
/// or panics), while the engine keeps ticking (spec §5, "Server Thread
/// Crash"). Connections already open live in their own tasks and carry on.
/// Repeated failures back off exponentially, and an episode of failures is
/// logged once when it starts and once when the server has been up again for
/// [`STABLE_AFTER`].
async fn supervise(
    name: &'static str,
    listener: std::net::TcpListener,
    router: axum::Router,
    transport: Arc<Transport>,
    shutdown: CancellationToken,
    down: Arc<watch::Sender<usize>>,
) {
    let mut failures = 0u32;
    let lanes = Lanes::current();
    loop {
        // Accepting is the command lane's work, so a new connection is not
        // queued behind telemetry either.
        let serving = lanes.commands().spawn(serve_once(
            name,
            listener.try_clone(),
            router.clone(),
            Arc::clone(&transport),
            shutdown.clone(),
            lanes.clone(),
        ));
        let outcome = wait_serving(serving, &mut failures, name).await;
        if shutdown.is_cancelled() {
            return;
        }
        failures += 1;
        if failures == 1 {
            error!(server = name, error = %outcome, "server failed; restarting while the engine keeps ticking");
        } else {
            debug!(server = name, error = %outcome, failures, "server failed again");
        }
        down.send_modify(|n| *n += 1);
        let pause = restart_backoff(failures);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        down.send_modify(|n| *n -= 1);
    }
}

/// One run of the server on a clone of the listening socket.
async fn serve_once(
    name: &'static str,
    listener: std::io::Result<std::net::TcpListener>,
    router: axum::Router,
    transport: Arc<Transport>,
    shutdown: CancellationToken,
    lanes: Lanes,
) -> std::io::Result<()> {
    let listener = listener?;
    listener.set_nonblocking(true)?;
    server::serve(
        name,
        TcpListener::from_std(listener)?,
        router,
        transport,
        shutdown,
        lanes,
    )
    .await
}

/// Waits for a server run to end and says why; once it has stayed up for
/// [`STABLE_AFTER`], an episode of failures is over and is logged as such.
async fn wait_serving(
    mut serving: JoinHandle<std::io::Result<()>>,
    failures: &mut u32,
    name: &'static str,
) -> String {
    if *failures > 0 {
        tokio::select! {
            ended = &mut serving => return describe(ended),
            () = tokio::time::sleep(STABLE_AFTER) => {
                info!(server = name, failures = *failures, "server is back after an episode of failures");
                *failures = 0;
            }
        }
    }
    describe(serving.await)
}

fn describe(ended: Result<std::io::Result<()>, tokio::task::JoinError>) -> String {
    match ended {
        Ok(Ok(())) => "the server stopped unexpectedly".to_owned(),
        Ok(Err(err)) => err.to_string(),
        Err(err) if err.is_panic() => {
            let panic = err.into_panic();
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            format!("panicked: {message}")
        }
        Err(err) => err.to_string(),
    }
}

/// The pause before the `failures`-th restart in a row: 200 ms, doubling,
/// at most 5 s.
fn restart_backoff(failures: u32) -> Duration {
    RESTART_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(5))
        .min(MAX_RESTART_BACKOFF)
}

/// Refuses to serve a non-loopback address where callers without a token
/// would be operators, unless `--allow-anonymous-operators` says so.
fn refuse_anonymous_operators(
    config: &Config,
    authenticator: &Authenticator,
    listen: SocketAddr,
) -> Result<(), StartError> {
    if config.security.allow_anonymous_operators || !authenticator.anonymous_operators() {
        return Ok(());
    }
    match [Some(listen), config.legacy_ws_listen]
        .into_iter()
        .flatten()
        .find(|addr| !addr.ip().is_loopback())
    {
        Some(addr) => Err(StartError::AnonymousOperators { addr }),
        None => Ok(()),
    }
}

/// The connection settings, with TLS if `--tls-cert` is set.
fn transport(config: &Config) -> Result<Transport, StartError> {
    let security = &config.security;
    let tls = match (&security.tls_cert, &security.tls_key) {
        (Some(cert), Some(key)) => {
            Some(tls_acceptor(cert, key, security.tls_client_ca.as_deref())?)
        }
        _ => None,
    };
    Ok(Transport::new(config.transport.clone(), tls))
}

/// The browser rules: `--cors-origin`, and as hosts `--allowed-hosts` plus
/// the listen addresses (unless they are the unspecified address).
fn origin_policy(
    config: &Config,
    listen: SocketAddr,
    legacy: Option<SocketAddr>,
) -> Result<OriginPolicy, StartError> {
    let mut hosts = config.security.allowed_hosts.clone();
    hosts.extend(
        [Some(listen), legacy]
            .into_iter()
            .flatten()
            .filter(|addr| !addr.ip().is_unspecified())
            .map(|addr| match addr {
                SocketAddr::V4(v4) => v4.ip().to_string(),
                SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
            }),
    );
    OriginPolicy::new(&config.cors_origins, &hosts).map_err(StartError::Origins)
}

/// The whole server is SERVING once the engine has completed a tick and
/// NOT_SERVING once it stops, or while a listener is being restarted;
/// `WatchtowerService` (the command path) is also NOT_SERVING while the
/// audit log cannot be written.
async fn report_health(
    health: HealthReporter,
    mut telemetry: TelemetryReader,
    log: LogHealth,
    mut down: watch::Receiver<usize>,
    upstream: Option<watch::Receiver<bool>>,
) {
    type Api = WatchtowerServiceServer<WatchtowerApi>;
    let mut log = log.watch();
    let mut log_open = true;
    let mut down_open = true;
    // An engine node's health does not depend on the broker.
    let mut upstream = upstream.unwrap_or_else(|| watch::channel(true).1);
    let mut upstream_open = true;
    let mut shown = None;
    loop {
        let ticking = telemetry.latest().is_some_and(|s| s.tick > 0);
        let up = ticking && *down.borrow() == 0 && *upstream.borrow();
        let status = (up, up && log.borrow().is_none());
        if shown != Some(status) {
            shown = Some(status);
            health
                .set_service_status("", serving_status(status.0))
                .await;
            health
                .set_service_status(
                    <Api as tonic::server::NamedService>::NAME,
                    serving_status(status.1),
                )
                .await;
        }
        tokio::select! {
            changed = telemetry.changed() => if changed.is_err() { break },
            changed = log.changed(), if log_open => log_open = changed.is_ok(),
            changed = down.changed(), if down_open => down_open = changed.is_ok(),
            changed = upstream.changed(), if upstream_open => upstream_open = changed.is_ok(),
        }
    }
    health.set_not_serving::<Api>().await;
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
}

fn serving_status(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Why `run` ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Start-up failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The engine halted.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The tokio runtime for the network side: `--network-threads` workers
/// (0 = one per core), each, like the blocking pool, `--network-nice` below
/// the thread that builds it, and no LIFO slot. The engine thread is started
/// from `block_on` on the calling thread, so it keeps that thread's priority.
/// Also starts the command lane's thread, `--command-nice` below it
/// ([`crate::server::lanes`]); this runtime is then the telemetry lane.
pub fn network_runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    crate::server::lanes::start_command_lane(config.command_nice)?;
    let nice = config.network_nice;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .on_thread_start(move || crate::priority::lower_this_thread(nice));
    // A task woken by the running one would run next, so each telemetry
    // stream's DATA frame would be written on its own (.cargo/config.toml).
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    if config.network_threads > 0 {
        builder.worker_threads(config.network_threads);
    }
    builder.build()
}

/// Runs Watchtower on `listener` until `shutdown` resolves or the engine
/// halts, then stops gracefully.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> Result<EngineReport, RunError> {
    let mut server = SimulationServer::start(listener, config).await?;
    tokio::select! {
        () = shutdown => {}
        () = server.engine_stopped() => error!("the engine stopped on its own; shutting down"),
    }
    Ok(server.stop().await?)
}
