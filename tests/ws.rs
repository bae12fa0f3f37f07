//! The legacy JSON WebSocket path (the Streamlit clients), through a real
//! tokio-tungstenite client: `/ws` on the main listener and `/` on the legacy
//! listener. Frames are parsed into `WebSocketServerMessage` with the same
//! pbjson serde impls the server uses.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Bytes, Message},
};
use watchtower::{
    Config,
    engine::Pacing,
    pb::{
        GodResponse, RejectionReason, WatchtowerSnapshot, WebSocketError, WebSocketServerMessage,
        parameter_value::Kind, web_socket_server_message::Message as ServerMessage,
    },
};

const KEY: &str = "fiscal.vat_rate";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An app ticking at `tps` with the legacy listener on port 0, and the URLs
/// of both WebSocket endpoints.
async fn app_with_both_paths(tps: f64) -> (TestApp, [String; 2]) {
    let config = Config {
        legacy_ws_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..test_config()
    };
    let app = spawn_app_with(config, Pacing::from_tps(tps)).await;
    let legacy = app
        .server
        .legacy_ws_addr()
        .expect("the legacy listener is on");
    let urls = [format!("ws://{}/ws", app.addr), format!("ws://{legacy}/")];
    (app, urls)
}

async fn open(url: &str) -> Ws {
    tokio::time::timeout(PATIENCE, connect_async(url))
        .await
        .expect("the handshake finishes in time")
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
        .0
}

async fn send(ws: &mut Ws, text: impl Into<String>) {
    ws.send(Message::text(text.into()))
        .await
        .expect("send a frame");
}

fn command_json(id: &str, value: f64) -> String {
    serde_json::json!({"command": {"id": id, "key": KEY, "value": {"number": value}}}).to_string()
}

/// The next server message, skipping control frames.
async fn next_message(ws: &mut Ws) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame arrives in time")
            .expect("the connection is open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => {
                let message: WebSocketServerMessage = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("not a server message ({e}): {text}"));
                return message.message.expect("exactly one kind is set");
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next `response` or `error`, skipping snapshots.
async fn next_reply(ws: &mut Ws) -> ServerMessage {
    loop {
        match next_message(ws).await {
            ServerMessage::Snapshot(_) => {}
            reply => return reply,
        }
    }
}

async fn next_response(ws: &mut Ws) -> GodResponse {
    match next_reply(ws).await {
        ServerMessage::Response(response) => response,
        other => panic!("expected a response, got {other:?}"),
    }
}

