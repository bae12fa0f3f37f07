//! Security through real clients on real sockets: roles on every transport,
//! browser origins and DNS rebinding, bounded inputs, TLS, connection
//! limits, fair queue shares, rate limits and deadlines.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{grpc_web::*, *};
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::{Method, Request, StatusCode, body::Bytes, header};
use prost::Message as _;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest},
};
use tonic::{Code, Request as GrpcRequest};
use tonic_types::StatusExt;
use watchtower::{
    Config,
    engine::Pacing,
    pb::{
        self, ApplyCommandRequest, GetServerStatsRequest, ListParametersRequest,
        SubscribeTelemetryRequest, WebSocketServerMessage, WhoAmIRequest,
        web_socket_server_message::Message as ServerMessage,
    },
};

const KEY: &str = "fiscal.vat_rate";
const OPERATOR_TOKEN: &str = "operator-secret-7f3a";
const OBSERVER_TOKEN: &str = "observer-secret-91c2";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The four kinds of caller the matrix tries.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    NoToken,
    WrongToken,
    Observer,
    Operator,
}

impl Who {
    const ALL: [Who; 4] = [Who::NoToken, Who::WrongToken, Who::Observer, Who::Operator];

    fn token(self) -> Option<&'static str> {
        match self {
            Who::NoToken => None,
            Who::WrongToken => Some("not-a-token"),
            Who::Observer => Some(OBSERVER_TOKEN),
            Who::Operator => Some(OPERATOR_TOKEN),
        }
    }

    fn bearer(self) -> Option<String> {
        self.token().map(|t| format!("Bearer {t}"))
    }

    /// The gRPC code a read gets with both tokens configured.
    fn read_code(self) -> Code {
        match self {
            Who::NoToken | Who::WrongToken => Code::Unauthenticated,
            Who::Observer | Who::Operator => Code::Ok,
        }
    }

    /// The gRPC code a command gets with both tokens configured.
    fn write_code(self) -> Code {
        match self {
            Who::NoToken | Who::WrongToken => Code::Unauthenticated,
            Who::Observer => Code::PermissionDenied,
            Who::Operator => Code::Ok,
        }
    }
}

fn secured_config() -> Config {
    let mut config = Config {
        legacy_ws_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..test_config()
    };
    config.security.operator_token = Some(OPERATOR_TOKEN.parse().unwrap());
    config.security.observer_token = Some(OBSERVER_TOKEN.parse().unwrap());
    config
}

async fn ticking(config: Config, tps: f64) -> TestApp {
    let app = spawn_app_with(config, Pacing::from_tps(tps)).await;
    let telemetry = app.server.telemetry();
    eventually("a first tick", || {
        telemetry.latest().is_some_and(|s| s.tick > 0)
    })
    .await;
    app
}

fn authed<T>(message: T, who: Who) -> GrpcRequest<T> {
    let mut request = GrpcRequest::new(message);
    if let Some(bearer) = who.bearer() {
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().unwrap());
    }
    request
}

fn code_of<T>(result: &Result<T, tonic::Status>) -> Code {
    result
        .as_ref()
        .map_or_else(tonic::Status::code, |_| Code::Ok)
}

/// The value of `KEY` the engine holds now, read in-process.
fn current_vat(app: &TestApp) -> pb::ParameterValue {
    app.server
        .telemetry()
        .latest()
        .expect("a snapshot")
        .parameters[KEY]
}

/// The published value once every command answered so far shows in a
/// snapshot: answers leave at Phase 0, the snapshot follows at Phase 8.
async fn settled_vat(app: &TestApp) -> pb::ParameterValue {
    let telemetry = app.server.telemetry();
    let tick = telemetry.latest().expect("a snapshot").tick;
    eventually("a newer snapshot", || {
        telemetry.latest().is_some_and(|s| s.tick > tick)
    })
    .await;
    current_vat(app)
}

