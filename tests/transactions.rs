//! Batches, dry runs and compare-and-set through a real tonic client over a
//! real socket. The engine starts paused, so Phase 0 runs between ticks and
//! nothing else moves the values under test.

mod common;

use common::*;
use tonic::Code;
use tonic_types::StatusExt;
use watchtower::{
    Config,
    engine::Pacing,
    pb::{self, ApplyCommandsRequest, GodCommand, ParameterValue, RejectionReason},
};

const TAX: &str = "fiscal.income_tax_rate";
const VAT: &str = "fiscal.vat_rate";
const SPENDING: &str = "fiscal.government_spending_ratio";

async fn paused_app() -> TestApp {
    let config = Config {
        start_paused: true,
        ..test_config()
    };
    spawn_app_with(config, Pacing::from_tps(100.0)).await
}

fn god(id: &str, key: &str, value: Option<ParameterValue>) -> GodCommand {
    command(id, key, value).command.unwrap()
}

fn batch(commands: Vec<GodCommand>) -> ApplyCommandsRequest {
    ApplyCommandsRequest {
        commands,
        validate_only: false,
    }
}

/// The first snapshot whose audit log holds `total` entries.
async fn audited(app: &TestApp, total: u64) -> pb::WatchtowerSnapshot {
    let mut stream = subscribe(&mut app.client.clone(), 10).await;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let snapshot = next_snapshot(&mut stream).await;
            if snapshot.audit.as_ref().unwrap().total >= total {
                return snapshot;
            }
        }
    })
    .await
    .expect("the snapshot arrives")
}

async fn spending_value(app: &TestApp) -> ParameterValue {
    audited(app, 0).await.parameters[SPENDING]
}

#[tokio::test]
async fn three_commands_of_a_batch_land_in_the_same_phase_0() {
    let mut app = paused_app().await;
    let spending = spending_value(&app).await;
    let responses = app
        .client
        .apply_commands(batch(vec![
            god("b-0", TAX, number(0.22)),
            god("b-1", VAT, number(0.11)),
            god("b-2", SPENDING, Some(spending)),
        ]))
        .await
        .expect("the batch applies")
        .into_inner()
        .responses;
    assert_eq!(responses.len(), 3);
    assert!(responses.iter().all(|r| r.success && r.applied_tick == 0));
    let ids: Vec<_> = responses.iter().map(|r| r.command_id.as_str()).collect();
    assert_eq!(ids, ["b-0", "b-1", "b-2"], "in request order");
    let snapshot = audited(&app, 3).await;
    assert_eq!(snapshot.parameters[TAX], number(0.22).unwrap());
    assert_eq!(snapshot.parameters[VAT], number(0.11).unwrap());
}

#[tokio::test]
async fn one_bad_command_means_none_lands_and_its_index_is_named() {
    let mut app = paused_app().await;
    let before = audited(&app, 0).await.parameters;
    let status = app
        .client
        .apply_commands(batch(vec![
            god("x-0", TAX, number(0.22)),
            god("x-1", VAT, number(0.11)),
            god("x-2", TAX, number(7.0)),
        ]))
        .await
        .expect_err("an out-of-range command refuses the batch");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let violation = &details.bad_request().expect("BadRequest").field_violations[0];
    assert_eq!(violation.field, "commands[2].value");

    let snapshot = audited(&app, 3).await;
    assert_eq!(snapshot.parameters[TAX], before[TAX], "nothing landed");
    assert_eq!(snapshot.parameters[VAT], before[VAT], "nothing landed");
    let audit = snapshot.audit.unwrap();
    let reasons: Vec<_> = audit.recent.iter().map(|r| r.rejection()).collect();
    assert_eq!(
        reasons,
        [
            RejectionReason::BatchAborted,
            RejectionReason::BatchAborted,
            RejectionReason::OutOfRange
        ]
    );
    assert_eq!(snapshot.engine.unwrap().commands_applied, 0);
}

#[tokio::test]
async fn batches_outside_the_limits_are_refused_before_the_queue() {
    let mut app = paused_app().await;
    let many = (0..101)
        .map(|i| god(&format!("m-{i}"), TAX, number(0.2)))
        .collect();
    for (request, field) in [
        (batch(many), "commands"),
        (batch(Vec::new()), "commands"),
        (
            batch(vec![
                god("ok", TAX, number(0.2)),
                god("k", &"k".repeat(200), None),
            ]),
            "commands[1].key",
        ),
    ] {
        let status = app.client.apply_commands(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            field
        );
    }
}

