//! The legacy JSON-over-WebSocket path (the spec's Streamlit clients, §3.2).
//!
//! Served at `/ws` on the main listener and at `/` on the legacy listener
//! (default 127.0.0.1:8765). Frames are protobuf's canonical JSON mapping of
//! `WebSocketClientMessage` and `WebSocketServerMessage`, with serde impls
//! generated from the proto by pbjson, so the JSON cannot drift from the API.
//! Each connection gets each snapshot as it is published, at most one per
//! interval (100 ms unless the client asks otherwise; the JSON is made once
//! per snapshot and shared), and one `response` per command. A bad frame gets an `error` message and
//! changes nothing; the connection stays usable.
//!
//! The caller is who its `authorization` header says, or, for browsers that
//! cannot set one, who its `{"auth": {"token": …}}` message says; where the
//! server refuses anonymous callers, nothing but `auth` is served until then.
//! Commands go through the same [`WatchtowerApi::submit`] as gRPC.

use std::time::Instant;

use axum::{
    Extension, Router,
    extract::{
        State,
        ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    response::Response,
    routing::any,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::error::Category;
use tokio::{runtime::Handle, sync::mpsc};

use super::{
    WatchtowerApi,
    auth::{AuthError, HeaderIdentity, Principal},
    error::ApiError,
    hub::Pacer,
    limits,
    service::{Caller, batch_rejection, required_command_id, telemetry_interval},
    transport::ConnectionInfo,
};
use crate::bridge::PendingReply;
use crate::pb::{
    ApplyCommandsResponse, ListScheduledCommandsResponse, RejectionReason, WebSocketClientMessage,
    WebSocketError, WebSocketServerMessage, web_socket_client_message::Message as ClientMessage,
    web_socket_server_message::Message as ServerMessage,
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

/// Accepts the upgrade (the origin and auth guards have already refused
/// foreign origins and wrong tokens) and starts the session in the
/// telemetry lane ([`super::lanes`]), since it streams snapshots.
async fn upgrade(
    ws: WebSocketUpgrade,
    State(api): State<WatchtowerApi>,
    identity: Option<Extension<HeaderIdentity>>,
    connection: Option<Extension<ConnectionInfo>>,
) -> Response {
    let principal = identity.and_then(|Extension(HeaderIdentity(identity))| identity.ok());
    let connection = connection.map(|Extension(info)| info);
    let runtime = connection
        .as_ref()
        .map_or_else(Handle::current, |c| c.lanes().telemetry().clone());
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| {
            let session = Session::new(&api, principal, connection);
            runtime.spawn(session.run(socket, api));
            std::future::ready(())
        })
}

/// One WebSocket connection's state.
struct Session {
    /// Who speaks on this connection; `None` until a token is presented
    /// where the server refuses anonymous callers.
    caller: Option<Caller>,
    connection_id: u64,
    /// Keeps the connection's slot under `--max-connections` while the
    /// upgraded socket lives.
    _connection: Option<ConnectionInfo>,
    /// Picks the snapshot to send and when, at the connection's interval.
    pacer: Pacer,
    /// False once the engine has stopped publishing.
    telemetry_open: bool,
}

impl Session {
    /// A session for `principal` (if its upgrade request named one) on
    /// `connection`, at the default interval.
    fn new(
        api: &WatchtowerApi,
        principal: Option<Principal>,
        connection: Option<ConnectionInfo>,
    ) -> Self {
        let connection_id = connection.as_ref().map_or(0, |c| c.id);
        Self {
            caller: principal.map(|principal| Caller {
                principal,
                connection: connection_id,
                deadline: None,
            }),
            connection_id,
            _connection: connection,
            pacer: api
                .hub()
                .pacer(super::service::DEFAULT_INTERVAL, None, connection_id),
            telemetry_open: true,
        }
    }

    async fn run(mut self, socket: WebSocket, api: WatchtowerApi) {
        let (mut sink, mut frames) = socket.split();
        let slot = match api.subscriber_slot() {
            Ok(slot) => slot,
            Err(err) => {
                let _ = sink
                    .send(text_message(&api_error(&err, String::new())))
                    .await;
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
        };
        // Command replies arrive here from their own tasks, so a slow engine
        // reply never stalls telemetry or reading.
        let (outbox, mut replies) = mpsc::channel::<WebSocketServerMessage>(OUTBOX);
        let _counted = (api.websocket_guard(), slot);
        let shutdown = api.shutdown().clone();
        loop {
            let out: Message = tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                frame = frames.next() => match frame {
                    Some(Ok(Message::Text(text))) => match self.handle_text(&api, &text, &outbox) {
                        Reply::None => continue,
                        Reply::Send(reply) => text_message(&reply),
                        Reply::SendAndClose(reply) => {
                            let _ = sink.send(text_message(&reply)).await;
                            let _ = sink.send(Message::Close(None)).await;
                            break;
                        }
                    },
                    Some(Ok(Message::Binary(_))) => text_message(&error(
                        "INVALID_MESSAGE",
                        "binary frames are not supported; send JSON text frames".to_owned(),
                    )),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                },
                Some(reply) = replies.recv() => text_message(&reply),
                frame = self.pacer.next(), if self.caller.is_some() && self.telemetry_open => {
                    match frame {
                        Some(frame) => {
                            super::metrics::frame_sent("websocket", frame.lag_at(self.pacer.sent_at()));
                            Message::Text(frame.json())
                        }
                        None => {
                            self.telemetry_open = false;
                            continue;
                        }
                    }
                }
            };
            if sink.send(out).await.is_err() {
                break;
            }
        }
    }

    /// Handles one text frame.
    fn handle_text(
        &mut self,
        api: &WatchtowerApi,
        text: &str,
        outbox: &mpsc::Sender<WebSocketServerMessage>,
    ) -> Reply {
        if text.len() > MAX_FRAME_BYTES {
            return Reply::Send(error(
                "FRAME_TOO_LARGE",
                format!(
                    "frame of {} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes",
                    text.len()
                ),
            ));
        }
        let message = match parse(text) {
            Ok(message) => message,
            Err(error) => return Reply::Send(server_message(ServerMessage::Error(error))),
        };
        match (message.message, &self.caller) {
            (None, _) => Reply::Send(error(
                "INVALID_MESSAGE",
                "a frame must set `command`, `commands`, `control`, `revert`, `list_parameters`, `list_scheduled`, `cancel_scheduled`, `subscribe` or `auth`".to_owned(),
            )),
            (Some(ClientMessage::Auth(auth)), _) => self.authenticate(api, &auth.token),
            (Some(_), None) => Reply::Send(api_error(
                &ApiError::Unauthenticated(AuthError::Missing),
                String::new(),
            )),
            (Some(ClientMessage::Subscribe(subscribe)), Some(_)) => {
                self.subscribe(subscribe.interval_ms)
            }
            (Some(ClientMessage::ListParameters(_)), Some(_)) => match api.parameters() {
                Ok(parameters) => Reply::Send(server_message(ServerMessage::Parameters(parameters))),
                Err(err) => Reply::Send(api_error(&err, String::new())),
            },
            (Some(request), Some(caller)) => {
                queue(api, request, message.validate_only, caller, outbox)
            }
        }
    }

    /// Changes this connection's telemetry interval.
    fn subscribe(&mut self, interval_ms: u32) -> Reply {
        match telemetry_interval(interval_ms) {
            Ok(period) => {
                self.pacer.set_interval(period);
                Reply::None
            }
            Err(err) => Reply::Send(with_field(
                api_error(&err, String::new()),
                "subscribe.interval_ms",
            )),
        }
    }

    /// A token presented in a message: accepted, the connection speaks as
    /// its principal; refused, the connection is closed.
    fn authenticate(&mut self, api: &WatchtowerApi, token: &str) -> Reply {
        match api.authenticator().authenticate(Some(token)) {
            Ok(principal) => {
                let session = server_message(ServerMessage::Session(principal.to_pb()));
                self.caller = Some(Caller {
                    principal,
                    connection: self.connection_id,
                    deadline: None,
                });
                Reply::Send(session)
            }
            Err(err) => {
                Reply::SendAndClose(api_error(&ApiError::Unauthenticated(err), String::new()))
            }
        }
    }
}

/// Queues a request the engine answers (a command, a batch, a control
/// action, a revert, a schedule listing or cancellation) through the same
/// [`WatchtowerApi`] calls as gRPC; the answer comes from its own task.
fn queue(
    api: &WatchtowerApi,
    request: ClientMessage,
    validate_only: bool,
    caller: &Caller,
    outbox: &mpsc::Sender<WebSocketServerMessage>,
) -> Reply {
    match request {
        ClientMessage::Command(command) => {
            let id = command.id.clone();
            let accepted = Instant::now();
            let pending = api.submit(command, validate_only, caller);
            answer(pending, id, outbox, move |response| {
                super::metrics::command_answered(&response, accepted.elapsed());
                ServerMessage::Response(response)
            })
        }
        ClientMessage::Revert(revert) => {
            let pending = required_command_id(revert.command_id)
                .and_then(|command_id| api.revert(command_id, caller));
            answer(pending, String::new(), outbox, ServerMessage::Response)
        }
        ClientMessage::Commands(batch) => {
            let pending = api.submit_batch(batch.commands, batch.validate_only, caller);
            answer(pending, String::new(), outbox, |responses| {
                if responses.iter().all(|r| r.success) {
                    ServerMessage::Commands(ApplyCommandsResponse { responses })
                } else {
                    error_of(&batch_rejection(responses), String::new())
                }
            })
        }
        ClientMessage::Control(control) => {
            let pending = control
                .action
                .ok_or(ApiError::MissingField {
                    field: "control.action",
                })
                .and_then(|action| api.control(action, caller));
            answer(pending, String::new(), outbox, ServerMessage::Control)
        }
        ClientMessage::ListScheduled(_) => {
            let pending = api.list_scheduled(caller);
            answer(pending, String::new(), outbox, |commands| {
                ServerMessage::Scheduled(ListScheduledCommandsResponse { commands })
            })
        }
        ClientMessage::CancelScheduled(cancel) => {
            let id = cancel.command_id.clone();
            let pending = required_command_id(cancel.command_id)
                .and_then(|command_id| api.cancel_scheduled(command_id, caller));
            answer(pending, id.clone(), outbox, move |response| {
                if response.rejection() == RejectionReason::NotScheduled {
                    error_of(&ApiError::Rejected(Box::new(response)), id)
                } else {
                    ServerMessage::Response(response)
                }
            })
        }
        ClientMessage::Auth(_) | ClientMessage::Subscribe(_) | ClientMessage::ListParameters(_) => {
            unreachable!("answered by the session itself")
        }
    }
}

/// What a client frame gets back at once.
enum Reply {
    None,
    Send(WebSocketServerMessage),
    SendAndClose(WebSocketServerMessage),
}

/// Answers a queued request: a refusal at once, otherwise the engine's
/// answer (as `message`) from its own task when it comes.
fn answer<T: Send + 'static>(
    pending: Result<PendingReply<T>, ApiError>,
    id: String,
    outbox: &mpsc::Sender<WebSocketServerMessage>,
    message: impl FnOnce(T) -> ServerMessage + Send + 'static,
) -> Reply {
    let id = limits::prefix(&id, limits::MAX_ID_BYTES).to_owned();
    let pending = match pending {
        Ok(pending) => pending,
        Err(err) => return Reply::Send(api_error(&err, id)),
    };
    let outbox = outbox.clone();
    tokio::spawn(async move {
        let reply = match pending.response().await {
            Ok(answer) => server_message(message(answer)),
            Err(err) => api_error(&ApiError::from(err), id),
        };
        // A closed connection just drops the reply; the command was still
        // applied and audited.
        let _ = outbox.send(reply).await;
    });
    Reply::None
}

/// Parses one client frame; a refusal names the problem and, where there is
/// one, the field path (`command.value.number`). Public for the fuzz
/// targets.
pub fn parse(text: &str) -> Result<WebSocketClientMessage, WebSocketError> {
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

fn server_message(message: ServerMessage) -> WebSocketServerMessage {
    WebSocketServerMessage {
        message: Some(message),
    }
}

fn error(code: &str, message: String) -> WebSocketServerMessage {
    server_message(ServerMessage::Error(WebSocketError {
        code: code.to_owned(),
        message,
        ..Default::default()
    }))
}

/// An API error as the WebSocket's `error` message, with the same code and
/// field the gRPC status would carry.
fn api_error(err: &ApiError, command_id: String) -> WebSocketServerMessage {
    server_message(error_of(err, command_id))
}

fn error_of(err: &ApiError, command_id: String) -> ServerMessage {
    ServerMessage::Error(WebSocketError {
        code: err.websocket_code().to_owned(),
        message: err.to_string(),
        command_id,
        field: err.field().unwrap_or_default().to_owned(),
    })
}

fn with_field(mut message: WebSocketServerMessage, field: &str) -> WebSocketServerMessage {
    if let Some(ServerMessage::Error(error)) = &mut message.message {
        field.clone_into(&mut error.field);
    }
    message
}

fn text_message(message: &WebSocketServerMessage) -> Message {
    let json = serde_json::to_string(message).expect("generated serde impls always serialize");
    Message::Text(Utf8Bytes::from(json))
}