/// Every RPC over native gRPC, as each kind of caller.
async fn grpc_matrix(app: &TestApp, value: &mut f64) {
    for who in Who::ALL {
        let mut client = app.client.clone();
        let reads = [
            code_of(
                &client
                    .list_parameters(authed(ListParametersRequest {}, who))
                    .await,
            ),
            code_of(
                &client
                    .get_server_stats(authed(GetServerStatsRequest {}, who))
                    .await,
            ),
            code_of(&client.who_am_i(authed(WhoAmIRequest {}, who)).await),
            code_of(
                &client
                    .subscribe_telemetry(authed(SubscribeTelemetryRequest::default(), who))
                    .await,
            ),
        ];
        assert_eq!(reads, [who.read_code(); 4], "gRPC reads as {who:?}");
        *value += 0.01;
        let before = settled_vat(app).await;
        let result = client
            .apply_command(authed(command("", KEY, number(*value)), who))
            .await;
        assert_eq!(
            code_of(&result),
            who.write_code(),
            "gRPC command as {who:?}"
        );
        if who != Who::Operator {
            assert_eq!(current_vat(app), before, "a refusal changes nothing");
        }
        let set_tps = pb::ControlEngineRequest {
            action: Some(pb::control_engine_request::Action::SetTps(
                pb::ControlSetTps { tps: 50.0 },
            )),
        };
        let result = client.control_engine(authed(set_tps, who)).await;
        assert_eq!(
            code_of(&result),
            who.write_code(),
            "gRPC run control as {who:?}"
        );
    }
}

/// Every RPC over gRPC-Web (binary mode), as each kind of caller.
async fn grpc_web_matrix(app: &TestApp, value: &mut f64) {
    let code = |reply: &Unary| reply.status().parse::<i32>().map(Code::from).unwrap();
    for who in Who::ALL {
        let bearer = who.bearer();
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        let mut reads = Vec::new();
        for (method, request) in [
            ("ListParameters", ListParametersRequest {}.encode_to_vec()),
            ("GetServerStats", GetServerStatsRequest {}.encode_to_vec()),
            ("WhoAmI", WhoAmIRequest {}.encode_to_vec()),
        ] {
            let reply = unary_with(app.addr, Mode::Binary, method, &Raw(request), &headers).await;
            reads.push(code(&reply));
        }
        let stream = call(
            app.addr,
            Mode::Binary,
            "SubscribeTelemetry",
            &SubscribeTelemetryRequest::default(),
            &headers,
        )
        .await;
        reads.push(first_status_of_stream(stream).await);
        assert_eq!(reads, [who.read_code(); 4], "gRPC-Web reads as {who:?}");
        *value += 0.01;
        let before = settled_vat(app).await;
        let reply = unary_with(
            app.addr,
            Mode::Binary,
            "ApplyCommand",
            &command("", KEY, number(*value)),
            &headers,
        )
        .await;
        assert_eq!(
            code(&reply),
            who.write_code(),
            "gRPC-Web command as {who:?}"
        );
        if who != Who::Operator {
            assert_eq!(current_vat(app), before, "a refusal changes nothing");
        }
    }
}

/// Already-encoded request bytes.
#[derive(Clone, PartialEq, Default)]
struct Raw(Vec<u8>);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raw({} bytes)", self.0.len())
    }
}

impl prost::Message for Raw {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// OK once a stream delivers a message; otherwise the status it ends with.
async fn first_status_of_stream(response: hyper::Response<hyper::body::Incoming>) -> Code {
    if let Some(status) = response.headers().get("grpc-status") {
        return Code::from(status.to_str().unwrap().parse::<i32>().unwrap());
    }
    let mut reader = FrameReader::new(response, Mode::Binary);
    match reader.next().await {
        Some(Frame::Data(_)) => Code::Ok,
        Some(Frame::Trailers(trailers)) => {
            Code::from(trailers["grpc-status"].parse::<i32>().unwrap())
        }
        None => panic!("the stream ended without a status"),
    }
}

async fn open_ws(url: &str, who: Who) -> Result<Ws, tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    if let Some(bearer) = who.bearer() {
        request
            .headers_mut()
            .insert("authorization", bearer.parse().unwrap());
    }
    tokio::time::timeout(PATIENCE, connect_async(request))
        .await
        .expect("the handshake finishes in time")
        .map(|(ws, _)| ws)
}

async fn ws_next(ws: &mut Ws) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame arrives in time")
            .expect("the connection is open")
            .expect("a valid frame");
        if let Message::Text(text) = frame {
            let message: WebSocketServerMessage = serde_json::from_str(&text).unwrap();
            return message.message.expect("one kind is set");
        }
    }
}

/// The next reply that is not a snapshot.
async fn ws_reply(ws: &mut Ws) -> ServerMessage {
    loop {
        match ws_next(ws).await {
            ServerMessage::Snapshot(_) => {}
            other => return other,
        }
    }
}