/// A batch applies in one Phase 0, the next, so a command in it that asks
/// for a later tick is refused (dry run or not) rather than silently applied
/// now, and nothing of the batch is queued.
#[tokio::test]
async fn a_scheduled_command_in_a_batch_is_refused_and_nothing_lands() {
    let mut app = paused_app().await;
    let before = audited(&app, 0).await.parameters;
    let later = GodCommand {
        apply_at_tick: 50,
        ..god("s-1", VAT, number(0.11))
    };
    for validate_only in [false, true] {
        let request = ApplyCommandsRequest {
            commands: vec![god("s-0", TAX, number(0.22)), later.clone()],
            validate_only,
        };
        let status = app.client.apply_commands(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("BadRequest").field_violations[0];
        assert_eq!(violation.field, "commands[1].apply_at_tick");
        assert!(
            violation.description.contains("allowed: 0"),
            "{violation:?}"
        );
        assert!(status.message().contains("one by one"), "{status:?}");
    }
    // A command after the refusals lands first: nothing of the batches did.
    app.client
        .apply_command(command("after", SPENDING, Some(before[SPENDING])))
        .await
        .expect("a plain command applies");
    let snapshot = audited(&app, 1).await;
    assert_eq!(
        snapshot.audit.unwrap().total,
        1,
        "only the plain command is audited"
    );
    assert_eq!(snapshot.parameters[TAX], before[TAX]);
    assert_eq!(snapshot.parameters[VAT], before[VAT]);
    assert!(
        app.client
            .list_scheduled_commands(pb::ListScheduledCommandsRequest {})
            .await
            .unwrap()
            .into_inner()
            .commands
            .is_empty(),
        "nothing was scheduled"
    );
}

#[tokio::test]
async fn a_dry_run_answers_what_would_happen_and_changes_nothing() {
    let mut app = paused_app().await;
    let before = audited(&app, 0).await.parameters;
    let mut request = command("dry", TAX, number(0.27));
    request.validate_only = true;
    let response = app
        .client
        .apply_command(request)
        .await
        .expect("a valid dry run")
        .into_inner()
        .response
        .unwrap();
    assert!(response.success && response.dry_run);
    assert_eq!(response.old_value, Some(before[TAX]));
    assert_eq!(response.new_value, number(0.27));

    let mut bad = command("dry-bad", TAX, number(7.0));
    bad.validate_only = true;
    let status = app.client.apply_command(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let responses = app
        .client
        .apply_commands(ApplyCommandsRequest {
            commands: vec![
                god("dry-0", TAX, number(0.3)),
                god("dry-1", VAT, number(0.2)),
            ],
            validate_only: true,
        })
        .await
        .expect("a valid batch dry run")
        .into_inner()
        .responses;
    assert!(responses.iter().all(|r| r.success && r.dry_run));

    // A real command afterwards is the first entry of the audit log.
    app.client
        .apply_command(command("real", VAT, number(0.13)))
        .await
        .expect("applied");
    let snapshot = audited(&app, 1).await;
    let audit = snapshot.audit.unwrap();
    assert_eq!(audit.total, 1, "dry runs are not audited");
    assert_eq!(audit.recent[0].command_id, "real");
    assert_eq!(snapshot.parameters[TAX], before[TAX]);
}

#[tokio::test]
async fn a_stale_expected_value_is_aborted_with_the_current_value() {
    let mut app = paused_app().await;
    let before = audited(&app, 0).await.parameters[TAX];
    let mut first = command("cas-1", TAX, number(0.24));
    first.command.as_mut().unwrap().expected_value = Some(before);
    app.client
        .apply_command(first)
        .await
        .expect("the expected value matches");

    // A second operator still believes the old value.
    let mut stale = command("cas-2", TAX, number(0.26));
    stale.command.as_mut().unwrap().expected_value = Some(before);
    let status = app.client.apply_command(stale).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "CONFLICT");
    assert_eq!(info.metadata["current_value"], r#"{"number":0.24}"#);
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "command.expected_value"
    );
    let snapshot = audited(&app, 2).await;
    assert_eq!(snapshot.parameters[TAX], number(0.24).unwrap());

    // In a batch, the conflict is named by index and aborts the rest.
    let mut cas = god("cas-3", TAX, number(0.2));
    cas.expected_value = Some(before);
    let status = app
        .client
        .apply_commands(batch(vec![god("cas-4", VAT, number(0.12)), cas]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    let details = status.get_error_details();
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "commands[1].expected_value"
    );
}

async fn revert(client: &mut Client, id: &str) -> Result<pb::GodResponse, tonic::Status> {
    client
        .revert_command(pb::RevertCommandRequest {
            command_id: id.to_owned(),
        })
        .await
        .map(|r| r.into_inner().response.unwrap())
}

#[tokio::test]
async fn revert_restores_the_old_value_unless_it_changed_since() {
    let mut app = paused_app().await;
    let original = audited(&app, 0).await.parameters[TAX];
    let applied = app
        .client
        .apply_command(command("to-undo", TAX, number(0.22)))
        .await
        .expect("applied")
        .into_inner()
        .response
        .unwrap();
    let undone = revert(&mut app.client, "to-undo").await.expect("reverted");
    assert!(undone.success);
    assert_eq!(undone.old_value, applied.new_value);
    assert_eq!(undone.new_value, Some(original));
    assert_eq!(undone.reason, "revert of to-undo");
    assert_ne!(undone.command_id, "to-undo", "a new command");
    let snapshot = audited(&app, 2).await;
    assert_eq!(snapshot.parameters[TAX], original, "restored");

    for (id, value) in [("first", 0.25), ("second", 0.26)] {
        app.client
            .apply_command(command(id, TAX, number(value)))
            .await
            .expect("applied");
    }
    let status = revert(&mut app.client, "first").await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status = revert(&mut app.client, "never-sent").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let snapshot = audited(&app, 6).await;
    assert_eq!(snapshot.parameters[TAX], number(0.26).unwrap(), "unchanged");
}
