//! Scale-out through NATS (issue 13), with real processes on loopback: a
//! `nats-server`, the engine node (`watchtower --broker`), relays
//! (`watchtower relay`) and nginx in front, each on ports of its own.
//! Needs the Debian packages `nats-server` and `nginx` (`./test` installs
//! them).

mod common;

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Instant,
};

use futures_util::StreamExt;
use tonic::{Code, Request, Status};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;
use watchtower::pb::{self, ListAuditEntriesRequest, SubscribeTelemetryRequest};

use common::{
    Client, PATIENCE,
    binary::Binary,
    channel, command, connect,
    grpc_web::{self, Mode},
    next_snapshot, number,
};

const KEY: &str = "fiscal.income_tax_rate";
const OPERATOR: &str = "relay-test-operator-token";
const OBSERVER: &str = "relay-test-observer-token";

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// A `nats-server` on a loopback port, killed when dropped.
struct Nats {
    child: Child,
    port: u16,
}

impl Nats {
    fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts it on `port` and waits for its "ready" line.
    fn start_on(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    /// Starts it on `port` with `extra` options (TLS, a token).
    fn start_with(port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server (apt-get install nats-server)");
        let stderr = child.stderr.take().expect("piped stderr");
        // Owned from here, so a failed wait below still kills it.
        let nats = Self { child, port };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("nats-server says it is ready");
            if line.contains("Server is ready") {
                return nats;
            }
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The engine node, publishing to `broker`, with both tokens.
fn engine_node(broker: &str, data_dir: &Path) -> Binary {
    engine_node_with(broker, data_dir, &[])
}

/// The engine node with `extra` flags.
fn engine_node_with(broker: &str, data_dir: &Path, extra: &[&str]) -> Binary {
    let mut args = vec![
        "--broker",
        broker,
        "--tps",
        "10",
        "--operator-token",
        OPERATOR,
        "--observer-token",
        OBSERVER,
        "--data-dir",
        data_dir.to_str().expect("a UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    Binary::start(&args)
}

/// A page of the audit log for `key`, read as an observer.
async fn audit_page(
    client: &mut Client,
    key: &str,
    page_size: u32,
) -> Result<Vec<pb::GodResponse>, Status> {
    let request = ListAuditEntriesRequest {
        key: key.to_owned(),
        page_size,
        ..Default::default()
    };
    Ok(client
        .list_audit_entries(authed(request, OBSERVER))
        .await?
        .into_inner()
        .entries)
}

/// A relay fed from `broker`, with the same tokens.
fn relay(broker: &str) -> Binary {
    relay_with(broker, &[])
}

/// A relay with `extra` flags.
fn relay_with(broker: &str, extra: &[&str]) -> Binary {
    let mut args = vec![
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--legacy-ws-listen",
        "off",
        "--broker",
        broker,
        "--operator-token",
        OPERATOR,
        "--observer-token",
        OBSERVER,
    ];
    args.extend_from_slice(extra);
    Binary::launch(&args, &[("RUST_LOG", "info")])
}

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII"),
    );
    request
}

async fn subscribe_as(
    client: &mut Client,
    history: u32,
) -> tonic::Streaming<pb::SubscribeTelemetryResponse> {
    client
        .subscribe_telemetry(authed(
            SubscribeTelemetryRequest {
                interval_ms: 10,
                history,
            },
            OBSERVER,
        ))
        .await
        .expect("subscribe")
        .into_inner()
}

/// The next `n` snapshots on `stream`, checked to be consecutive ticks.
async fn consecutive(
    stream: &mut tonic::Streaming<pb::SubscribeTelemetryResponse>,
    n: usize,
) -> Vec<pb::WatchtowerSnapshot> {
    let mut snapshots: Vec<pb::WatchtowerSnapshot> = Vec::new();
    while snapshots.len() < n {
        let snapshot = tokio::time::timeout(PATIENCE, next_snapshot(stream))
            .await
            .expect("a snapshot arrives");
        if let Some(last) = snapshots.last() {
            assert_eq!(snapshot.tick, last.tick + 1, "ticks are consecutive");
        }
        snapshots.push(snapshot);
    }
    snapshots
}

async fn apply(
    client: &mut Client,
    id: &str,
    value: f64,
    token: &str,
) -> Result<pb::GodResponse, Status> {
    client
        .apply_command(authed(command(id, KEY, number(value)), token))
        .await
        .map(|r| r.into_inner().response.expect("a response"))
}

/// What a refusal says, without what differs per command (its id, tick).
fn refusal(status: &Status) -> (Code, Vec<(String, String)>, Option<String>) {
    let details = status.get_error_details();
    let violations = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default();
    let reason = details.error_info().map(|i| i.reason.clone());
    (status.code(), violations, reason)
}

async fn health_watch(addr: SocketAddr) -> tonic::Streaming<pb_health::HealthCheckResponse> {
    HealthClient::new(channel(addr).await)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health watch")
        .into_inner()
}

use tonic_health::pb as pb_health;

/// Waits until the health stream reports `wanted`.
async fn health_becomes(
    watch: &mut tonic::Streaming<pb_health::HealthCheckResponse>,
    wanted: ServingStatus,
) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let status = watch
                .message()
                .await
                .expect("health stream ok")
                .expect("health stream open")
                .status();
            if status == wanted {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("health never became {wanted:?}"));
}

#[tokio::test]
async fn a_relay_serves_the_engine_nodes_snapshots_and_forwards_commands_as_their_caller() {
    let nats = Nats::start();
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut engine = engine_node(&nats.url(), data.path());
    let mut relay = relay(&nats.url());
    let mut on_engine = connect(engine.addr()).await;
    let mut on_relay = connect(relay.addr()).await;

    // The same ticks, and the same snapshots, as on the engine node.
    let mut stream = subscribe_as(&mut on_relay, 0).await;
    let from_relay = consecutive(&mut stream, 5).await;
    let mut history = subscribe_as(&mut on_engine, 50).await;
    let mut from_engine = Vec::new();
    while from_engine
        .last()
        .is_none_or(|s: &pb::WatchtowerSnapshot| s.tick < from_relay[4].tick)
    {
        from_engine.push(next_snapshot(&mut history).await);
    }
    for snapshot in &from_relay {
        let same = from_engine.iter().find(|s| s.tick == snapshot.tick);
        assert_eq!(same, Some(snapshot), "tick {} differs", snapshot.tick);
    }

    // A command through the relay is applied once, audited as its caller.
    let response = apply(&mut on_relay, "through-relay", 0.27, OPERATOR)
        .await
        .expect("the relay forwards the command");
    assert!(response.success);
    assert_eq!(response.principal, "operator");
    let audit = audit_page(&mut on_engine, KEY, 0)
        .await
        .expect("ListAuditEntries");
    let entries: Vec<_> = audit
        .iter()
        .filter(|e| e.command_id == "through-relay")
        .collect();
    assert_eq!(entries.len(), 1, "audited exactly once: {audit:?}");
    assert_eq!(entries[0].principal, "operator");
    assert!(entries[0].success);

    // The relay reads the engine node's audit log; a bad query is refused
    // there as it is on the engine node.
    let through_relay = audit_page(&mut on_relay, KEY, 0)
        .await
        .expect("ListAuditEntries through the relay");
    assert_eq!(through_relay, audit);
    let bad_on_relay = audit_page(&mut on_relay, KEY, 5000)
        .await
        .expect_err("page_size over 1000");
    let bad_on_engine = audit_page(&mut on_engine, KEY, 5000)
        .await
        .expect_err("page_size over 1000");
    assert_eq!(bad_on_relay.code(), Code::InvalidArgument);
    assert_eq!(refusal(&bad_on_relay), refusal(&bad_on_engine));

    // A bad command gets the same status and details as on the engine node.
    let on_relay_refusal = apply(&mut on_relay, "bad-via-relay", 9.0, OPERATOR)
        .await
        .expect_err("out of range");
    let on_engine_refusal = apply(&mut on_engine, "bad-via-engine", 9.0, OPERATOR)
        .await
        .expect_err("out of range");
    assert_eq!(on_relay_refusal.code(), Code::InvalidArgument);
    assert_eq!(refusal(&on_relay_refusal), refusal(&on_engine_refusal));
    assert_eq!(on_relay_refusal.message(), on_engine_refusal.message());

    // An observer may read through the relay but not steer.
    let denied = apply(&mut on_relay, "observer", 0.28, OBSERVER)
        .await
        .expect_err("an observer cannot steer");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let parameters = on_relay
        .list_parameters(authed(pb::ListParametersRequest::default(), OBSERVER))
        .await
        .expect("ListParameters on the relay")
        .into_inner()
        .parameters;
    assert!(parameters.iter().any(|p| p.key == KEY));

    // The engine node replaced by one running another run: the relay serves
    // the new run's id (and catalogue) once its snapshots arrive.
    let old_run = run_id(&mut on_relay).await;
    assert_eq!(old_run, run_id(&mut on_engine).await);
    drop(engine);
    let mut engine = engine_node(&nats.url(), data.path());
    let new_run = run_id(&mut connect(engine.addr()).await).await;
    assert_ne!(new_run, old_run);
    tokio::time::timeout(PATIENCE, async {
        while run_id(&mut on_relay).await != new_run {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the relay serves the new run's catalogue");
    drop(engine);
    drop(relay);
}

/// The run id `GetServerStats` reports.
async fn run_id(client: &mut Client) -> String {
    client
        .get_server_stats(authed(pb::GetServerStatsRequest::default(), OBSERVER))
        .await
        .expect("GetServerStats")
        .into_inner()
        .run_id
}

#[tokio::test]
async fn broker_down_leaves_the_engine_ticking_and_the_relay_unavailable_until_it_returns() {
    let mut nats = Nats::start();
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut engine = engine_node(&nats.url(), data.path());
    let mut relay = relay(&nats.url());
    let relay_addr = relay.addr();
    let mut on_engine = connect(engine.addr()).await;
    let mut on_relay = connect(relay_addr).await;
    let mut health = health_watch(relay_addr).await;
    health_becomes(&mut health, ServingStatus::Serving).await;
    let before = consecutive(&mut subscribe_as(&mut on_relay, 0).await, 1).await[0].tick;

    nats.kill();
    health_becomes(&mut health, ServingStatus::NotServing).await;
    let refused = apply(&mut on_relay, "while-down", 0.26, OPERATOR)
        .await
        .expect_err("no broker");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    // The engine ticks on; the relay still serves its last snapshot.
    consecutive(&mut subscribe_as(&mut on_engine, 0).await, 3).await;
    let last = next_snapshot(&mut subscribe_as(&mut on_relay, 1).await).await;
    assert!(last.tick >= before);

    let nats = Nats::start_on(nats.port);
    health_becomes(&mut health, ServingStatus::Serving).await;
    let mut resumed = subscribe_as(&mut on_relay, 0).await;
    let fresh = tokio::time::timeout(PATIENCE, async {
        loop {
            let snapshot = next_snapshot(&mut resumed).await;
            if snapshot.tick > last.tick {
                return snapshot;
            }
        }
    })
    .await
    .expect("snapshots flow through the relay again");
    assert!(fresh.tick > last.tick);
    let applied = apply(&mut on_relay, "after-outage", 0.25, OPERATOR)
        .await
        .expect("commands flow again");
    assert!(applied.success);

    // The engine node down: UNAVAILABLE, while the relay stays up.
    drop(engine);
    let refused = apply(&mut on_relay, "no-engine", 0.24, OPERATOR)
        .await
        .expect_err("no engine node");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("engine node"),
        "{}",
        refused.message()
    );
    let unread = audit_page(&mut on_relay, KEY, 0)
        .await
        .expect_err("no engine node to read the audit log");
    assert_eq!(unread.code(), Code::Unavailable, "{unread:?}");

    // The engine node back, resuming its run: commands flow through the
    // relay again, and its audit log holds both, once each.
    let _engine = engine_node_with(&nats.url(), data.path(), &["--resume", "latest"]);
    let resumed = tokio::time::timeout(PATIENCE, async {
        loop {
            match apply(&mut on_relay, "engine-back", 0.23, OPERATOR).await {
                Ok(response) => return response,
                Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the relay forwards again once the engine node is back");
    assert!(resumed.success);
    let ids: Vec<_> = audit_page(&mut on_relay, KEY, 0)
        .await
        .expect("ListAuditEntries through the relay")
        .into_iter()
        .map(|e| e.command_id)
        .filter(|id| id == "after-outage" || id == "engine-back")
        .collect();
    assert_eq!(ids, ["after-outage", "engine-back"]);
    drop(relay);
}

#[tokio::test]
async fn a_broker_with_tls_and_a_token_carries_a_relays_traffic_and_refuses_a_wrong_token() {
    let pki = tempfile::tempdir().expect("a temporary directory");
    let (ca, cert, key) = broker_pki(pki.path());
    let nats = Nats::start_with(
        free_port(),
        &[
            "--tls",
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
            "--auth",
            "broker-secret",
        ],
    );
    let data = tempfile::tempdir().expect("a temporary directory");
    let secured = [
        "--broker-tls-ca",
        ca.as_str(),
        "--broker-token",
        "broker-secret",
    ];
    let _engine = engine_node_with(&nats.url(), data.path(), &secured);
    let mut relay = relay_with(&nats.url(), &secured);
    let mut on_relay = connect(relay.addr()).await;
    consecutive(&mut subscribe_as(&mut on_relay, 0).await, 3).await;
    let applied = apply(&mut on_relay, "over-tls", 0.22, OPERATOR)
        .await
        .expect("a command through the relay over TLS");
    assert!(applied.success);

    // A wrong token: the relay says why, and never serves.
    let mut refused = relay_with(
        &nats.url(),
        &["--broker-tls-ca", ca.as_str(), "--broker-token", "wrong"],
    );
    let line = refused.wait_for(&["broker", "authorization violation"]);
    assert!(!line.contains("broker-secret"), "{line}");
}

/// A CA and a certificate for 127.0.0.1 it signs, as PEM files in `dir`:
/// (CA, certificate, key) paths.
fn broker_pki(dir: &Path) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("a key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("a CA");
    let key = rcgen::KeyPair::generate().expect("a key");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("a certificate");
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path.to_str().expect("a UTF-8 path").to_owned()
    };
    (
        write("ca.pem", ca_cert.pem()),
        write("nats.pem", cert.pem()),
        write("nats-key.pem", key.serialize_pem()),
    )
}

/// nginx in front of `relays`, on two ports of its own: native gRPC
/// (HTTP/2 cleartext) and HTTP/1.1 (gRPC-Web, WebSocket, dashboard). It
/// runs in the foreground from a temporary prefix, killed when dropped.
struct Nginx {
    child: Child,
    grpc: SocketAddr,
    web: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(relays: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let servers: String = relays
            .iter()
            .map(|addr| format!("server {addr} max_fails=1 fail_timeout=30s;\n"))
            .collect();
        // Run workers as the current user where nginx would otherwise switch.
        let user = if is_root() { "user root;" } else { "" };
        let conf = include_str!("nginx.conf.in")
            .replace("@USER@", user)
            .replace("@PREFIX@", dir.path().to_str().unwrap())
            .replace("@SERVERS@", &servers)
            .replace("@GRPC@", &grpc.to_string())
            .replace("@WEB@", &web.to_string());
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start nginx (apt-get install nginx)");
        // Owned from here, so a failed wait below still stops it.
        let nginx = Self {
            child,
            grpc,
            web,
            _dir: dir,
        };
        // nginx in the foreground prints nothing when ready: poll its ports.
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(grpc).is_err() || TcpStream::connect(web).is_err() {
            assert!(Instant::now() < deadline, "nginx never listened");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        nginx
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers too (SIGKILL would orphan
    /// them, still listening).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test]
async fn clients_through_nginx_reach_a_relay_and_move_to_the_other_when_one_dies() {
    let nats = Nats::start();
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut engine = engine_node(&nats.url(), data.path());
    let mut first = relay(&nats.url());
    let mut second = relay(&nats.url());
    let (first_addr, second_addr) = (first.addr(), second.addr());
    let nginx = Nginx::start(&[first_addr, second_addr]);

    // Native gRPC through nginx.
    let mut through = connect(nginx.grpc).await;
    consecutive(&mut subscribe_as(&mut through, 0).await, 3).await;
    let applied = apply(&mut through, "through-nginx", 0.29, OPERATOR)
        .await
        .expect("a command through nginx and a relay");
    assert_eq!(applied.principal, "operator");

    // gRPC-Web through nginx.
    let bearer = format!("Bearer {OBSERVER}");
    let web = grpc_web::unary_with(
        nginx.web,
        Mode::Binary,
        "ListParameters",
        &pb::ListParametersRequest::default(),
        &[("authorization", bearer.as_str())],
    )
    .await;
    assert_eq!(web.status(), "0", "{}", web.message());

    // WebSocket through nginx.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", nginx.web))
        .await
        .expect("WebSocket upgrade through nginx");
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(format!(
        r#"{{"auth":{{"token":"{OBSERVER}"}}}}"#
    )))
    .await
    .expect("send auth");
    let snapshot_seen = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(message)) = ws.next().await {
            if message.to_text().is_ok_and(|t| t.contains("\"snapshot\"")) {
                return true;
            }
        }
        false
    })
    .await
    .expect("a WebSocket snapshot in time");
    assert!(snapshot_seen);

    // A relay killed mid-stream: the other relay's stream goes on, the
    // engine too, and a client through nginx lands on the survivor.
    let mut on_second = subscribe_as(&mut connect(second_addr).await, 0).await;
    let mut on_engine = subscribe_as(&mut connect(engine.addr()).await, 0).await;
    consecutive(&mut on_second, 1).await;
    drop(first);
    consecutive(&mut on_second, 5).await;
    consecutive(&mut on_engine, 5).await;
    for _ in 0..4 {
        let mut again = connect(nginx.grpc).await;
        consecutive(&mut subscribe_as(&mut again, 0).await, 2).await;
    }
    let _ = first_addr;
    drop(second);
}

#[test]
fn a_relay_without_a_broker_refuses_to_start_and_names_the_flag() {
    let mut relay = Binary::launch(
        &[
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--legacy-ws-listen",
            "off",
        ],
        &[("RUST_LOG", "info")],
    );
    let status = relay.wait_exit(PATIENCE);
    assert!(!status.success());
    let log = relay.all_lines().join("\n");
    assert!(log.contains("--broker nats://HOST:PORT"), "{log}");
}
