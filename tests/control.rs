//! Run control (`ControlEngine`) through a real tonic client over a real
//! socket: pause, step, resume, pace, `--start-paused`, bad actions.

mod common;

use std::time::Duration;

use common::{binary::Binary, *};
use tonic::Code;
use tonic_types::StatusExt;
use watchtower::{
    Config,
    engine::Pacing,
    pb::{
        self, ControlEngineRequest, ControlPause, ControlResume, ControlSetTps, ControlStep,
        RunState, control_engine_request::Action,
    },
};

const KEY: &str = "fiscal.income_tax_rate";

async fn control(client: &mut Client, action: Action) -> pb::ControlEngineResponse {
    client
        .control_engine(ControlEngineRequest {
            action: Some(action),
        })
        .await
        .expect("the control action is accepted")
        .into_inner()
}

fn pause() -> Action {
    Action::Pause(ControlPause {})
}

fn resume() -> Action {
    Action::Resume(ControlResume {})
}

fn step(ticks: u32) -> Action {
    Action::Step(ControlStep { ticks })
}

/// The first snapshot on `stream` that satisfies `wanted`.
async fn snapshot_where(
    stream: &mut tonic::Streaming<pb::SubscribeTelemetryResponse>,
    mut wanted: impl FnMut(&pb::WatchtowerSnapshot) -> bool,
) -> pb::WatchtowerSnapshot {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let snapshot = next_snapshot(stream).await;
            if wanted(&snapshot) {
                return snapshot;
            }
        }
    })
    .await
    .expect("the snapshot arrives")
}

fn run_state(snapshot: &pb::WatchtowerSnapshot) -> RunState {
    snapshot
        .engine
        .as_ref()
        .expect("engine statistics")
        .run_state()
}

#[tokio::test]
async fn a_paused_engine_holds_its_tick_but_still_applies_commands_at_once() {
    let mut app = spawn_app(100.0).await;
    let mut stream = subscribe(&mut app.client, 10).await;
    snapshot_where(&mut stream, |s| s.tick >= 3).await;

    let paused = control(&mut app.client, pause()).await;
    assert_eq!(paused.run_state(), RunState::Paused);
    assert_eq!(paused.target_tps, 100.0);
    let held = snapshot_where(&mut stream, |s| s.tick == paused.tick).await;
    assert_eq!(run_state(&held), RunState::Paused);

    // For a second nothing new is published: the tick holds.
    let quiet = tokio::time::timeout(Duration::from_secs(1), stream.message()).await;
    assert!(quiet.is_err(), "a paused engine published {quiet:?}");

    let applied = app
        .client
        .apply_command(command("while-paused", KEY, number(0.31)))
        .await
        .expect("applied while paused")
        .into_inner()
        .response
        .unwrap();
    assert_eq!(applied.applied_tick, paused.tick);
    assert!(applied.applied_while_paused);
    // The snapshot that shows it comes at once, with the same tick.
    let shown = next_snapshot(&mut stream).await;
    assert_eq!(shown.tick, paused.tick);
    assert_eq!(shown.parameters[KEY], number(0.31).unwrap());
    assert_eq!(run_state(&shown), RunState::Paused);
    let audit = shown.audit.unwrap();
    let pause_entry = audit
        .recent
        .iter()
        .find(|e| e.key == "engine.pause")
        .expect("the pause is audited");
    assert_eq!(pause_entry.principal, "anonymous");
    assert_eq!(pause_entry.applied_tick, paused.tick);
}

#[tokio::test]
async fn step_advances_exactly_its_ticks_then_resume_runs_again() {
    let mut app = spawn_app(100.0).await;
    let paused = control(&mut app.client, pause()).await;
    let stepped = control(&mut app.client, step(5)).await;
    assert_eq!(stepped.tick, paused.tick + 5);
    assert_eq!(stepped.run_state(), RunState::Paused);
    let mut stream = subscribe(&mut app.client, 10).await;
    let latest = next_snapshot(&mut stream).await;
    assert_eq!(
        latest.tick, stepped.tick,
        "the last stepped tick is published"
    );
    assert_eq!(run_state(&latest), RunState::Paused);

    let resumed = control(&mut app.client, resume()).await;
    assert_eq!(resumed.run_state(), RunState::Running);
    let later = snapshot_where(&mut stream, |s| s.tick > stepped.tick + 3).await;
    assert_eq!(run_state(&later), RunState::Running);
}

