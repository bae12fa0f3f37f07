//! gRPC-Web as a browser speaks it: HTTP/1.1 POSTs from a plain HTTP client
//! (no tonic client), in binary (`application/grpc-web+proto`) and text
//! (`application/grpc-web-text`, base64) modes, with the length-prefixed
//! frames and the trailer frame decoded here, plus the CORS rules.

mod common;

use std::collections::HashMap;

use base64::{
    Engine,
    engine::{
        DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig,
        general_purpose::{STANDARD, STANDARD_NO_PAD},
    },
};
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
};
use hyper_util::rt::TokioIo;
use prost::Message;
use watchtower::{
    Config,
    pb::{
        ApplyCommandResponse, ListParametersRequest, ListParametersResponse,
        SubscribeTelemetryRequest, SubscribeTelemetryResponse, parameter_value::Kind,
    },
};

const SERVICE: &str = "/watchtower.v1.WatchtowerService";
const LOCAL_ORIGIN: &str = "http://localhost:3000";
const EVIL_ORIGIN: &str = "https://evil.example";

/// Flag byte of a frame that carries trailers instead of a message.
const TRAILER_FLAG: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Binary,
    Text,
}

impl Mode {
    const ALL: [Mode; 2] = [Mode::Binary, Mode::Text];

    fn content_type(self) -> &'static str {
        match self {
            Mode::Binary => "application/grpc-web+proto",
            Mode::Text => "application/grpc-web-text",
        }
    }
}

/// One length-prefixed gRPC-Web frame: flag byte, u32 length, payload.
fn frame(message: &impl Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Sends one request over a fresh HTTP/1.1 connection.
async fn send(addr: std::net::SocketAddr, request: Request<Full<Bytes>>) -> Response<Incoming> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("the server answers in time")
        .expect("an HTTP response")
}

/// POSTs one gRPC-Web call with `message` as its only request frame.
async fn call(
    addr: std::net::SocketAddr,
    mode: Mode,
    method: &str,
    message: &impl Message,
    origin: Option<&str>,
) -> Response<Incoming> {
    let framed = frame(message);
    let body = match mode {
        Mode::Binary => framed,
        Mode::Text => STANDARD.encode(framed).into_bytes(),
    };
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{SERVICE}/{method}"))
        .header(header::HOST, addr.to_string())
        .header(header::CONTENT_TYPE, mode.content_type())
        .header("x-grpc-web", "1")
        .header("x-user-agent", "grpc-web-javascript/0.1");
    if mode == Mode::Text {
        request = request.header(header::ACCEPT, "application/grpc-web-text");
    }
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    let response = send(addr, request.body(Full::new(Bytes::from(body))).unwrap()).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "gRPC-Web always answers 200"
    );
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
    let expected = match mode {
        Mode::Binary => "application/grpc-web",
        Mode::Text => "application/grpc-web-text",
    };
    assert!(
        content_type.starts_with(expected),
        "{mode:?} answered with content-type {content_type}"
    );
    response
}

/// What came back in one frame.
#[derive(Debug)]
enum Frame {
    Data(Vec<u8>),
    Trailers(HashMap<String, String>),
}

/// Reads frames off a response body as they arrive, decoding base64 first in
/// text mode (where every chunk is padded on its own, so the body is decoded
/// quantum by quantum rather than in one go).
struct FrameReader {
    body: Incoming,
    mode: Mode,
    /// base64 characters not yet decoded (text mode).
    pending_text: Vec<u8>,
    /// Decoded bytes not yet split into frames.
    buffer: Vec<u8>,
}