fn ws_command(value: f64) -> Message {
    let json = serde_json::json!({"command": {"key": KEY, "value": {"number": value}}});
    Message::text(json.to_string())
}

/// An observer may list the schedule over the WebSocket, as over gRPC, but
/// not cancel from it.
async fn observer_reads_the_schedule_but_cannot_cancel(url: &str, ws: &mut Ws) {
    let frame = serde_json::json!({"listScheduled": {}}).to_string();
    ws.send(Message::text(frame)).await.unwrap();
    let reply = ws_reply(ws).await;
    assert!(
        matches!(reply, ServerMessage::Scheduled(_)),
        "{url}: {reply:?}"
    );
    let frame = serde_json::json!({"cancelScheduled": {"commandId": "x"}}).to_string();
    ws.send(Message::text(frame)).await.unwrap();
    match ws_reply(ws).await {
        ServerMessage::Error(e) => assert_eq!(e.code, "PERMISSION_DENIED", "{url}"),
        other => panic!("{url}: an observer's cancel got {other:?}"),
    }
}

/// The WebSocket code a command gets, as each kind of caller, on one URL.
async fn ws_matrix(app: &TestApp, url: &str, value: &mut f64) {
    for who in Who::ALL {
        let opened = open_ws(url, who).await;
        if who == Who::WrongToken {
            let Err(tungstenite::Error::Http(response)) = opened else {
                panic!("{url}: a wrong token is refused at the upgrade");
            };
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{url}");
            continue;
        }
        let mut ws = opened.unwrap_or_else(|e| panic!("{url} as {who:?}: {e}"));
        *value += 0.01;
        let before = settled_vat(app).await;
        ws.send(ws_command(*value)).await.unwrap();
        let reply = ws_reply(&mut ws).await;
        match (who, reply) {
            (Who::Operator, ServerMessage::Response(r)) => assert!(r.success, "{r:?}"),
            (Who::Observer, ServerMessage::Error(e)) => assert_eq!(e.code, "PERMISSION_DENIED"),
            (Who::NoToken, ServerMessage::Error(e)) => assert_eq!(e.code, "UNAUTHENTICATED"),
            (who, reply) => panic!("{url} as {who:?}: unexpected {reply:?}"),
        }
        if who != Who::Operator {
            assert_eq!(current_vat(app), before, "a refusal changes nothing");
        }
        if who == Who::Observer {
            observer_reads_the_schedule_but_cannot_cancel(url, &mut ws).await;
        }
        if who != Who::NoToken {
            assert!(
                matches!(ws_next(&mut ws).await, ServerMessage::Snapshot(_)),
                "{url}: telemetry flows to {who:?}"
            );
        }
    }
}

#[tokio::test]
async fn every_rpc_on_every_transport_checks_the_callers_role() {
    let app = ticking(secured_config(), 50.0).await;
    let legacy = app.server.legacy_ws_addr().unwrap();
    let mut value = 0.1;
    grpc_matrix(&app, &mut value).await;
    grpc_web_matrix(&app, &mut value).await;
    ws_matrix(&app, &format!("ws://{}/ws", app.addr), &mut value).await;
    ws_matrix(&app, &format!("ws://{legacy}/"), &mut value).await;
    // Exactly the four operator commands and the operator's one run-control
    // action were audited: refusals never reach the queue.
    let audit = app
        .server
        .telemetry()
        .latest()
        .unwrap()
        .audit
        .clone()
        .unwrap();
    assert_eq!(audit.total, 5);
    assert!(audit.recent.iter().all(|r| &*r.principal == "operator"));
}

#[tokio::test]
async fn health_and_reflection_stay_open_when_tokens_are_required() {
    let app = ticking(secured_config(), 50.0).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(app.addr).await);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health needs no token");
    assert_eq!(reply.into_inner().status, 1, "SERVING");
}

#[tokio::test]
async fn an_operator_token_alone_makes_anonymous_callers_observers() {
    let mut config = test_config();
    config.security.operator_token = Some(OPERATOR_TOKEN.parse().unwrap());
    let app = ticking(config, 50.0).await;
    let mut client = app.client.clone();
    let me = client
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (me.principal.as_str(), me.role()),
        ("anonymous", pb::Role::Observer)
    );
    let refused = client
        .apply_command(command("", KEY, number(0.2)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let info = refused.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "OPERATOR_REQUIRED");
    let applied = client
        .apply_command(authed(command("by-op", KEY, number(0.2)), Who::Operator))
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    assert_eq!(applied.principal, "operator");
}