async fn next_error(ws: &mut Ws) -> WebSocketError {
    match next_reply(ws).await {
        ServerMessage::Error(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The first snapshot frame whose tick is at least `tick`.
async fn snapshot_from(ws: &mut Ws, tick: u64) -> WatchtowerSnapshot {
    loop {
        match next_message(ws).await {
            ServerMessage::Snapshot(snapshot) if snapshot.tick >= tick => return snapshot,
            ServerMessage::Snapshot(_) => {}
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }
}

fn vat(snapshot: &WatchtowerSnapshot) -> f64 {
    match snapshot.parameters[KEY].kind {
        Some(Kind::Number(x)) => x,
        ref other => panic!("{KEY} is a number, got {other:?}"),
    }
}

/// Applies `value` and checks that a later snapshot shows it.
async fn apply(ws: &mut Ws, id: &str, value: f64) -> GodResponse {
    send(ws, command_json(id, value)).await;
    let response = next_response(ws).await;
    assert!(response.success, "{response:?}");
    assert_eq!(response.command_id, id);
    assert_eq!(response.key, KEY);
    assert_eq!(response.new_value, number(value));
    let snapshot = snapshot_from(ws, response.applied_tick).await;
    assert_eq!(vat(&snapshot), value, "the snapshot shows the new value");
    response
}

#[tokio::test]
async fn command_round_trip_on_both_paths() {
    let (_app, urls) = app_with_both_paths(50.0).await;
    let mut old = 0.10;
    for (url, value) in urls.iter().zip([0.12, 0.13]) {
        let mut ws = open(url).await;
        let response = apply(&mut ws, &format!("c1 {url}"), value).await;
        assert!(response.applied_tick > 0, "{url}");
        assert_eq!(response.old_value, number(old), "{url}");
        assert!(response.error.is_empty(), "{url}");
        old = value;
    }
}

#[tokio::test]
async fn rejected_command_gets_a_failed_response_and_changes_nothing() {
    let (_app, urls) = app_with_both_paths(50.0).await;
    for url in &urls {
        let mut ws = open(url).await;
        // Ids are unique per command: a repeated id gets its recorded outcome.
        let id = format!("too-high {url}");
        send(&mut ws, command_json(&id, 2.5)).await;
        let response = next_response(&mut ws).await;
        assert!(!response.success, "{url}: {response:?}");
        assert_eq!(response.command_id, id);
        assert_eq!(response.rejection(), RejectionReason::OutOfRange);
        assert_eq!(response.field, "command.value");
        assert!(
            response.error.contains("2.5") && response.allowed.contains("0.5"),
            "{url}: names the value and the range: {response:?}"
        );
        assert_eq!(response.new_value, response.old_value);
        let snapshot = snapshot_from(&mut ws, response.applied_tick).await;
        assert_eq!(vat(&snapshot), 0.10, "{url}: nothing was applied");
        apply(&mut ws, &format!("after-rejection {url}"), 0.11).await;
        apply(&mut ws, &format!("reset {url}"), 0.10).await;
    }
}

/// Snapshot frames received within one second.
async fn snapshots_in_one_second(ws: &mut Ws) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut count = 0;
    while let Ok(frame) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(text) = frame.expect("open").expect("valid")
            && text.starts_with("{\"snapshot\"")
        {
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn telemetry_arrives_at_its_interval_and_subscribe_changes_it() {
    // The engine ticks faster than either interval, so the interval paces.
    let (_app, urls) = app_with_both_paths(100.0).await;
    let mut ws = open(&urls[0]).await;
    snapshot_from(&mut ws, 0).await;
    let default = snapshots_in_one_second(&mut ws).await;
    assert!(
        (3..=15).contains(&default),
        "about 10 snapshots per second at 100 ms, got {default}"
    );
    send(&mut ws, r#"{"subscribe":{"interval_ms":25}}"#).await;
    snapshot_from(&mut ws, 0).await;
    let fast = snapshots_in_one_second(&mut ws).await;
    assert!(
        fast > default && (12..=60).contains(&fast),
        "about 40 snapshots per second at 25 ms, got {fast} (default gave {default})"
    );

    send(&mut ws, r#"{"subscribe":{"interval_ms":5}}"#).await;
    let error = next_error(&mut ws).await;
    assert_eq!(error.code, "INVALID_ARGUMENT");
    assert_eq!(error.field, "subscribe.interval_ms");
    assert!(error.message.contains("10 to 60000"), "{error:?}");
}

/// Push on publish: at the default 100 ms on a 10 TPS engine every tick is
/// sent, on both paths.
#[tokio::test]
async fn a_10_tps_engine_is_followed_tick_by_tick_on_both_paths() {
    let (_app, urls) = app_with_both_paths(10.0).await;
    for url in &urls {
        let mut ws = open(url).await;
        // The first was published before the connection opened; skip it.
        snapshot_from(&mut ws, 0).await;
        let mut ticks = Vec::new();
        while ticks.len() < 6 {
            let next = snapshot_from(&mut ws, 0).await.tick;
            ticks.push(next);
        }
        assert!(
            ticks.windows(2).all(|w| w[1] == w[0] + 1),
            "{url}: consecutive ticks: {ticks:?}"
        );
    }
}

#[tokio::test]
async fn bad_frames_get_errors_apply_nothing_and_leave_the_connection_usable() {
    let (_app, urls) = app_with_both_paths(50.0).await;
    let oversized = serde_json::json!({
        "command": {"id": "big", "key": KEY, "value": {"number": 0.4}, "reason": "x".repeat(70 * 1024)}
    })
    .to_string();
    let cases: [(&str, Message, &str, &str); 5] = [
        (
            "malformed JSON",
            Message::text(r#"{"command":{"id":"m","key":"fiscal.vat_rate","value":{"number":0.4}"#),
            "INVALID_JSON",
            "EOF",
        ),
        (
            "a number sent as a string",
            Message::text(
                r#"{"command":{"id":"t","key":"fiscal.vat_rate","value":{"number":"abc"}}}"#,
            ),
            "INVALID_MESSAGE",
            "invalid float literal",
        ),
        (
            "neither command nor subscribe",
            Message::text("{}"),
            "INVALID_MESSAGE",
            "`command`, `commands`, `control`, `revert`, `list_parameters`, `list_scheduled`, `cancel_scheduled`, `subscribe` or `auth`",
        ),
        (
            "a binary frame",
            Message::Binary(Bytes::from(command_json("b", 0.4).into_bytes())),
            "INVALID_MESSAGE",
            "binary",
        ),
        (
            "a frame over 64 KiB",
            Message::text(oversized),
            "FRAME_TOO_LARGE",
            "65536",
        ),
    ];
    for url in &urls {
        let mut ws = open(url).await;
        let mut value = 0.10;
        for (i, (what, frame, code, names)) in cases.iter().enumerate() {
            let seen = snapshot_from(&mut ws, 0).await.tick;
            ws.send(frame.clone()).await.expect("send");
            let error = next_error(&mut ws).await;
            assert_eq!(error.code, *code, "{url}, {what}: {error:?}");
            assert!(
                error.message.contains(names),
                "{url}, {what}: the message should name {names:?}: {error:?}"
            );
            if *code == "INVALID_MESSAGE" && frame.is_text() && what.contains("string") {
                assert_eq!(error.field, "command.value.number", "{url}, {what}");
            }
            // Two ticks later nothing has changed.
            let snapshot = snapshot_from(&mut ws, seen + 2).await;
            assert_eq!(vat(&snapshot), value, "{url}, {what}: nothing was applied");
            // And the connection still works.
            value = 0.11 + 0.01 * i as f64;
            apply(&mut ws, &format!("after-{i} {url}"), value).await;
        }
        apply(&mut ws, &format!("reset {url}"), 0.10).await;
    }
}

#[tokio::test]
async fn a_full_queue_is_queue_full() {
    let config = Config {
        queue_capacity: 1,
        legacy_ws_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..test_config()
    };
    let app = spawn_stepped_app(config).await;
    let url = format!("ws://{}/", app.server.legacy_ws_addr().unwrap());
    let mut ws = open(&url).await;
    send(&mut ws, command_json("first", 0.2)).await;
    app.wait_queue_depth(1).await;
    send(&mut ws, command_json("second", 0.3)).await;
    let error = next_error(&mut ws).await;
    assert_eq!(error.code, "QUEUE_FULL", "{error:?}");
    assert_eq!(error.command_id, "second");
    app.step(1);
    let response = next_response(&mut ws).await;
    assert_eq!(response.command_id, "first");
    assert!(response.success);
}

#[tokio::test]
async fn a_frame_over_one_mebibyte_closes_the_connection() {
    let (_app, urls) = app_with_both_paths(50.0).await;
    let mut ws = open(&urls[0]).await;
    snapshot_from(&mut ws, 0).await;
    let huge = format!(
        r#"{{"command":{{"reason":"{}"}}}}"#,
        "x".repeat(1024 * 1024 + 16)
    );
    // The server may close before the whole frame is written.
    let _ = ws.send(Message::text(huge)).await;
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                None | Some(Err(_) | Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closes the connection");
}

/// Issue 10's powers over the WebSocket, once each: pause, a dry run, a
/// batch (and a refused one, named by index), a stale expected_value, a
/// scheduled command, a revert, list_parameters, step and resume.
#[tokio::test]
async fn run_control_batches_dry_runs_schedules_and_reverts_over_the_websocket() {
    let (_app, urls) = app_with_both_paths(100.0).await;
    let mut ws = open(&urls[0]).await;
    let json = |value: serde_json::Value| value.to_string();

    send(&mut ws, json(serde_json::json!({"control": {"pause": {}}}))).await;
    let paused = match next_reply(&mut ws).await {
        ServerMessage::Control(control) => control,
        other => panic!("expected control, got {other:?}"),
    };
    assert_eq!(paused.run_state(), watchtower::pb::RunState::Paused);

    send(
        &mut ws,
        json(serde_json::json!({
            "command": {"id": "ws-dry", "key": KEY, "value": {"number": 0.14}},
            "validateOnly": true
        })),
    )
    .await;
    let dry = next_response(&mut ws).await;
    assert!(dry.success && dry.dry_run, "{dry:?}");

    send(
        &mut ws,
        json(serde_json::json!({"commands": {"commands": [
            {"id": "ws-b0", "key": KEY, "value": {"number": 0.15}},
            {"id": "ws-b1", "key": "fiscal.income_tax_rate", "value": {"number": 0.21}}
        ]}})),
    )
    .await;
    let applied = match next_reply(&mut ws).await {
        ServerMessage::Commands(batch) => batch.responses,
        other => panic!("expected commands, got {other:?}"),
    };
    assert_eq!(applied.len(), 2);
    assert!(
        applied
            .iter()
            .all(|r| r.success && r.applied_tick == paused.tick)
    );

    send(
        &mut ws,
        json(serde_json::json!({"commands": {"commands": [
            {"id": "ws-c0", "key": KEY, "value": {"number": 0.16}},
            {"id": "ws-c1", "key": KEY, "value": {"number": 9.0}}
        ]}})),
    )
    .await;
    let refused = next_error(&mut ws).await;
    assert_eq!(refused.code, "INVALID_ARGUMENT");
    assert_eq!(refused.field, "commands[1].value");

    send(
        &mut ws,
        json(serde_json::json!({"command": {
            "id": "ws-stale", "key": KEY, "value": {"number": 0.17},
            "expectedValue": {"number": 0.1}
        }})),
    )
    .await;
    let stale = next_response(&mut ws).await;
    assert_eq!(stale.rejection(), RejectionReason::Conflict);

    send(
        &mut ws,
        json(serde_json::json!({"revert": {"commandId": "ws-b0"}})),
    )
    .await;
    let reverted = next_response(&mut ws).await;
    assert!(reverted.success, "{reverted:?}");
    assert_eq!(reverted.reason, "revert of ws-b0");

    send(
        &mut ws,
        json(serde_json::json!({"command": {
            "id": "ws-later", "key": KEY, "value": {"number": 0.18},
            "applyAtTick": (paused.tick + 3).to_string()
        }})),
    )
    .await;
    send(&mut ws, json(serde_json::json!({"listParameters": {}}))).await;
    let parameters = match next_reply(&mut ws).await {
        ServerMessage::Parameters(list) => list.parameters,
        other => panic!("expected parameters, got {other:?}"),
    };
    assert!(parameters.iter().any(|p| p.key == KEY && p.step > 0.0));

    send(
        &mut ws,
        json(serde_json::json!({"control": {"step": {"ticks": 3}}})),
    )
    .await;
    // Two answers, from two tasks, in either order: the scheduled command's,
    // decided in Phase 0 of its tick, and the step's, once that tick ended.
    let (mut later, mut stepped) = (None, None);
    for _ in 0..2 {
        match next_reply(&mut ws).await {
            ServerMessage::Response(response) => later = Some(response),
            ServerMessage::Control(control) => stepped = Some(control),
            other => panic!("expected a response and a control, got {other:?}"),
        }
    }
    let later = later.expect("the scheduled command's answer");
    assert_eq!(later.command_id, "ws-later");
    assert_eq!(later.applied_tick, paused.tick + 3);
    assert_eq!(stepped.expect("the step's answer").tick, paused.tick + 3);
    send(
        &mut ws,
        json(serde_json::json!({"control": {"resume": {}}})),
    )
    .await;
    match next_reply(&mut ws).await {
        ServerMessage::Control(control) => {
            assert_eq!(control.run_state(), watchtower::pb::RunState::Running);
        }
        other => panic!("expected control, got {other:?}"),
    }
}

/// The reply to `frame`, skipping snapshots.
async fn ask(ws: &mut Ws, frame: serde_json::Value) -> ServerMessage {
    send(ws, frame.to_string()).await;
    next_reply(ws).await
}

/// The ids of the scheduled commands, by `list_scheduled`.
async fn scheduled_ids(ws: &mut Ws) -> Vec<String> {
    match ask(ws, serde_json::json!({"listScheduled": {}})).await {
        ServerMessage::Scheduled(list) => list
            .commands
            .into_iter()
            .map(|s| s.command.expect("the command").id)
            .collect(),
        other => panic!("expected scheduled, got {other:?}"),
    }
}

/// A command scheduled over `/ws` is listed there, and cancelling it there
/// ends its own wait with CANCELLED, answers the canceller with the audited
/// cancellation, and it never applies, even once its tick has passed.
#[tokio::test]
async fn a_scheduled_command_is_listed_and_cancelled_over_the_websocket() {
    let config = Config {
        start_paused: true,
        ..test_config()
    };
    let app = spawn_app_with(config, Pacing::from_tps(100.0)).await;
    let mut ws = open(&format!("ws://{}/ws", app.addr)).await;
    let at = 5u64;
    send(
        &mut ws,
        serde_json::json!({"command": {
            "id": "ws-at-5", "key": KEY, "value": {"number": 0.19}, "applyAtTick": at.to_string()
        }})
        .to_string(),
    )
    .await;
    assert_eq!(scheduled_ids(&mut ws).await, ["ws-at-5"]);

    send(
        &mut ws,
        serde_json::json!({"cancelScheduled": {"commandId": "ws-at-5"}}).to_string(),
    )
    .await;
    // Two answers, from two tasks, in either order: the scheduled command's
    // own and the canceller's, both the one audited cancellation.
    for _ in 0..2 {
        let response = next_response(&mut ws).await;
        assert_eq!(response.command_id, "ws-at-5");
        assert_eq!(response.rejection(), RejectionReason::Cancelled);
        assert!(!response.success, "{response:?}");
    }
    assert!(scheduled_ids(&mut ws).await.is_empty());

    for (frame, code, field) in [
        (
            serde_json::json!({"cancelScheduled": {"commandId": "ws-at-5"}}),
            "NOT_FOUND",
            "command_id",
        ),
        (
            serde_json::json!({"cancelScheduled": {}}),
            "INVALID_ARGUMENT",
            "command_id",
        ),
    ] {
        match ask(&mut ws, frame).await {
            ServerMessage::Error(error) => {
                assert_eq!((error.code.as_str(), error.field.as_str()), (code, field))
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    let vat_before = vat(&snapshot_from(&mut ws, 0).await);
    match ask(
        &mut ws,
        serde_json::json!({"control": {"step": {"ticks": at + 1}}}),
    )
    .await
    {
        ServerMessage::Control(control) => assert_eq!(control.tick, at + 1),
        other => panic!("expected control, got {other:?}"),
    }
    let after = snapshot_from(&mut ws, at + 1).await;
    assert_eq!(
        vat(&after),
        vat_before,
        "the cancelled command never applied"
    );
    let audit = after.audit.expect("the audit tail");
    assert!(
        !audit
            .recent
            .iter()
            .any(|r| r.command_id == "ws-at-5" && r.success),
        "{audit:?}"
    );
}