impl FrameReader {
    fn new(response: Response<Incoming>, mode: Mode) -> Self {
        Self {
            body: response.into_body(),
            mode,
            pending_text: Vec::new(),
            buffer: Vec::new(),
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        match self.mode {
            Mode::Binary => self.buffer.extend_from_slice(chunk),
            Mode::Text => {
                self.pending_text
                    .extend(chunk.iter().filter(|b| !b.is_ascii_whitespace()));
                let whole = self.pending_text.len() / 4 * 4;
                for quantum in self.pending_text[..whole].chunks(4) {
                    let bytes = STANDARD.decode(quantum).expect("valid base64");
                    self.buffer.extend_from_slice(&bytes);
                }
                self.pending_text.drain(..whole);
            }
        }
    }

    fn take_frame(&mut self) -> Option<Frame> {
        if self.buffer.len() < 5 {
            return None;
        }
        let length = u32::from_be_bytes(self.buffer[1..5].try_into().unwrap()) as usize;
        if self.buffer.len() < 5 + length {
            return None;
        }
        let flag = self.buffer[0];
        let payload: Vec<u8> = self.buffer.drain(..5 + length).skip(5).collect();
        Some(if flag & TRAILER_FLAG != 0 {
            Frame::Trailers(parse_trailers(&payload))
        } else {
            assert_eq!(flag, 0, "uncompressed data frames only");
            Frame::Data(payload)
        })
    }

    /// The next frame, or `None` once the body ends.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            let chunk = tokio::time::timeout(PATIENCE, self.body.frame())
                .await
                .expect("a frame arrives in time");
            match chunk {
                None => {
                    assert!(
                        self.buffer.is_empty() && self.pending_text.is_empty(),
                        "the body ended inside a frame"
                    );
                    return None;
                }
                Some(chunk) => {
                    if let Ok(data) = chunk.expect("body ok").into_data() {
                        self.push(&data);
                    }
                }
            }
        }
    }

    async fn next_message<M: Message + Default>(&mut self) -> M {
        match self.next().await {
            Some(Frame::Data(payload)) => M::decode(payload.as_slice()).expect("a valid message"),
            other => panic!("expected a data frame, got {other:?}"),
        }
    }
}

/// A trailer frame is an HTTP/1 header block: `name:value\r\n` lines.
fn parse_trailers(payload: &[u8]) -> HashMap<String, String> {
    std::str::from_utf8(payload)
        .expect("trailers are text")
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').expect("name:value");
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect()
}

/// Everything one unary call returned.
struct Unary {
    messages: Vec<Vec<u8>>,
    /// The trailer frame, merged with grpc-* response headers (a
    /// trailers-only error puts them in the headers instead).
    trailers: HashMap<String, String>,
}

impl Unary {
    fn status(&self) -> &str {
        self.trailers
            .get("grpc-status")
            .map(String::as_str)
            .expect("grpc-status is sent")
    }

    fn message(&self) -> String {
        percent_decode(self.trailers.get("grpc-message").map_or("", String::as_str))
    }
}

async fn unary(
    addr: std::net::SocketAddr,
    mode: Mode,
    method: &str,
    message: &impl Message,
) -> Unary {
    let response = call(addr, mode, method, message, None).await;
    let mut trailers: HashMap<String, String> = response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("grpc-"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    let mut reader = FrameReader::new(response, mode);
    let mut messages = Vec::new();
    let mut trailer_frames = 0;
    while let Some(frame) = reader.next().await {
        match frame {
            Frame::Data(payload) => {
                assert_eq!(trailer_frames, 0, "no data after the trailers");
                messages.push(payload);
            }
            Frame::Trailers(found) => {
                trailer_frames += 1;
                trailers.extend(found);
            }
        }
    }
    assert!(trailer_frames <= 1, "one trailer frame at most");
    Unary { messages, trailers }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("percent-encoded byte"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8 message")
}

/// grpc-status-details-bin is base64, padded or not.
fn decode_details(text: &str) -> tonic_types::pb::Status {
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = lenient
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text.trim_end_matches('=')))
        .expect("details are base64");
    tonic_types::pb::Status::decode(bytes.as_slice()).expect("a google.rpc.Status")
}

async fn ticking_app() -> TestApp {
    let app = spawn_app(50.0).await;
    let telemetry = app.server.telemetry();
    eventually("a first snapshot", || telemetry.latest().is_some()).await;
    app
}

#[tokio::test]
async fn list_parameters_in_binary_and_text_modes() {
    let app = ticking_app().await;
    for mode in Mode::ALL {
        let reply = unary(app.addr, mode, "ListParameters", &ListParametersRequest {}).await;
        assert_eq!(reply.status(), "0", "{mode:?}: {:?}", reply.trailers);
        assert_eq!(reply.messages.len(), 1, "{mode:?}: one response message");
        let parameters = ListParametersResponse::decode(reply.messages[0].as_slice())
            .unwrap()
            .parameters;
        let vat = parameters
            .iter()
            .find(|p| p.key == "fiscal.vat_rate")
            .expect("fiscal.vat_rate is listed");
        assert_eq!(vat.max.unwrap().kind, Some(Kind::Number(0.5)), "{mode:?}");
        assert!(parameters.len() > 10, "{mode:?}: the whole catalogue");
    }
}

