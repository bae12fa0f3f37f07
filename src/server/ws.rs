//! The legacy JSON-over-WebSocket path (the spec's Streamlit clients, §3.2).
//!
//! Served at `/ws` on the main listener and at `/` on the legacy listener
//! (default 127.0.0.1:8765). Frames are protobuf's canonical JSON mapping of
//! `WebSocketClientMessage` and `WebSocketServerMessage`, with serde impls
//! generated from the proto by pbjson, so the JSON cannot drift from the API.
//! Each connection gets the latest snapshot every interval (100 ms unless the
//! client asks otherwise; the JSON is made once per snapshot and shared) and one `response` per command. A bad frame gets an
//! `error` message and changes nothing; the connection stays usable.

use std::time::Duration;

use axum::{
    Router,
    extract::{
        State,
        ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    response::Response,
    routing::any,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::error::Category;
use tokio::{sync::mpsc, time::MissedTickBehavior};

use super::{WatchtowerApi, error::ApiError, service::telemetry_interval};
use crate::{
    bridge::SubmitError,
    pb::{
        WebSocketClientMessage, WebSocketError, WebSocketServerMessage,
        web_socket_client_message::Message as ClientMessage,
        web_socket_server_message::Message as ServerMessage,
    },
};

/// Largest text frame accepted; larger ones get `FRAME_TOO_LARGE`.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Frames beyond this close the connection (the transport refuses them).
const HARD_FRAME_LIMIT: usize = 1024 * 1024;
/// Replies waiting to be written, per connection.
const OUTBOX: usize = 64;

/// `/ws` (and `/` for the legacy listener) routes.
pub fn routes(api: WatchtowerApi, paths: &[&str]) -> Router {
    paths
        .iter()
        .fold(Router::new(), |router, path| {
            router.route(path, any(upgrade))
        })
        .with_state(api)
}

async fn upgrade(ws: WebSocketUpgrade, State(api): State<WatchtowerApi>) -> Response {
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| session(socket, api))
}

async fn session(socket: WebSocket, api: WatchtowerApi) {
    let (mut sink, mut frames) = socket.split();
    // Command replies arrive here from their own tasks, so a slow engine
    // reply never stalls telemetry or reading.
    let (outbox, mut replies) = mpsc::channel::<WebSocketServerMessage>(OUTBOX);
    let _counted = api.websocket_guard();
    let published = api.hub().subscribe();
    let shutdown = api.shutdown().clone();
    let mut ticker = interval(super::service::DEFAULT_INTERVAL);
    let mut last_tick = None;
    loop {
        let out: Message = tokio::select! {
            () = shutdown.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    match handle_text(&api, &text, &outbox, &mut ticker) {
                        Some(reply) => text_message(&reply),
                        None => continue,
                    }
                }
                Some(Ok(Message::Binary(_))) => text_message(&error(
                    "INVALID_MESSAGE",
                    "binary frames are not supported; send JSON text frames".to_owned(),
                )),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            Some(reply) = replies.recv() => text_message(&reply),
            _ = ticker.tick() => {
                let newest = published.borrow().clone();
                match newest {
                    Some(frame) if last_tick.is_none_or(|last| frame.tick() > last) => {
                        last_tick = Some(frame.tick());
                        super::metrics::frame_sent("websocket", &frame);
                        Message::Text(frame.json())
                    }
                    _ => continue,
                }
            }
        };
        if sink.send(out).await.is_err() {
            break;
        }
    }
}

