//! A gRPC-Web client as a browser speaks it: HTTP/1.1 POSTs from a plain
//! HTTP client, in binary and text modes, with frames and trailers decoded
//! here. Shared by the gRPC-Web and security tests.

use std::collections::HashMap;

use base64::{
    Engine,
    engine::{
        DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig,
        general_purpose::{STANDARD, STANDARD_NO_PAD},
    },
};
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
};
use hyper_util::rt::TokioIo;
use prost::Message;

use super::PATIENCE;

pub const SERVICE: &str = "/watchtower.v1.WatchtowerService";

/// Flag byte of a frame that carries trailers instead of a message.
pub const TRAILER_FLAG: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Binary,
    Text,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Binary, Mode::Text];

    pub fn content_type(self) -> &'static str {
        match self {
            Mode::Binary => "application/grpc-web+proto",
            Mode::Text => "application/grpc-web-text",
        }
    }
}

/// One length-prefixed gRPC-Web frame: flag byte, u32 length, payload.
pub fn frame(message: &impl Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Sends one request over a fresh HTTP/1.1 connection.
pub async fn send(addr: std::net::SocketAddr, request: Request<Full<Bytes>>) -> Response<Incoming> {
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
pub async fn call(
    addr: std::net::SocketAddr,
    mode: Mode,
    method: &str,
    message: &impl Message,
    headers: &[(&str, &str)],
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
    for (name, value) in headers {
        request = request.header(*name, *value);
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
pub enum Frame {
    Data(Vec<u8>),
    Trailers(HashMap<String, String>),
}

/// Reads frames off a response body as they arrive, decoding base64 first in
/// text mode (where every chunk is padded on its own, so the body is decoded
/// quantum by quantum rather than in one go).
pub struct FrameReader {
    body: Incoming,
    mode: Mode,
    /// base64 characters not yet decoded (text mode).
    pending_text: Vec<u8>,
    /// Decoded bytes not yet split into frames.
    buffer: Vec<u8>,
}

impl FrameReader {
    pub fn new(response: Response<Incoming>, mode: Mode) -> Self {
        Self {
            body: response.into_body(),
            mode,
            pending_text: Vec::new(),
            buffer: Vec::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
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

    pub fn take_frame(&mut self) -> Option<Frame> {
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
    pub async fn next(&mut self) -> Option<Frame> {
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

    pub async fn next_message<M: Message + Default>(&mut self) -> M {
        match self.next().await {
            Some(Frame::Data(payload)) => M::decode(payload.as_slice()).expect("a valid message"),
            other => panic!("expected a data frame, got {other:?}"),
        }
    }
}

/// A trailer frame is an HTTP/1 header block: `name:value\r\n` lines.
pub fn parse_trailers(payload: &[u8]) -> HashMap<String, String> {
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
pub struct Unary {
    pub messages: Vec<Vec<u8>>,
    /// The trailer frame, merged with grpc-* response headers (a
    /// trailers-only error puts them in the headers instead).
    pub trailers: HashMap<String, String>,
}

impl Unary {
    pub fn status(&self) -> &str {
        self.trailers
            .get("grpc-status")
            .map(String::as_str)
            .expect("grpc-status is sent")
    }

    pub fn message(&self) -> String {
        percent_decode(self.trailers.get("grpc-message").map_or("", String::as_str))
    }
}

pub async fn unary(
    addr: std::net::SocketAddr,
    mode: Mode,
    method: &str,
    message: &impl Message,
) -> Unary {
    unary_with(addr, mode, method, message, &[]).await
}

/// A unary call with extra request headers (`authorization`, `origin`, …).
pub async fn unary_with(
    addr: std::net::SocketAddr,
    mode: Mode,
    method: &str,
    message: &impl Message,
    headers: &[(&str, &str)],
) -> Unary {
    let response = call(addr, mode, method, message, headers).await;
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

pub fn percent_decode(text: &str) -> String {
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
pub fn decode_details(text: &str) -> tonic_types::pb::Status {
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
