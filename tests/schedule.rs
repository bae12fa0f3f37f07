//! Scheduled commands (`apply_at_tick`), `ListScheduledCommands` and
//! `CancelScheduledCommand` through a real tonic client over a real socket.
//! The engine starts paused and is stepped with `ControlEngine`, so ticks
//! move only when the test says.

mod common;

use common::*;
use tonic::Code;
use tonic_types::StatusExt;
use watchtower::{
    Config,
    engine::Pacing,
    pb::{
        self, CancelScheduledCommandRequest, ControlEngineRequest, ControlStep,
        ListScheduledCommandsRequest, RejectionReason, control_engine_request::Action,
    },
};

const TAX: &str = "fiscal.income_tax_rate";
const VAT: &str = "fiscal.vat_rate";

async fn paused_app(max_scheduled: usize) -> TestApp {
    let config = Config {
        start_paused: true,
        max_scheduled,
        ..test_config()
    };
    spawn_app_with(config, Pacing::from_tps(100.0)).await
}

async fn step(client: &mut Client, ticks: u32) -> u64 {
    client
        .control_engine(ControlEngineRequest {
            action: Some(Action::Step(ControlStep { ticks })),
        })
        .await
        .expect("stepped")
        .into_inner()
        .tick
}

fn at(id: &str, key: &str, value: f64, tick: u64) -> pb::ApplyCommandRequest {
    let mut request = command(id, key, number(value));
    request.command.as_mut().unwrap().apply_at_tick = tick;
    request
}

async fn scheduled_ids(client: &mut Client) -> Vec<(String, u64)> {
    client
        .list_scheduled_commands(ListScheduledCommandsRequest {})
        .await
        .expect("listed")
        .into_inner()
        .commands
        .into_iter()
        .map(|s| {
            let command = s.command.unwrap();
            (command.id, command.apply_at_tick)
        })
        .collect()
}

/// Polls the list until it holds `n` commands (the calls that schedule
/// them run on their own tasks).
async fn wait_scheduled(client: &mut Client, n: usize) -> Vec<(String, u64)> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let ids = scheduled_ids(client).await;
        if ids.len() == n {
            return ids;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ids:?}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_scheduled_command_applies_at_its_tick_and_a_cancelled_one_never() {
    let mut app = paused_app(100).await;
    let now = step(&mut app.client, 5).await;
    assert_eq!(now, 5);

    let later = spawn_apply(&app.client, at("later", TAX, 0.23, now + 20));
    let doomed = spawn_apply(&app.client, at("doomed", VAT, 0.19, now + 10));
    let listed = wait_scheduled(&mut app.client, 2).await;
    assert_eq!(
        listed,
        [
            ("doomed".to_owned(), now + 10),
            ("later".to_owned(), now + 20)
        ],
        "soonest first"
    );

    let cancelled = app
        .client
        .cancel_scheduled_command(CancelScheduledCommandRequest {
            command_id: "doomed".into(),
        })
        .await
        .expect("cancelled")
        .into_inner()
        .response
        .unwrap();
    assert_eq!(cancelled.rejection(), RejectionReason::Cancelled);
    let status = doomed.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");

    let unknown = app
        .client
        .cancel_scheduled_command(CancelScheduledCommandRequest {
            command_id: "doomed".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let vat_before = app.snapshot_at(now).await.parameters[VAT];
    assert_eq!(step(&mut app.client, 20).await, now + 20);
    let applied = later.await.unwrap().expect("applied").into_inner();
    assert_eq!(applied.response.unwrap().applied_tick, now + 20);
    assert!(scheduled_ids(&mut app.client).await.is_empty());
    let snapshot = app.snapshot_at(now + 20).await;
    assert_eq!(snapshot.parameters[TAX], number(0.23).unwrap());
    assert_eq!(snapshot.parameters[VAT], vat_before, "never applied");
}

#[tokio::test]
async fn a_passed_tick_is_invalid_and_the_schedule_is_bounded() {
    let mut app = paused_app(1).await;
    step(&mut app.client, 3).await;
    let status = app
        .client
        .apply_command(at("past", TAX, 0.2, 2))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "command.apply_at_tick"
    );

    let _held = spawn_apply(&app.client, at("one", TAX, 0.2, 50));
    wait_scheduled(&mut app.client, 1).await;
    let full = app
        .client
        .apply_command(at("two", TAX, 0.21, 50))
        .await
        .unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");
}
