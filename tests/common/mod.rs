//! Shared test harness: starts Watchtower in-process on port 0 and connects a
//! real tonic client over a real socket. `TEST_LOG=1` turns logs on.
//! [`binary`] is the harness for the real binary, [`python`] runs the test
//! Python.

#![allow(dead_code)]

pub mod binary;
pub mod browser;
pub mod grpc_web;
pub mod python;
pub mod scrape;

use std::{net::SocketAddr, sync::Once, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::Channel;
use watchtower::{
    Config, SimulationServer,
    engine::{Pacing, StepGate},
    pb::{
        self, ApplyCommandRequest, GodCommand, ParameterValue, SubscribeTelemetryRequest,
        parameter_value::Kind, watchtower_service_client::WatchtowerServiceClient,
        watchtower_service_server,
    },
    priority::EngineCpu,
};

/// Upper bound for any single wait in a test; generous, since CI machines
/// are slow. Reaching it means the behaviour under test is broken.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub type Client = WatchtowerServiceClient<Channel>;

pub struct TestApp {
    pub server: SimulationServer,
    pub addr: SocketAddr,
    pub client: Client,
    /// Present for manually stepped apps.
    pub gate: Option<StepGate>,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .init();
        }
    });
}

/// An app whose engine ticks only when the test calls `step`.
pub async fn spawn_stepped_app(config: Config) -> TestApp {
    let gate = StepGate::new();
    let mut app = spawn_app_with(config, Pacing::Manual(gate.clone())).await;
    app.gate = Some(gate);
    app
}

/// The defaults, minus the fixed legacy WebSocket port (tests run in
/// parallel, so each binds what it needs on port 0) and minus the data
/// directory (tests about durability give their own temporary one).
///
/// Its engine is not pinned (`--engine-cpu off`): the suite runs many
/// servers at once, and `auto` would put every one of their engines on the
/// same CPU.
pub fn test_config() -> Config {
    Config {
        legacy_ws_listen: None,
        data_dir: None,
        engine_cpu: EngineCpu::Off,
        ..Config::default()
    }
}

/// An app whose engine ticks at `tps`.
pub async fn spawn_app(tps: f64) -> TestApp {
    spawn_app_with(test_config(), Pacing::from_tps(tps)).await
}

pub async fn spawn_app_with(config: Config, pacing: Pacing) -> TestApp {
    init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let server = SimulationServer::start_with_pacing(listener, &config, pacing)
        .await
        .expect("start watchtower");
    let addr = server.local_addr();
    let client = connect(addr).await;
    TestApp {
        server,
        addr,
        client,
        gate: None,
    }
}

/// A raw channel, for the health and reflection clients.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("connect to watchtower")
}

/// A fresh connection (its own HTTP/2 connection and flow-control window).
pub async fn connect(addr: SocketAddr) -> Client {
    WatchtowerServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to watchtower")
}

impl TestApp {
    pub fn step(&self, n: u64) {
        self.gate.as_ref().expect("a stepped app").step(n);
    }

    /// Waits until `n` commands sit in the queue.
    pub async fn wait_queue_depth(&self, n: usize) {
        eventually("queue depth", || self.server.queue_depth() == n).await;
    }

    /// Sends `request` from `client`, waits until it is queued, and steps
    /// the engine one tick to decide it; the call, to await its answer.
    pub async fn apply_on_next_tick(
        &self,
        client: &Client,
        request: pb::ApplyCommandRequest,
    ) -> tokio::task::JoinHandle<Result<tonic::Response<pb::ApplyCommandResponse>, tonic::Status>>
    {
        let call = spawn_apply(client, request);
        self.wait_queue_depth(1).await;
        self.step(1);
        call
    }

    /// The snapshot the engine published for exactly `tick`, read over gRPC.
    /// In a stepped app nothing newer can appear until the test steps again.
    pub async fn snapshot_at(&self, tick: u64) -> pb::WatchtowerSnapshot {
        let mut stream = subscribe(&mut self.client.clone(), 10).await;
        tokio::time::timeout(PATIENCE, async {
            loop {
                let snapshot = stream
                    .message()
                    .await
                    .expect("stream ok")
                    .expect("stream open")
                    .snapshot
                    .expect("snapshot set");
                assert!(snapshot.tick <= tick, "tick {tick} was skipped");
                if snapshot.tick == tick {
                    return snapshot;
                }
            }
        })
        .await
        .expect("the snapshot arrives")
    }
}

/// Opens a telemetry stream at `interval_ms`, with no history.
pub async fn subscribe(
    client: &mut Client,
    interval_ms: u32,
) -> tonic::Streaming<pb::SubscribeTelemetryResponse> {
    client
        .subscribe_telemetry(SubscribeTelemetryRequest {
            interval_ms,
            history: 0,
        })
        .await
        .expect("subscribe")
        .into_inner()
}

/// The next snapshot on `stream`; panics if the stream fails or ends.
pub async fn next_snapshot(
    stream: &mut tonic::Streaming<pb::SubscribeTelemetryResponse>,
) -> pb::WatchtowerSnapshot {
    stream
        .message()
        .await
        .expect("the stream is healthy")
        .expect("the stream is open")
        .snapshot
        .expect("every message carries a snapshot")
}

/// Sends `request` on its own task, so the test can step the engine while
/// the call waits for its Phase 0.
pub fn spawn_apply(
    client: &Client,
    request: pb::ApplyCommandRequest,
) -> tokio::task::JoinHandle<Result<tonic::Response<pb::ApplyCommandResponse>, tonic::Status>> {
    let mut client = client.clone();
    tokio::spawn(async move { client.apply_command(request).await })
}

/// Polls `done` until it holds; panics after `PATIENCE`.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub fn number(x: f64) -> Option<ParameterValue> {
    Some(ParameterValue {
        kind: Some(Kind::Number(x)),
    })
}

pub fn integer(x: i64) -> Option<ParameterValue> {
    Some(ParameterValue {
        kind: Some(Kind::Integer(x)),
    })
}

pub fn command(id: &str, key: &str, value: Option<ParameterValue>) -> ApplyCommandRequest {
    ApplyCommandRequest {
        command: Some(GodCommand {
            id: id.to_owned(),
            key: key.to_owned(),
            value,
            reason: "test".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The service name health reports under.
pub fn service_name() -> &'static str {
    <watchtower_service_server::WatchtowerServiceServer<watchtower::server::WatchtowerApi>
        as tonic::server::NamedService>::NAME
}