#[tokio::test]
async fn set_tps_changes_the_pace() {
    let mut app = spawn_app(200.0).await;
    let set = control(&mut app.client, Action::SetTps(ControlSetTps { tps: 20.0 })).await;
    assert_eq!(set.target_tps, 20.0);
    let mut stream = subscribe(&mut app.client, 10).await;
    // The measured rate covers the last full second; two seconds at the new
    // pace leave one whole window of it.
    let from = set.tick;
    let snapshot = snapshot_where(&mut stream, |s| s.tick >= from + 45).await;
    let engine = snapshot.engine.unwrap();
    assert_eq!(engine.target_tps, 20.0);
    println!(
        "measured {:.2} ticks/s at a target of 20",
        engine.measured_tps
    );
    assert!(
        (14.0..=21.0).contains(&engine.measured_tps),
        "measured {} ticks/s",
        engine.measured_tps
    );
}

#[tokio::test]
async fn start_paused_holds_tick_zero_until_a_step() {
    let config = Config {
        start_paused: true,
        ..test_config()
    };
    let mut app = spawn_app_with(config, Pacing::from_tps(100.0)).await;
    let set = app
        .client
        .apply_command(command("before-tick-1", KEY, number(0.29)))
        .await
        .expect("applied before tick 1")
        .into_inner()
        .response
        .unwrap();
    assert_eq!(set.applied_tick, 0);
    assert!(set.applied_while_paused);
    let stepped = control(&mut app.client, step(1)).await;
    assert_eq!(stepped.tick, 1);
    let mut stream = subscribe(&mut app.client, 10).await;
    let first = next_snapshot(&mut stream).await;
    assert_eq!(first.tick, 1);
    assert_eq!(first.parameters[KEY], number(0.29).unwrap());
}

#[tokio::test]
async fn bad_control_actions_are_invalid_argument_and_name_the_field() {
    let mut app = spawn_app(100.0).await;
    for (action, field) in [
        (step(0), "step.ticks"),
        (step(10_001), "step.ticks"),
        (Action::SetTps(ControlSetTps { tps: -1.0 }), "set_tps.tps"),
        (
            Action::SetTps(ControlSetTps { tps: f64::NAN }),
            "set_tps.tps",
        ),
        (Action::SetTps(ControlSetTps { tps: 2e6 }), "set_tps.tps"),
    ] {
        let status = app
            .client
            .control_engine(ControlEngineRequest {
                action: Some(action),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        let violations = &details
            .bad_request()
            .expect("BadRequest details")
            .field_violations;
        assert_eq!(violations[0].field, field);
    }
    let missing = app
        .client
        .control_engine(ControlEngineRequest { action: None })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    let mut stream = subscribe(&mut app.client, 10).await;
    let snapshot = next_snapshot(&mut stream).await;
    assert_eq!(run_state(&snapshot), RunState::Running, "nothing changed");
    assert!(
        snapshot
            .audit
            .unwrap()
            .recent
            .iter()
            .all(|e| !e.key.starts_with("engine.")),
        "a refused action is not audited"
    );
}

/// Streams whose interval is longer than a tick wait out their interval and
/// then for their group's turn; each must still get the snapshot a pause
/// leaves, though nothing is published after it. (A stream that told the hub
/// it was ready before it parked could miss its turn, and wait for a next
/// publication that a paused engine never makes.) The real binary, so the
/// network runtime is the one users get: several workers, no LIFO slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_gets_the_paused_snapshot_though_nothing_follows_it() {
    let mut app = Binary::start(&["--tps", "100"]);
    let mut client = connect(app.addr()).await;
    let mut streams = Vec::new();
    for _ in 0..200 {
        streams.push(subscribe(&mut client, 35).await);
    }
    for round in 0..5 {
        for stream in &mut streams {
            snapshot_where(stream, |s| run_state(s) == RunState::Running).await;
        }
        let paused = control(&mut client, pause()).await;
        for stream in &mut streams {
            let held = snapshot_where(stream, |s| s.tick == paused.tick).await;
            assert_eq!(run_state(&held), RunState::Paused, "round {round}");
        }
        control(&mut client, resume()).await;
    }
}