#[tokio::test]
async fn a_browser_authenticates_a_websocket_with_its_first_message() {
    let app = ticking(secured_config(), 50.0).await;
    let url = format!("ws://{}/ws", app.addr);
    let mut ws = open_ws(&url, Who::NoToken).await.unwrap();
    let auth = serde_json::json!({"auth": {"token": OPERATOR_TOKEN}}).to_string();
    ws.send(Message::text(auth)).await.unwrap();
    match ws_reply(&mut ws).await {
        ServerMessage::Session(session) => {
            assert_eq!(
                (session.principal.as_str(), session.role()),
                ("operator", pb::Role::Operator)
            );
        }
        other => panic!("expected a session, got {other:?}"),
    }
    ws.send(ws_command(0.3)).await.unwrap();
    let ServerMessage::Response(response) = ws_reply(&mut ws).await else {
        panic!("expected a response");
    };
    assert!(response.success);
    assert_eq!(response.principal, "operator");

    // A wrong token in a message closes the connection after saying why.
    let mut ws = open_ws(&url, Who::NoToken).await.unwrap();
    let auth = serde_json::json!({"auth": {"token": "guess"}}).to_string();
    ws.send(Message::text(auth)).await.unwrap();
    let ServerMessage::Error(error) = ws_reply(&mut ws).await else {
        panic!("expected an error");
    };
    assert_eq!(error.code, "UNAUTHENTICATED");
    let end = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert!(
        matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{end:?}"
    );
}

