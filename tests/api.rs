//! WatchtowerService behaviour through a real tonic client over a real socket.

mod common;

use std::{collections::HashSet, time::Duration};

use common::*;
use tonic::Code;
use tonic_types::StatusExt;
use watchtower::{
    Config,
    pb::{self, ListParametersRequest, ParameterValue, SubscribeTelemetryRequest},
};

const KEY: &str = "fiscal.income_tax_rate";

async fn current_value(client: &mut Client, key: &str) -> ParameterValue {
    let parameters = client
        .list_parameters(ListParametersRequest {})
        .await
        .expect("list parameters")
        .into_inner()
        .parameters;
    parameters
        .into_iter()
        .find(|p| p.key == key)
        .and_then(|p| p.current_value)
        .expect("the key is listed")
}

/// The spec's test_engine_command_consumption_atomicity: ten queued commands
/// are all applied by one tick's Phase 0, each answered and audited.
#[tokio::test]
async fn test_engine_command_consumption_atomicity() {
    let app = spawn_stepped_app(test_config()).await;
    let mut calls = Vec::new();
    for i in 0..10 {
        let request = command(
            &format!("atomic-{i}"),
            KEY,
            number(0.2 + f64::from(i) / 100.0),
        );
        calls.push(spawn_apply(&app.client, request));
    }
    app.wait_queue_depth(10).await;
    app.step(1);
    let mut ticks = HashSet::new();
    for call in calls {
        let response = call
            .await
            .unwrap()
            .expect("applied")
            .into_inner()
            .response
            .unwrap();
        assert!(response.success, "{response:?}");
        ticks.insert(response.applied_tick);
    }
    assert_eq!(ticks, HashSet::from([1]), "all ten land in the same tick");

    let snapshot = app.snapshot_at(1).await;
    let engine = snapshot.engine.unwrap();
    assert_eq!(engine.commands_applied, 10);
    assert_eq!(engine.queue_depth, 0);
    let audit = snapshot.audit.unwrap();
    assert_eq!(audit.total, 10);
    let audited: Vec<_> = audit.recent.iter().map(|r| r.command_id.clone()).collect();
    for i in 0..10 {
        let id = format!("atomic-{i}");
        assert_eq!(
            audited.iter().filter(|a| **a == id).count(),
            1,
            "{id} audited once"
        );
    }
}

/// The spec's test_telemetry_snapshot_integrity: the Phase 8 snapshot of the
/// tick that applied a change shows the engine state right after it, and the
/// wire carries exactly what the engine published.
#[tokio::test]
async fn test_telemetry_snapshot_integrity() {
    let mut app = spawn_stepped_app(test_config()).await;
    app.step(2);
    let _ = app.snapshot_at(2).await;
    let call = app
        .apply_on_next_tick(&app.client, command("integrity", KEY, number(0.33)))
        .await;
    let response = call.await.unwrap().unwrap().into_inner().response.unwrap();
    assert_eq!(response.applied_tick, 3);

    let over_grpc = app.snapshot_at(3).await;
    assert_eq!(over_grpc.parameters[KEY], number(0.33).unwrap());
    assert_eq!(over_grpc.engine.as_ref().unwrap().commands_applied, 1);
    let in_process = app.server.telemetry().latest().unwrap();
    assert_eq!(
        &over_grpc,
        in_process.as_ref(),
        "the wire carries the published snapshot"
    );
    // The catalogue agrees with the snapshot on every parameter.
    let listed = app
        .client
        .list_parameters(ListParametersRequest {})
        .await
        .unwrap()
        .into_inner()
        .parameters;
    assert_eq!(listed.len(), over_grpc.parameters.len());
    for spec in listed {
        assert_eq!(
            spec.current_value.as_ref(),
            over_grpc.parameters.get(&spec.key),
            "{}",
            spec.key
        );
    }
}