#[tokio::test]
async fn apply_command_in_binary_and_text_modes() {
    let app = ticking_app().await;
    let mut old = 0.10;
    for (mode, new) in [(Mode::Binary, 0.12), (Mode::Text, 0.15)] {
        let id = format!("web-{mode:?}");
        let reply = unary(
            app.addr,
            mode,
            "ApplyCommand",
            &command(&id, "fiscal.vat_rate", number(new)),
        )
        .await;
        assert_eq!(reply.status(), "0", "{mode:?}: {:?}", reply.trailers);
        assert_eq!(reply.messages.len(), 1);
        let response = ApplyCommandResponse::decode(reply.messages[0].as_slice())
            .unwrap()
            .response
            .expect("a response");
        assert!(response.success, "{mode:?}: {response:?}");
        assert_eq!(response.command_id, id);
        assert!(response.applied_tick > 0);
        assert_eq!(response.old_value, number(old), "{mode:?}");
        assert_eq!(response.new_value, number(new), "{mode:?}");
        old = new;
    }
}

#[tokio::test]
async fn telemetry_streams_frames_with_rising_ticks() {
    let app = ticking_app().await;
    for mode in Mode::ALL {
        let request = SubscribeTelemetryRequest {
            interval_ms: 10,
            history: 0,
        };
        let response = call(app.addr, mode, "SubscribeTelemetry", &request, None).await;
        let mut reader = FrameReader::new(response, mode);
        let mut ticks = Vec::new();
        for _ in 0..3 {
            let message: SubscribeTelemetryResponse = reader.next_message().await;
            ticks.push(message.snapshot.expect("a snapshot").tick);
        }
        assert!(
            ticks.windows(2).all(|w| w[0] < w[1]),
            "{mode:?}: ticks rise: {ticks:?}"
        );
    }
}

#[tokio::test]
async fn rejected_command_sends_status_message_and_rich_details() {
    let app = ticking_app().await;
    for mode in Mode::ALL {
        let reply = unary(
            app.addr,
            mode,
            "ApplyCommand",
            &command("too-high", "fiscal.vat_rate", number(2.5)),
        )
        .await;
        assert!(reply.messages.is_empty(), "{mode:?}: no response message");
        assert_eq!(reply.status(), "3", "{mode:?}: INVALID_ARGUMENT");
        let message = reply.message();
        assert!(
            message.contains("2.5") && message.contains("0.5"),
            "{mode:?}: the message names the value and the range: {message}"
        );
        let details = decode_details(
            reply
                .trailers
                .get("grpc-status-details-bin")
                .expect("rich details are sent"),
        );
        assert_eq!(details.code, 3);
        let bad_request = details
            .details
            .iter()
            .find(|any| any.type_url.ends_with("/google.rpc.BadRequest"))
            .map(|any| tonic_types::pb::BadRequest::decode(any.value.as_slice()).unwrap())
            .expect("a google.rpc.BadRequest detail");
        let violation = &bad_request.field_violations[0];
        assert_eq!(violation.field, "command.value");
        assert!(
            violation.description.contains("0.5"),
            "{mode:?}: the violation names the range: {}",
            violation.description
        );
    }
    // Nothing was applied.
    let reply = unary(
        app.addr,
        Mode::Binary,
        "ListParameters",
        &ListParametersRequest {},
    )
    .await;
    let parameters = ListParametersResponse::decode(reply.messages[0].as_slice())
        .unwrap()
        .parameters;
    let vat = parameters.iter().find(|p| p.key == "fiscal.vat_rate");
    assert_eq!(vat.unwrap().current_value, number(0.10));
}

/// Waits until the history recorder holds `tick`. Ticks released faster
/// than the recorder task runs are skipped by design (it keeps what it is
/// woken for), so the test releases the next tick only after this.
async fn wait_until_recorded(app: &TestApp, tick: u64) {
    let mut client = app.client.clone();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let mut stream = client
                .subscribe_telemetry(SubscribeTelemetryRequest {
                    interval_ms: 10,
                    history: 1,
                })
                .await
                .expect("subscribe")
                .into_inner();
            let newest = stream
                .message()
                .await
                .expect("stream ok")
                .map(|m| m.snapshot.unwrap().tick);
            if newest == Some(tick) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the recorder catches up");
}