/// A raw HTTP/1.1 request with the given headers.
async fn raw(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> StatusCode {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(addr, request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .status()
}

#[tokio::test]
async fn foreign_origins_rebound_hosts_and_userinfo_origins_are_refused() {
    let app = ticking(
        Config {
            legacy_ws_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..test_config()
        },
        50.0,
    )
    .await;
    let legacy = app.server.legacy_ws_addr().unwrap();
    let before = current_vat(&app);
    // A cross-origin WebSocket, on both ports: refused before any message.
    for url in [format!("ws://{}/ws", app.addr), format!("ws://{legacy}/")] {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", "http://evil.example".parse().unwrap());
        let Err(tungstenite::Error::Http(response)) = connect_async(request).await else {
            panic!("{url}: a cross-origin upgrade must be refused");
        };
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{url}");
    }
    // DNS rebinding: the page at evil.example:PORT now resolves to us and
    // calls "its own" origin.
    let port = app.addr.port();
    let rebound_host = format!("evil.example:{port}");
    let rebound_origin = format!("http://evil.example:{port}");
    let body = frame(&command("rebound", KEY, number(0.45)));
    let grpc_web = [
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
    ];
    let path = "/watchtower.v1.WatchtowerService/ApplyCommand";
    let mut headers = grpc_web.to_vec();
    headers.extend([
        ("host", rebound_host.as_str()),
        ("origin", rebound_origin.as_str()),
    ]);
    assert_eq!(
        raw(app.addr, Method::POST, path, &headers, body.clone()).await,
        StatusCode::FORBIDDEN
    );
    // The rebound page cannot even load the dashboard.
    let rebound = [("host", rebound_host.as_str())];
    assert_eq!(
        raw(app.addr, Method::GET, "/", &rebound, vec![]).await,
        StatusCode::FORBIDDEN
    );
    // An origin with userinfo is the host after the `@`.
    let host = app.addr.to_string();
    let mut headers = grpc_web.to_vec();
    headers.extend([
        ("host", host.as_str()),
        ("origin", "http://localhost:1@evil.example"),
    ]);
    assert_eq!(
        raw(app.addr, Method::POST, path, &headers, body).await,
        StatusCode::FORBIDDEN
    );

    assert_eq!(current_vat(&app), before, "nothing was applied");
    // Native gRPC sends no Origin and is unaffected.
    app.client
        .clone()
        .apply_command(command("native", KEY, number(0.11)))
        .await
        .expect("native gRPC still works");
}

fn process_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[tokio::test]
async fn oversized_fields_are_refused_on_every_transport_and_nothing_grows() {
    let app = ticking(
        Config {
            legacy_ws_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..test_config()
        },
        100.0,
    )
    .await;
    let legacy = app.server.legacy_ws_addr().unwrap();
    let cases = [
        ("command.id", "i".repeat(129), KEY.to_owned(), String::new()),
        ("command.key", String::new(), "k".repeat(129), String::new()),
        (
            "command.reason",
            String::new(),
            KEY.to_owned(),
            "r".repeat(1025),
        ),
    ];
    let request = |id: &str, key: &str, reason: &str| ApplyCommandRequest {
        command: Some(pb::GodCommand {
            id: id.to_owned(),
            key: key.to_owned(),
            value: number(0.3),
            reason: reason.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    for (field, id, key, reason) in &cases {
        let status = app
            .client
            .clone()
            .apply_command(request(id, key, reason))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "gRPC {field}");
        let violations = status.get_error_details().bad_request().cloned().unwrap();
        assert_eq!(violations.field_violations[0].field, *field);
        assert!(
            status.message().len() < 300,
            "the echo is bounded: {}",
            status.message()
        );

        let reply = unary(
            app.addr,
            Mode::Binary,
            "ApplyCommand",
            &request(id, key, reason),
        )
        .await;
        assert_eq!(reply.status(), "3", "gRPC-Web {field}");

        for url in [format!("ws://{}/ws", app.addr), format!("ws://{legacy}/")] {
            let mut ws = open_ws(&url, Who::NoToken).await.unwrap();
            let json = serde_json::json!({"command": {"id": id, "key": key, "value": {"number": 0.3}, "reason": reason}});
            ws.send(Message::text(json.to_string())).await.unwrap();
            let ServerMessage::Error(error) = ws_reply(&mut ws).await else {
                panic!("{url}: expected an error for {field}");
            };
            assert_eq!(
                (error.code.as_str(), error.field.as_str()),
                ("INVALID_ARGUMENT", *field)
            );
        }
    }

    let snapshot_len = |app: &TestApp| app.server.telemetry().latest().unwrap().encoded_len();
    let (len_before, rss_before) = (snapshot_len(&app), process_rss_kib());
    // 100 attempts with a 1 MiB key (refused by the size limit) and 100 with
    // a 2 KiB reason: before the limits, each was copied into every snapshot.
    let mut client = app.client.clone();
    for i in 0..100 {
        let huge = request(&format!("big-{i}"), &"k".repeat(1 << 20), "");
        assert!(client.apply_command(huge).await.is_err());
        let long = request(&format!("long-{i}"), KEY, &"r".repeat(2048));
        assert_eq!(
            client.apply_command(long).await.unwrap_err().code(),
            Code::InvalidArgument
        );
    }
    // A few ticks later the snapshot is the same size and RSS has not grown
    // by anything like the 100 MiB sent.
    let tick = app.server.telemetry().latest().unwrap().tick;
    let telemetry = app.server.telemetry();
    eventually("ten more ticks", || {
        telemetry.latest().unwrap().tick > tick + 10
    })
    .await;
    let len_after = snapshot_len(&app);
    assert!(
        len_after <= len_before + 64,
        "snapshot {len_before} -> {len_after} bytes"
    );
    let grown = process_rss_kib().saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
}

#[tokio::test]
async fn a_unary_body_with_two_messages_is_refused_whole() {
    let app = ticking(test_config(), 50.0).await;
    let before = current_vat(&app);
    let body = [
        frame(&command("one", KEY, number(0.31))),
        frame(&command("two", KEY, number(0.32))),
    ]
    .concat();
    let response = send(
        app.addr,
        Request::builder()
            .method(Method::POST)
            .uri("/watchtower.v1.WatchtowerService/ApplyCommand")
            .header(header::HOST, app.addr.to_string())
            .header(header::CONTENT_TYPE, "application/grpc-web+proto")
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
    .await;
    assert_eq!(response.headers()["grpc-status"], "3", "INVALID_ARGUMENT");
    let tick = app.server.telemetry().latest().unwrap().tick;
    let telemetry = app.server.telemetry();
    eventually("two more ticks", || {
        telemetry.latest().unwrap().tick > tick + 2
    })
    .await;
    assert_eq!(current_vat(&app), before, "neither message was applied");
}

#[tokio::test]
async fn a_unary_body_with_no_message_is_refused_on_every_method() {
    let app = ticking(test_config(), 50.0).await;
    // SubscribeTelemetry has a route of its own (pre-framed telemetry); it
    // refuses an empty body the way the generated ones do.
    for method in ["SubscribeTelemetry", "ApplyCommand", "ListParameters"] {
        let response = send(
            app.addr,
            Request::builder()
                .method(Method::POST)
                .uri(format!("/watchtower.v1.WatchtowerService/{method}"))
                .header(header::HOST, app.addr.to_string())
                .header(header::CONTENT_TYPE, "application/grpc-web+proto")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        let headers = response.headers();
        assert_eq!(headers["grpc-status"], "3", "{method}: INVALID_ARGUMENT");
        let message = headers["grpc-message"].to_str().unwrap();
        assert!(message.contains("carried%20none"), "{method}: {message}");
    }
}

#[tokio::test]
async fn a_flooding_client_cannot_keep_another_clients_commands_out() {
    let app = ticking(test_config(), 50.0).await;
    let flooder = connect(app.addr).await;
    let flood: Vec<_> = (0..300)
        .map(|i| spawn_apply(&flooder, command(&format!("flood-{i}"), KEY, number(0.2))))
        .collect();
    let mut other = connect(app.addr).await;
    for i in 0..50 {
        let response = other
            .apply_command(command(
                &format!("steady-{i}"),
                "fiscal.income_tax_rate",
                number(0.25),
            ))
            .await
            .unwrap_or_else(|status| panic!("command {i} of the second client: {status:?}"));
        assert!(response.into_inner().response.unwrap().success);
    }
    let mut refused = 0;
    for call in flood {
        if let Err(status) = call.await.unwrap() {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            refused += 1;
        }
    }
    assert!(refused > 0, "the flood went over its share");
}

#[tokio::test]
async fn the_command_rate_and_the_subscriber_cap_are_answered_with_resource_exhausted() {
    let mut config = test_config();
    config.security.command_rate = 2.0;
    config.transport.max_subscribers = 2;
    let app = ticking(config, 50.0).await;
    let mut client = app.client.clone();
    for i in 0..2 {
        client
            .apply_command(command(&format!("burst-{i}"), KEY, number(0.2)))
            .await
            .expect("within the burst");
    }
    let status = client
        .apply_command(command("over", KEY, number(0.2)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "COMMAND_RATE");
    assert!(details.retry_info().is_some(), "RetryInfo says when");

    let first = subscribe(&mut client, 100).await;
    let _second = subscribe(&mut client, 100).await;
    let third = client
        .subscribe_telemetry(SubscribeTelemetryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted);
    drop(first);
    eventually("the first stream's slot is free", || {
        app.server.active_subscribers() < 2
    })
    .await;
    subscribe(&mut client, 100).await;
}

/// Reads until the server closes the connection; panics if it stays open.
async fn closed_by_server(mut tcp: TcpStream) {
    let mut buf = [0; 1024];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection");
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed() {
    let mut config = test_config();
    config.transport.idle_timeout = Duration::from_millis(300);
    config.transport.header_timeout = Duration::from_millis(300);
    let app = spawn_stepped_app(config).await;
    // A connection that never sends a byte.
    closed_by_server(TcpStream::connect(app.addr).await.unwrap()).await;
    // Slowloris: headers that never finish.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    closed_by_server(slow).await;
    // A stream in flight keeps its connection open past the idle timeout.
    let mut client = connect(app.addr).await;
    let mut stream = subscribe(&mut client, 10).await;
    assert_eq!(next_snapshot(&mut stream).await.tick, 0);
    tokio::time::sleep(Duration::from_millis(900)).await;
    app.step(1);
    assert_eq!(next_snapshot(&mut stream).await.tick, 1);
}

#[tokio::test]
async fn a_connection_left_idle_after_a_request_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(300);
    let mut config = test_config();
    config.transport.idle_timeout = idle;
    config.transport.header_timeout = Duration::from_secs(60);
    let app = spawn_stepped_app(config).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "a whole response head"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let answered = std::time::Instant::now();
    // Kept alive for another request, then closed once idle for the timeout.
    closed_by_server(tcp).await;
    assert!(
        answered.elapsed() >= idle,
        "closed only after {idle:?} idle"
    );
}

#[tokio::test]
async fn a_command_whose_deadline_passes_in_the_queue_is_not_applied_and_audited_expired() {
    let app = ticking(test_config(), 1.0).await;
    let before = current_vat(&app);
    // gRPC-Web from a plain HTTP client, so the answer is the server's own
    // (tonic's client would enforce the deadline itself).
    let response = call(
        app.addr,
        Mode::Binary,
        "ApplyCommand",
        &command("late", KEY, number(0.44)),
        &[("grpc-timeout", "1m")],
    )
    .await;
    assert_eq!(response.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
    let telemetry = app.server.telemetry();
    eventually("the expired command is audited", || {
        telemetry
            .latest()
            .and_then(|s| s.audit.clone())
            .is_some_and(|a| a.recent.iter().any(|r| r.command_id == "late"))
    })
    .await;
    let snapshot = telemetry.latest().unwrap();
    let entry = snapshot
        .audit
        .clone()
        .unwrap()
        .recent
        .into_iter()
        .find(|r| r.command_id == "late")
        .unwrap();
    assert_eq!(
        (entry.success, entry.rejection()),
        (false, pb::RejectionReason::Expired)
    );
    assert_eq!(snapshot.parameters[KEY], before, "not applied");
}

/// A test CA, and certificates it signs, written as PEM files in `dir`
/// (removed with it).
struct TestPki {
    dir: tempfile::TempDir,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
    ca_pem: String,
}

impl TestPki {
    fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("watchtower-tls-{name}-"))
            .tempdir()
            .unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
        Self {
            dir,
            ca_params,
            ca_key,
            ca_pem,
        }
    }

    /// A certificate for `name` signed by the CA: (certificate PEM path,
    /// key PEM path, certificate PEM, key PEM).
    fn issue(&self, name: &str) -> (std::path::PathBuf, std::path::PathBuf, String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let (cert_path, key_path) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path, cert.pem(), key.serialize_pem())
    }

    fn client_config(
        &self,
        client: Option<(&str, &str)>,
    ) -> std::sync::Arc<tokio_rustls::rustls::ClientConfig> {
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring::default_provider};
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let builder = ClientConfig::builder_with_provider(std::sync::Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        std::sync::Arc::new(config)
    }
}

/// A tonic client that speaks TLS to `addr` with `config`.
async fn tls_client(
    addr: SocketAddr,
    config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
) -> Result<Client, tonic::transport::Error> {
    let connector = tower::service_fn(move |_: hyper::Uri| {
        let config = std::sync::Arc::clone(&config);
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://localhost:{}", addr.port()))
            .unwrap()
            .connect_with_connector(connector)
            .await?;
    Ok(pb::watchtower_service_client::WatchtowerServiceClient::new(
        channel,
    ))
}

fn tls_config(pki: &TestPki, client_ca: bool) -> Config {
    let (cert, key, _, _) = pki.issue("localhost");
    let mut config = Config {
        legacy_ws_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..test_config()
    };
    config.security.tls_cert = Some(cert);
    config.security.tls_key = Some(key);
    config.security.tls_client_ca = client_ca.then(|| pki.dir.path().join("ca.pem"));
    config
}

/// Starts an app whose listeners speak TLS (the harness's plaintext client
/// cannot connect, so this starts the server by hand).
async fn spawn_tls_app(config: Config) -> watchtower::SimulationServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    watchtower::SimulationServer::start_with_pacing(listener, &config, Pacing::from_tps(50.0))
        .await
        .expect("start with TLS")
}

/// The binary over TLS: a subscriber's connection moves to the telemetry
/// lane with its TLS session (the socket beneath it re-registers with the
/// other runtime), keeps streaming, and still takes a command; a second
/// connection's commands stay in the command lane.
#[tokio::test]
async fn over_tls_a_subscribing_connection_changes_lanes_and_keeps_working() {
    let pki = TestPki::new("lanes");
    let (cert, key, _, _) = pki.issue("localhost");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut app =
        common::binary::Binary::start(&["--tps", "50", "--tls-cert", cert, "--tls-key", key]);
    let addr = app.addr();
    let mut watcher = tls_client(addr, pki.client_config(None))
        .await
        .expect("a TLS handshake");
    let mut stream = subscribe(&mut watcher, 0).await;
    // The first may be the engine's tick 0, if it has not ticked yet.
    let mut last = None;
    for _ in 0..5 {
        let tick = tokio::time::timeout(PATIENCE, next_snapshot(&mut stream))
            .await
            .expect("snapshots keep coming after the move")
            .tick;
        assert!(
            last.is_none_or(|last| tick > last),
            "ticks go forward: {tick} after {last:?}"
        );
        last = Some(tick);
    }
    // The same connection, now in the telemetry lane, still answers.
    let mixed = watcher
        .apply_command(command("tls-mixed", KEY, number(0.21)))
        .await
        .expect("a command on the subscriber's connection");
    assert!(mixed.into_inner().response.unwrap().success);
    let mut operator = tls_client(addr, pki.client_config(None))
        .await
        .expect("a second TLS connection");
    let own = operator
        .apply_command(command("tls-own", KEY, number(0.22)))
        .await
        .expect("a command on its own connection");
    assert!(own.into_inner().response.unwrap().success);
    let next = tokio::time::timeout(PATIENCE, next_snapshot(&mut stream))
        .await
        .expect("still streaming");
    assert!(Some(next.tick) > last, "still streaming");
    app.terminate();
}

#[tokio::test]
async fn tls_serves_grpc_and_plaintext_to_a_tls_port_fails() {
    let pki = TestPki::new("serve");
    let server = spawn_tls_app(tls_config(&pki, false)).await;
    let addr = server.local_addr();
    let mut client = tls_client(addr, pki.client_config(None))
        .await
        .expect("a TLS handshake");
    let applied = client
        .apply_command(command("over-tls", KEY, number(0.27)))
        .await
        .expect("a command over TLS")
        .into_inner()
        .response
        .unwrap();
    assert!(applied.success);
    // The legacy WebSocket port is TLS as well: a handshake succeeds there.
    let legacy = server.legacy_ws_addr().unwrap();
    let tcp = TcpStream::connect(legacy).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(pki.client_config(None))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake on the legacy port");
    // Plaintext gRPC to the TLS port gets no answer it can use.
    let plaintext = tokio::time::timeout(PATIENCE, async {
        let mut client = pb::watchtower_service_client::WatchtowerServiceClient::connect(format!(
            "http://{addr}"
        ))
        .await?;
        client
            .list_parameters(ListParametersRequest {})
            .await
            .map_err(Into::into)
            .map(|_| ())
    })
    .await
    .expect("plaintext fails in time");
    assert!(
        plaintext
            .map_err(|e: Box<dyn std::error::Error>| e)
            .is_err(),
        "plaintext must fail"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_ca_requires_client_certificates() {
    let pki = TestPki::new("mtls");
    let server = spawn_tls_app(tls_config(&pki, true)).await;
    let addr = server.local_addr();
    let without = match tls_client(addr, pki.client_config(None)).await {
        Ok(mut client) => client
            .list_parameters(ListParametersRequest {})
            .await
            .is_ok(),
        Err(_) => false,
    };
    assert!(!without, "a client without a certificate is refused");
    let (_, _, cert, key) = pki.issue("dashboard-client");
    let mut client = tls_client(addr, pki.client_config(Some((&cert, &key))))
        .await
        .expect("a client certificate signed by the CA is accepted");
    client
        .list_parameters(ListParametersRequest {})
        .await
        .expect("a call with a client certificate");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_at_once_and_the_rest_keep_working() {
    let mut config = test_config();
    // The harness's own client holds one connection.
    config.transport.max_connections = 3;
    let app = ticking(config, 50.0).await;
    let held = [
        TcpStream::connect(app.addr).await.unwrap(),
        TcpStream::connect(app.addr).await.unwrap(),
    ];
    // The fourth is accepted and closed at once, rather than left hanging.
    closed_by_server(TcpStream::connect(app.addr).await.unwrap()).await;
    // The connections within the cap still work.
    app.client
        .clone()
        .list_parameters(ListParametersRequest {})
        .await
        .expect("a connection within the cap is served");
    drop(held);
    // Once two are closed, a new client gets in.
    let mut fresh = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(mut client) = pb::watchtower_service_client::WatchtowerServiceClient::connect(
                format!("http://{}", app.addr),
            )
            .await
                && client
                    .list_parameters(ListParametersRequest {})
                    .await
                    .is_ok()
            {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a new connection is served once slots free up");
    fresh
        .get_server_stats(GetServerStatsRequest {})
        .await
        .unwrap();
}
