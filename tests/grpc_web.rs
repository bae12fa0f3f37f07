//! gRPC-Web as a browser speaks it: HTTP/1.1 POSTs from a plain HTTP client
//! (no tonic client), in binary (`application/grpc-web+proto`) and text
//! (`application/grpc-web-text`, base64) modes, with the length-prefixed
//! frames and the trailer frame decoded by `common::grpc_web`, plus the CORS
//! rules.

mod common;

use common::{grpc_web::*, *};
use http_body_util::Full;
use hyper::{
    HeaderMap, Method, Request, StatusCode,
    body::Bytes,
    header::{self, HeaderValue},
};
use prost::Message;
use watchtower::{
    Config,
    pb::{
        ApplyCommandResponse, ListParametersRequest, ListParametersResponse,
        SubscribeTelemetryRequest, SubscribeTelemetryResponse, parameter_value::Kind,
    },
};

const LOCAL_ORIGIN: &str = "http://localhost:3000";
const EVIL_ORIGIN: &str = "https://evil.example";

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
        let response = call(app.addr, mode, "SubscribeTelemetry", &request, &[]).await;
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

/// Push on publish: at 100 ms on a 10 TPS engine every tick is sent, in
/// step with the engine, in both modes.
#[tokio::test]
async fn a_100ms_stream_of_a_10_tps_engine_gets_every_tick() {
    let app = spawn_app(10.0).await;
    for mode in Mode::ALL {
        let request = SubscribeTelemetryRequest {
            interval_ms: 100,
            history: 0,
        };
        let response = call(app.addr, mode, "SubscribeTelemetry", &request, &[]).await;
        let mut reader = FrameReader::new(response, mode);
        // The first was published before the stream opened; skip it.
        let _: SubscribeTelemetryResponse = reader.next_message().await;
        let mut ticks = Vec::new();
        for _ in 0..6 {
            let message: SubscribeTelemetryResponse = reader.next_message().await;
            ticks.push(message.snapshot.expect("a snapshot").tick);
        }
        assert!(
            ticks.windows(2).all(|w| w[1] == w[0] + 1),
            "{mode:?}: consecutive ticks: {ticks:?}"
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
        let response = call(app.addr, mode, "SubscribeTelemetry", &request, &[]).await;
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
        &[("origin", LOCAL_ORIGIN)],
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