#[tokio::test]
async fn apply_command_reports_old_and_new_values_and_the_tick() {
    let mut app = spawn_app(50.0).await;
    let before = current_value(&mut app.client, KEY).await;
    let response = app
        .client
        .apply_command(command("", KEY, number(0.31)))
        .await
        .expect("applied")
        .into_inner()
        .response
        .unwrap();
    assert!(response.success);
    assert!(!response.command_id.is_empty(), "the server assigns an id");
    assert_eq!(response.old_value, Some(before));
    assert_eq!(response.new_value, number(0.31));
    assert!(response.applied_tick >= 1);
    // The reply comes from Phase 0; the tick's own snapshot (Phase 8) is the
    // first to show the value, and ListParameters reads the latest snapshot.
    let telemetry = app.server.telemetry();
    eventually("the tick's snapshot", || {
        telemetry
            .latest()
            .is_some_and(|s| s.tick >= response.applied_tick)
    })
    .await;
    assert_eq!(
        current_value(&mut app.client, KEY).await,
        number(0.31).unwrap()
    );

    let second = app
        .client
        .apply_command(command("", KEY, number(0.32)))
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    assert_ne!(
        second.command_id, response.command_id,
        "assigned ids are unique"
    );
    assert!(second.applied_tick >= response.applied_tick);
}