fn interval(period: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// Handles one text frame; returns an immediate reply, if any.
fn handle_text(
    api: &WatchtowerApi,
    text: &str,
    outbox: &mpsc::Sender<WebSocketServerMessage>,
    ticker: &mut tokio::time::Interval,
) -> Option<WebSocketServerMessage> {
    if text.len() > MAX_FRAME_BYTES {
        return Some(error(
            "FRAME_TOO_LARGE",
            format!(
                "frame of {} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes",
                text.len()
            ),
        ));
    }
    let message = match parse(text) {
        Ok(message) => message,
        Err(error) => {
            return Some(WebSocketServerMessage {
                message: Some(ServerMessage::Error(error)),
            });
        }
    };
    match message.message {
        None => Some(error(
            "INVALID_MESSAGE",
            "a frame must set `command` or `subscribe`".to_owned(),
        )),
        Some(ClientMessage::Subscribe(subscribe)) => {
            match telemetry_interval(subscribe.interval_ms) {
                Ok(period) => {
                    *ticker = interval(period);
                    None
                }
                Err(err) => Some(WebSocketServerMessage {
                    message: Some(ServerMessage::Error(WebSocketError {
                        code: "INVALID_ARGUMENT".to_owned(),
                        message: err.to_string(),
                        field: "subscribe.interval_ms".to_owned(),
                        ..Default::default()
                    })),
                }),
            }
        }
        Some(ClientMessage::Command(mut command)) => {
            if command.id.is_empty() {
                command.id = uuid::Uuid::new_v4().to_string();
            }
            let id = command.id.clone();
            let submitted = api.commands().try_submit(command);
            if let Err(err) = &submitted {
                super::metrics::command_refused(err);
            }
            match submitted {
                Ok(pending) => {
                    let outbox = outbox.clone();
                    tokio::spawn(async move {
                        let reply = match pending.response().await {
                            Ok(response) => {
                                super::metrics::command_answered(&response);
                                WebSocketServerMessage {
                                    message: Some(ServerMessage::Response(response)),
                                }
                            }
                            Err(err) => command_error("UNAVAILABLE", &ApiError::from(err), id),
                        };
                        // A closed connection just drops the reply; the
                        // command was still applied and audited.
                        let _ = outbox.send(reply).await;
                    });
                    None
                }
                Err(err @ SubmitError::Full { .. }) => {
                    Some(command_error("QUEUE_FULL", &err.into(), id))
                }
                Err(err @ SubmitError::Closed) => {
                    Some(command_error("UNAVAILABLE", &err.into(), id))
                }
            }
        }
    }
}

/// Parses one client frame; a refusal names the problem and, where there is
/// one, the field path (`command.value.number`).
fn parse(text: &str) -> Result<WebSocketClientMessage, WebSocketError> {
    let mut json = serde_json::Deserializer::from_str(text);
    let parsed = serde_path_to_error::deserialize(&mut json)
        .map_err(|err| {
            let field = err.path().to_string();
            let err = err.into_inner();
            (if field == "." { String::new() } else { field }, err)
        })
        .and_then(|message| {
            json.end()
                .map(|()| message)
                .map_err(|err| (String::new(), err))
        });
    parsed.map_err(|(field, err)| {
        let code = match err.classify() {
            Category::Data => "INVALID_MESSAGE",
            Category::Syntax | Category::Eof | Category::Io => "INVALID_JSON",
        };
        let message = if field.is_empty() {
            err.to_string()
        } else {
            format!("{field}: {err}")
        };
        WebSocketError {
            code: code.to_owned(),
            message,
            field,
            ..Default::default()
        }
    })
}

fn error(code: &str, message: String) -> WebSocketServerMessage {
    WebSocketServerMessage {
        message: Some(ServerMessage::Error(WebSocketError {
            code: code.to_owned(),
            message,
            ..Default::default()
        })),
    }
}

fn command_error(code: &str, err: &ApiError, command_id: String) -> WebSocketServerMessage {
    WebSocketServerMessage {
        message: Some(ServerMessage::Error(WebSocketError {
            code: code.to_owned(),
            message: err.to_string(),
            command_id,
            ..Default::default()
        })),
    }
}

fn text_message(message: &WebSocketServerMessage) -> Message {
    let json = serde_json::to_string(message).expect("generated serde impls always serialize");
    Message::Text(Utf8Bytes::from(json))
}