#[tokio::test]
async fn history_comes_first_oldest_first_then_live() {
    let app = spawn_stepped_app(test_config()).await;
    let telemetry = app.server.telemetry();
    for tick in 1..=8 {
        app.step(1);
        wait_until_recorded(&app, tick).await;
    }
    for mode in Mode::ALL {
        let frozen_at = telemetry.latest().unwrap().tick;
        let request = SubscribeTelemetryRequest {
            interval_ms: 10,
            history: 5,
        };
        let response = call(app.addr, mode, "SubscribeTelemetry", &request, None).await;
        let mut reader = FrameReader::new(response, mode);
        let mut past = Vec::new();
        for _ in 0..5 {
            let message: SubscribeTelemetryResponse = reader.next_message().await;
            past.push(message.snapshot.unwrap().tick);
        }
        let expected: Vec<u64> = (frozen_at - 4..=frozen_at).collect();
        assert_eq!(past, expected, "{mode:?}: the last five, oldest first");
        // The engine is frozen, so the next frame can only be a live tick
        // released after the history was sent.
        app.step(1);
        wait_until_recorded(&app, frozen_at + 1).await;
        let live: SubscribeTelemetryResponse = reader.next_message().await;
        assert_eq!(
            live.snapshot.unwrap().tick,
            frozen_at + 1,
            "{mode:?}: then live"
        );
    }
}

#[tokio::test]
async fn history_above_the_cap_is_invalid_argument() {
    let app = ticking_app().await;
    for mode in Mode::ALL {
        let request = SubscribeTelemetryRequest {
            interval_ms: 0,
            history: 601,
        };
        let reply = unary(app.addr, mode, "SubscribeTelemetry", &request).await;
        assert!(reply.messages.is_empty(), "{mode:?}");
        assert_eq!(reply.status(), "3", "{mode:?}: {:?}", reply.trailers);
        assert!(
            reply.message().contains("600"),
            "{mode:?}: names the cap: {}",
            reply.message()
        );
    }
}

fn preflight(addr: std::net::SocketAddr, origin: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("{SERVICE}/ListParameters"))
        .header(header::HOST, addr.to_string())
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,x-grpc-web",
        )
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn header_list(headers: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn cors_allows_local_origins_and_exposes_grpc_headers() {
    let app = ticking_app().await;
    let response = send(app.addr, preflight(app.addr, LOCAL_ORIGIN)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(
        headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(&HeaderValue::from_static(LOCAL_ORIGIN))
    );
    let methods = header_list(headers, header::ACCESS_CONTROL_ALLOW_METHODS);
    assert!(methods.contains(&"post".to_owned()), "{methods:?}");
    let allowed = header_list(headers, header::ACCESS_CONTROL_ALLOW_HEADERS);
    for wanted in ["content-type", "x-grpc-web"] {
        assert!(allowed.contains(&wanted.to_owned()), "{allowed:?}");
    }

    let response = call(
        app.addr,
        Mode::Binary,
        "ListParameters",
        &ListParametersRequest {},
        Some(LOCAL_ORIGIN),
    )
    .await;
    let headers = response.headers();
    assert_eq!(
        headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(&HeaderValue::from_static(LOCAL_ORIGIN))
    );
    let exposed = header_list(headers, header::ACCESS_CONTROL_EXPOSE_HEADERS);
    for wanted in ["grpc-status", "grpc-message"] {
        assert!(exposed.contains(&wanted.to_owned()), "{exposed:?}");
    }
}

#[tokio::test]
async fn cors_refuses_other_origins_unless_configured() {
    let app = ticking_app().await;
    let response = send(app.addr, preflight(app.addr, EVIL_ORIGIN)).await;
    assert_eq!(
        response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        None,
        "an unlisted origin is not allowed"
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{SERVICE}/ListParameters"))
        .header(header::HOST, app.addr.to_string())
        .header(header::CONTENT_TYPE, Mode::Binary.content_type())
        .header(header::ORIGIN, EVIL_ORIGIN)
        .body(Full::new(Bytes::from(frame(&ListParametersRequest {}))))
        .unwrap();
    let response = send(app.addr, request).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "a foreign origin is refused before any handler runs"
    );
    assert_eq!(
        response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        None
    );

    let config = Config {
        cors_origins: vec![EVIL_ORIGIN.to_owned()],
        ..test_config()
    };
    let configured = spawn_stepped_app(config).await;
    let response = send(configured.addr, preflight(configured.addr, EVIL_ORIGIN)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(&HeaderValue::from_static(EVIL_ORIGIN)),
        "a configured origin is allowed"
    );
}