#[tokio::test]
async fn bad_commands_get_invalid_argument_with_details_and_change_nothing() {
    let mut app = spawn_app(50.0).await;
    let before = current_value(&mut app.client, KEY).await;
    let flag = Some(ParameterValue {
        kind: Some(watchtower::pb::parameter_value::Kind::Flag(true)),
    });
    let cases = [
        (
            "out of range",
            KEY,
            number(1.5),
            "command.value",
            "[0, 0.9]",
        ),
        (
            "below range",
            KEY,
            number(-0.1),
            "command.value",
            "[0, 0.9]",
        ),
        (
            "unknown key",
            "fiscal.nope",
            number(0.1),
            "command.key",
            KEY,
        ),
        (
            "wrong type",
            KEY,
            integer(1),
            "command.value",
            "number in [0, 0.9]",
        ),
        (
            "wrong type flag",
            KEY,
            flag,
            "command.value",
            "number in [0, 0.9]",
        ),
        ("NaN", KEY, number(f64::NAN), "command.value", "[0, 0.9]"),
        (
            "infinity",
            KEY,
            number(f64::INFINITY),
            "command.value",
            "[0, 0.9]",
        ),
        (
            "missing value",
            KEY,
            None,
            "command.value",
            "number in [0, 0.9]",
        ),
    ];
    for (case, key, value, field, allowed) in cases {
        let status = app
            .client
            .apply_command(command(case, key, value))
            .await
            .expect_err(case);
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        let details = status.get_error_details();
        let violations = &details
            .bad_request()
            .expect("BadRequest details")
            .field_violations;
        assert_eq!(violations.len(), 1, "{case}");
        assert_eq!(violations[0].field, field, "{case}");
        assert!(
            violations[0].description.contains(allowed),
            "{case}: {}",
            violations[0].description
        );
        let info = details.error_info().expect("ErrorInfo details");
        assert_eq!(info.metadata["command_id"], case);
    }
    assert_eq!(
        current_value(&mut app.client, KEY).await,
        before,
        "nothing changed"
    );

    let status = app
        .client
        .apply_command(command("structural", "agents.households", integer(5)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = app
        .client
        .apply_command(watchtower::pb::ApplyCommandRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn every_rejection_is_audited_once() {
    let app = spawn_stepped_app(test_config()).await;
    let call = app
        .apply_on_next_tick(&app.client, command("rejected-1", KEY, number(9.0)))
        .await;
    assert_eq!(
        call.await.unwrap().unwrap_err().code(),
        Code::InvalidArgument
    );
    let snapshot = app.snapshot_at(1).await;
    let engine = snapshot.engine.unwrap();
    assert_eq!((engine.commands_applied, engine.commands_rejected), (0, 1));
    let audit = snapshot.audit.unwrap();
    let entry = &audit.recent[0];
    assert_eq!(entry.command_id, "rejected-1");
    assert!(!entry.success);
    assert_eq!(entry.field, "command.value");
    assert_eq!(snapshot.parameters[KEY], number(0.2).unwrap());
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once_and_nothing_accepted_is_lost() {
    let config = Config {
        queue_capacity: 3,
        ..test_config()
    };
    let app = spawn_stepped_app(config).await;
    let mut accepted = Vec::new();
    // One connection may hold only its share of the queue, so three fill it.
    for (i, value) in [0.21, 0.22, 0.23].into_iter().enumerate() {
        let request = command(&format!("queued-{i}"), KEY, number(value));
        accepted.push(spawn_apply(&connect(app.addr).await, request));
        app.wait_queue_depth(i + 1).await;
    }

    // The engine is not ticking, so only an immediate refusal can answer.
    let status = tokio::time::timeout(
        PATIENCE,
        app.client
            .clone()
            .apply_command(command("overflow", KEY, number(0.5))),
    )
    .await
    .expect("answered without waiting for a tick")
    .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("ErrorInfo");
    assert_eq!(info.metadata["capacity"], "3");
    assert_eq!(app.server.queue_depth(), 3);

    app.step(1);
    for call in accepted {
        assert!(
            call.await
                .unwrap()
                .unwrap()
                .into_inner()
                .response
                .unwrap()
                .success
        );
    }
    let snapshot = app.snapshot_at(1).await;
    assert_eq!(
        snapshot.audit.unwrap().total,
        3,
        "the refused command was never audited"
    );
    assert_eq!(
        snapshot.parameters[KEY],
        number(0.23).unwrap(),
        "applied in order"
    );
}

#[tokio::test]
async fn a_caller_that_leaves_while_queued_is_not_applied_but_audited() {
    let app = spawn_stepped_app(test_config()).await;
    // One caller whose deadline passes while its command waits in the queue.
    let mut request = tonic::Request::new(command("deadline", KEY, number(0.4)));
    request.set_timeout(Duration::from_millis(50));
    let status = app.client.clone().apply_command(request).await.unwrap_err();
    // tonic's client enforces the deadline too and may answer first with
    // CANCELLED; tests/security.rs checks the server's own DEADLINE_EXCEEDED.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    // One caller that cancels (its task is aborted mid-call).
    let cancelled = spawn_apply(
        &app.client,
        command("cancelled", "fiscal.vat_rate", number(0.15)),
    );
    app.wait_queue_depth(2).await;
    cancelled.abort();
    let _ = cancelled.await;
    // The server sees the reset stream and drops the call's reply channel.
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.step(1);
    let snapshot = app.snapshot_at(1).await;
    assert_eq!(
        snapshot.parameters[KEY],
        number(0.2).unwrap(),
        "not applied"
    );
    assert_eq!(
        snapshot.parameters["fiscal.vat_rate"],
        number(0.1).unwrap(),
        "not applied"
    );
    let audit = snapshot.audit.unwrap();
    assert_eq!(audit.total, 2, "both are audited");
    let outcomes: Vec<_> = audit
        .recent
        .iter()
        .map(|r| (r.command_id.as_str(), r.success, r.rejection()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("deadline", false, pb::RejectionReason::Expired),
            ("cancelled", false, pb::RejectionReason::Cancelled),
        ]
    );

    // The engine neither crashed nor blocked: it keeps ticking and applying.
    app.step(1);
    assert_eq!(app.snapshot_at(2).await.tick, 2);
}

#[tokio::test]
async fn telemetry_at_50ms_yields_rising_ticks() {
    let app = spawn_app(100.0).await;
    let mut stream = subscribe(&mut app.client.clone(), 50).await;
    let mut ticks = Vec::new();
    while ticks.len() < 6 {
        let snapshot = next_snapshot(&mut stream).await;
        assert!(!snapshot.parameters.is_empty());
        assert!(snapshot.captured_at_unix_ms > 0);
        ticks.push(snapshot.tick);
    }
    assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{ticks:?}");
}

/// Push on publish: the interval is a minimum spacing, not a clock, so a
/// 100 ms stream of a 10 TPS engine sees every tick.
#[tokio::test]
async fn a_100ms_subscriber_of_a_10_tps_engine_gets_every_tick() {
    let app = spawn_app(10.0).await;
    let mut stream = subscribe(&mut app.client.clone(), 100).await;
    // The first message is whatever was published before the stream opened;
    // the interval counts from it, so the next may wait out part of a tick.
    next_snapshot(&mut stream).await;
    let mut ticks = Vec::new();
    while ticks.len() < 12 {
        ticks.push(next_snapshot(&mut stream).await.tick);
    }
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ticks: {ticks:?}"
    );
}

/// The fan-out takes turns by connection group (src/server/fanout.rs). With
/// more connections than groups, so some groups hold two, every stream on
/// every connection still gets every tick, in order, and a command queued
/// meanwhile is applied and answered.
#[tokio::test]
async fn streams_on_more_connections_than_groups_each_get_every_tick() {
    let app = spawn_stepped_app(test_config()).await;
    app.step(1);
    app.snapshot_at(1).await;
    let mut streams = Vec::new();
    for _ in 0..watchtower::server::fanout::SHARDS + 6 {
        let mut client = connect(app.addr).await;
        for _ in 0..3 {
            streams.push(subscribe(&mut client, 10).await);
        }
    }
    let every_stream_gets = async |streams: &mut Vec<_>, tick| {
        for (i, stream) in streams.iter_mut().enumerate() {
            let next = tokio::time::timeout(PATIENCE, next_snapshot(stream)).await;
            assert_eq!(
                next.expect("every group gets its turn").tick,
                tick,
                "stream {i}"
            );
        }
    };
    every_stream_gets(&mut streams, 1).await;
    let answer = spawn_apply(&app.client, command("turns", KEY, number(0.3)));
    app.wait_queue_depth(1).await;
    for tick in 2..=4 {
        app.step(1);
        every_stream_gets(&mut streams, tick).await;
    }
    let response = answer.await.unwrap().expect("the command is answered");
    assert_eq!(response.into_inner().response.unwrap().applied_tick, 2);
}

/// Waits until the hub has seen `tick` (its `latest_tick` in GetServerStats).
async fn wait_hub_tick(client: &mut Client, tick: u64) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let stats = client
                .get_server_stats(pb::GetServerStatsRequest {})
                .await
                .expect("stats")
                .into_inner();
            if stats.latest_tick >= tick {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the hub sees the tick");
}

/// A stream whose interval is not up does not send the snapshots published
/// meanwhile; when it is up, it sends the newest one only.
#[tokio::test]
async fn a_slow_subscriber_gets_the_newest_snapshot_once_its_interval_is_up() {
    let mut app = spawn_stepped_app(test_config()).await;
    let mut stream = subscribe(&mut app.client.clone(), 1000).await;
    let first = next_snapshot(&mut stream).await.tick;
    let sent = std::time::Instant::now();
    for tick in first + 1..=first + 3 {
        app.step(1);
        wait_hub_tick(&mut app.client, tick).await;
    }
    assert_eq!(
        next_snapshot(&mut stream).await.tick,
        first + 3,
        "the newest, not the next"
    );
    // The server spaces messages by at least three quarters of the
    // interval; the margin below absorbs the client's own scheduling.
    assert!(
        sent.elapsed() >= Duration::from_millis(500),
        "{:?}",
        sent.elapsed()
    );
    app.step(1);
    assert_eq!(next_snapshot(&mut stream).await.tick, first + 4);
}

/// A reader that stops reading fills its flow-control window and is then
/// not polled: when it reads again it gets what the window held and then
/// the newest snapshot, never the backlog.
#[tokio::test]
async fn a_reader_that_stops_reading_gets_only_the_newest_when_it_resumes() {
    const WINDOW: u32 = 65_535;
    const TICKS: u64 = 200;
    let mut app = spawn_stepped_app(test_config()).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .connect()
        .await
        .expect("connect");
    let mut reader = Client::new(channel);
    let mut stream = subscribe(&mut reader, 10).await;
    let first = next_snapshot(&mut stream).await;
    for tick in 1..=TICKS {
        app.step(1);
        wait_hub_tick(&mut app.client, tick).await;
    }
    let mut ticks = vec![first.tick];
    while *ticks.last().unwrap() < TICKS {
        ticks.push(next_snapshot(&mut stream).await.tick);
    }
    assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{ticks:?}");
    // What the window could hold, plus one frame h2 had taken but not sent,
    // plus the newest.
    let held = WINDOW as usize / prost::Message::encoded_len(&first);
    assert!(
        ticks.len() <= held + 3,
        "{} messages for {TICKS} ticks; the window holds {held}: {ticks:?}",
        ticks.len()
    );
}

#[tokio::test]
async fn telemetry_intervals_outside_the_range_are_refused() {
    let mut app = spawn_app(10.0).await;
    for interval_ms in [1, 9, 60_001, u32::MAX] {
        let status = app
            .client
            .subscribe_telemetry(SubscribeTelemetryRequest {
                interval_ms,
                history: 0,
            })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{interval_ms}");
        let details = status.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(violation.field, "interval_ms");
        assert!(violation.description.contains("10 to 60000"));
    }
    for interval_ms in [0, 10, 60_000] {
        assert!(
            app.client
                .subscribe_telemetry(SubscribeTelemetryRequest {
                    interval_ms,
                    history: 0
                })
                .await
                .is_ok(),
            "{interval_ms}"
        );
    }
}

/// Readers that never read fill their flow-control windows and are then
/// simply not polled: the engine keeps ticking and other readers keep
/// getting fresh snapshots.
#[tokio::test]
async fn subscribers_that_never_read_slow_no_one() {
    let app = spawn_app(200.0).await;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut client = connect(app.addr).await;
        let stream = subscribe(&mut client, 10).await;
        stalled.push((client, stream));
    }
    let mut reader = connect(app.addr).await;
    let mut stream = subscribe(&mut reader, 10).await;
    let first = next_snapshot(&mut stream).await.tick;
    // Long enough for the stalled streams' windows (64 KiB) to fill.
    let mut last = first;
    for _ in 0..150 {
        let tick = next_snapshot(&mut stream).await.tick;
        assert!(tick > last, "fresh snapshots keep coming");
        last = tick;
    }
    let engine_tick = app.server.telemetry().latest().unwrap().tick;
    assert!(
        engine_tick >= last,
        "the reader is never ahead of the engine"
    );
    assert!(last - first >= 150, "one new tick per message at least");
    assert_eq!(app.server.active_subscribers(), 9);
    drop(stalled);
}

#[tokio::test]
async fn a_client_that_disconnects_releases_its_stream() {
    let app = spawn_app(50.0).await;
    let mut client = connect(app.addr).await;
    let mut stream = subscribe(&mut client, 10).await;
    stream.message().await.unwrap().unwrap();
    assert_eq!(app.server.active_subscribers(), 1);
    drop(stream);
    drop(client);
    eventually("the stream is released", || {
        app.server.active_subscribers() == 0
    })
    .await;
}

#[tokio::test]
async fn health_reports_serving_once_the_engine_ticks() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let app = spawn_stepped_app(test_config()).await;
    let mut health = HealthClient::new(channel(app.addr).await);
    for service in ["", service_name()] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::NotServing, "no tick yet");
    }
    app.step(1);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: service_name().into(),
        })
        .await
        .unwrap()
        .into_inner();
    loop {
        let status = watch.message().await.unwrap().unwrap().status();
        if status == ServingStatus::Serving {
            break;
        }
    }
}

#[tokio::test]
async fn reflection_lists_and_describes_the_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = spawn_app(10.0).await;
    let mut reflection = ServerReflectionClient::new(channel(app.addr).await);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("watchtower.v1.WatchtowerService".into()),
    ];
    let outbound = tokio_stream::iter(requests.into_iter().map(|r| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r),
    }));
    let mut responses = reflection
        .server_reflection_info(outbound)
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "watchtower.v1.WatchtowerService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a file descriptor");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn calls_get_unavailable_once_the_engine_is_gone() {
    let mut app = spawn_stepped_app(test_config()).await;
    let mut stream = subscribe(&mut app.client.clone(), 10).await;
    stream.message().await.unwrap().unwrap();
    let queued = spawn_apply(&app.client, command("late", KEY, number(0.3)));
    app.wait_queue_depth(1).await;
    // Closing the gate stops the engine thread, as a halt would.
    app.gate.as_ref().unwrap().close();
    app.server.engine_stopped().await;
    assert_eq!(queued.await.unwrap().unwrap_err().code(), Code::Unavailable);
    let status = app
        .client
        .apply_command(command("after", KEY, number(0.3)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let status = app
        .client
        .list_parameters(ListParametersRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let status = app
        .client
        .subscribe_telemetry(SubscribeTelemetryRequest {
            interval_ms: 10,
            history: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    // The telemetry stream ends instead of hanging.
    tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(_)) = stream.message().await {}
    })
    .await
    .expect("the stream ends");
}

#[tokio::test]
async fn graceful_stop_ends_streams_answers_pending_commands_and_joins_the_engine() {
    let app = spawn_stepped_app(test_config()).await;
    app.step(1);
    // Tick 1 has run, so the engine waits at its gate and cannot take the
    // command below before the stop.
    app.snapshot_at(1).await;
    let mut stream = subscribe(&mut app.client.clone(), 10).await;
    // Tick 1 is done, so the command below waits for a tick that never comes.
    while next_snapshot(&mut stream).await.tick < 1 {}
    let pending = spawn_apply(&app.client, command("pending", KEY, number(0.3)));
    app.wait_queue_depth(1).await;

    let started = std::time::Instant::now();
    let report = app.server.stop().await.expect("the engine stops cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.ticks, 1);
    // The engine never got to tick again, so the pending command is answered
    // UNAVAILABLE rather than left hanging.
    assert_eq!(
        pending.await.unwrap().unwrap_err().code(),
        Code::Unavailable
    );
    // The stream ended cleanly: no error, just the end.
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(end.is_ok(), "{end:?}");
}

#[tokio::test]
async fn each_snapshot_is_encoded_once_however_many_subscribe() {
    use watchtower::pb::GetServerStatsRequest;
    let app = spawn_stepped_app(test_config()).await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        let mut client = connect(app.addr).await;
        let stream = subscribe(&mut client, 10).await;
        streams.push((client, stream));
    }
    for tick in 0..=3 {
        if tick > 0 {
            app.step(1);
        }
        for (_, stream) in &mut streams {
            let snapshot = next_snapshot(stream).await;
            assert_eq!(snapshot.tick, tick);
        }
    }
    let stats = app
        .client
        .clone()
        .get_server_stats(GetServerStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.snapshots_encoded, 4, "ticks 0 to 3, once each");
    assert_eq!(stats.snapshots_delivered, 20, "5 subscribers x 4 ticks");
    assert_eq!(stats.active_subscribers, 5);
    assert_eq!(stats.latest_tick, 3);
}

#[tokio::test]
async fn a_late_subscriber_gets_history_first() {
    let mut app = spawn_stepped_app(test_config()).await;
    // One tick at a time, so the hub sees (and keeps) every snapshot.
    let mut early = subscribe(&mut app.client.clone(), 10).await;
    for tick in 0..=8 {
        if tick > 0 {
            app.step(1);
        }
        let seen = next_snapshot(&mut early).await.tick;
        assert_eq!(seen, tick);
    }
    let mut stream = app
        .client
        .subscribe_telemetry(SubscribeTelemetryRequest {
            interval_ms: 10,
            history: 5,
        })
        .await
        .unwrap()
        .into_inner();
    let mut ticks = Vec::new();
    for _ in 0..5 {
        ticks.push(next_snapshot(&mut stream).await.tick);
    }
    assert_eq!(ticks, [4, 5, 6, 7, 8]);
    app.step(1);
    assert_eq!(next_snapshot(&mut stream).await.tick, 9);
    let status = app
        .client
        .subscribe_telemetry(SubscribeTelemetryRequest {
            interval_ms: 10,
            history: 601,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}
