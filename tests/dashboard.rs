//! The browser dashboard end to end: the real binary serves it, headless
//! Chromium drives it (`web/tests/dashboard.mjs` and `transactions.mjs`,
//! playwright-core, through the `common::browser` harness), and the
//! server's log shows the command the page sent (the spec's integration
//! check). Needs Node, `npm ci` in `web/` and Debian's Chromium; without them
//! the test fails and says how to install them, it never skips.

mod common;

use std::{
    path::{Path, PathBuf},
    process::ExitStatus,
};

use common::{
    PATIENCE,
    binary::Binary,
    browser::{require_tools, run_browser_script},
    command, connect, number,
};
use tonic::Code;
use watchtower::pb::{self, GodCommand};

/// Runs `web/tests/dashboard.mjs` against `url`, which asks nothing.
fn run_browser_test(root: &Path, url: &str, shots: &Path, extra: &[&str]) -> ExitStatus {
    let shots = shots.to_str().expect("a UTF-8 path");
    let args = [&[url, shots][..], extra].concat();
    run_browser_script(root, "dashboard.mjs", &args, |ask| {
        panic!("dashboard.mjs asked for {ask:?}, which it never should")
    })
}

/// An operator moves a slider in the dashboard; the engine applies it and
/// logs `Registry updated` for that key; the audit log panel pages it from
/// the run's log on disk; an out-of-range value shows the server's
/// INVALID_ARGUMENT in the page.
#[test]
fn dashboard_drives_the_real_binary_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    require_tools(&root.join("web"));
    let data = tempfile::tempdir().expect("a temporary data directory");
    let data_dir = data.path().to_str().expect("a UTF-8 path");
    let mut server = Binary::start(&["--tps", "20", "--data-dir", data_dir]);
    let url = format!("http://{}", server.addr());
    let shots = root.join("target/dashboard-screenshots");

    let status = run_browser_test(&root, &url, &shots, &["--audit"]);
    assert!(
        status.success(),
        "web/tests/dashboard.mjs failed ({status}); server log:\n{}",
        server.log_text()
    );

    let log = server.log_text();
    let updated = log
        .lines()
        .find(|l| l.contains("Registry updated") && l.contains("key=fiscal.income_tax_rate"));
    assert!(
        updated.is_some(),
        "no `Registry updated key=fiscal.income_tax_rate` in the server log:\n{log}"
    );
    println!("server logged: {}", updated.unwrap_or_default());
}

/// On a server that requires tokens the page asks for one, refuses a wrong
/// one, shows an observer read-only controls, and lets an operator who signs
/// in steer; the server logs the operator as the principal.
#[test]
fn dashboard_asks_for_a_token_and_shows_the_role() {
    const OPERATOR: &str = "dash-operator-token-4c1f";
    const OBSERVER: &str = "dash-observer-token-9e02";
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    require_tools(&root.join("web"));
    let mut server = Binary::launch(
        &[
            "--listen",
            "127.0.0.1:0",
            "--legacy-ws-listen",
            "off",
            "--tps",
            "20",
        ],
        &[
            ("RUST_LOG", "info"),
            ("WATCHTOWER_OPERATOR_TOKEN", OPERATOR),
            ("WATCHTOWER_OBSERVER_TOKEN", OBSERVER),
        ],
    );
    let url = format!("http://{}", server.addr());
    let shots = root.join("target/dashboard-screenshots/auth");
    let tokens = format!("{OPERATOR},{OBSERVER}");

    let status = run_browser_test(&root, &url, &shots, &["--tokens", &tokens]);
    assert!(
        status.success(),
        "web/tests/dashboard.mjs --tokens failed ({status}); server log:\n{}",
        server.log_text()
    );
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("Registry updated") && l.contains("principal=operator")),
        "the operator's command is logged with its principal:\n{log}"
    );
}

/// What `web/tests/transactions.mjs` asks the test to do behind the page's
/// back, through the test's own gRPC client: change a value the operator is
/// working (`set-behind KEY SEEN`, answered with the new value), schedule a
/// far-off command (`schedule`, answered with its id and tick once it is
/// listed), and report how that command's own call ended (`outcome ID`).
struct BehindThePage {
    runtime: tokio::runtime::Runtime,
    client: common::Client,
    /// The scheduled command's own call, which ends when it is cancelled.
    scheduled: Option<ScheduledCall>,
}

/// A spawned `ApplyCommand` call.
type ScheduledCall =
    tokio::task::JoinHandle<Result<tonic::Response<pb::ApplyCommandResponse>, tonic::Status>>;

impl BehindThePage {
    const SCHEDULED_ID: &str = "dash-at-far";

    fn new(addr: std::net::SocketAddr) -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let client = runtime.block_on(connect(addr));
        Self {
            runtime,
            client,
            scheduled: None,
        }
    }

    fn answer(&mut self, ask: &str) -> String {
        let words: Vec<&str> = ask.split_whitespace().collect();
        match words.as_slice() {
            ["set-behind", key, seen] => self.set_behind(key, seen),
            ["schedule"] => self.schedule(),
            ["outcome", id] if *id == Self::SCHEDULED_ID => self.outcome(),
            _ => panic!("unknown ask {ask:?}"),
        }
    }

    /// Sets `key` to a value other than the `seen` one, as another operator.
    fn set_behind(&mut self, key: &str, seen: &str) -> String {
        let theirs = if seen == "0.3" { 0.35 } else { 0.3 };
        let request = command("behind-the-page", key, number(theirs));
        self.runtime
            .block_on(self.client.apply_command(request))
            .expect("the other operator's command applies");
        theirs.to_string()
    }

    /// Schedules a command 100,000 ticks ahead and waits until it is listed.
    fn schedule(&mut self) -> String {
        let mut client = self.client.clone();
        let (handle, at) = self.runtime.block_on(async move {
            let now = common::next_snapshot(&mut common::subscribe(&mut client, 10).await)
                .await
                .tick;
            let at = now + 100_000;
            let request = pb::ApplyCommandRequest {
                command: Some(GodCommand {
                    id: Self::SCHEDULED_ID.to_owned(),
                    key: "monetary.policy_rate".to_owned(),
                    value: number(0.05),
                    reason: "far off".to_owned(),
                    apply_at_tick: at,
                    ..Default::default()
                }),
                validate_only: false,
            };
            let handle = common::spawn_apply(&client, request);
            // The listing is answered in Phase 0, after the command queued
            // before it; poll until the command has reached it.
            tokio::time::timeout(PATIENCE, async {
                while client
                    .list_scheduled_commands(pb::ListScheduledCommandsRequest {})
                    .await
                    .expect("list the schedule")
                    .into_inner()
                    .commands
                    .is_empty()
                {}
            })
            .await
            .expect("the command is scheduled");
            (handle, at)
        });
        self.scheduled = Some(handle);
        format!("{} {at}", Self::SCHEDULED_ID)
    }

    /// How the scheduled command's own call ended, once it has.
    fn outcome(&mut self) -> String {
        let handle = self.scheduled.take().expect("a command was scheduled");
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(PATIENCE, handle).await })
            .expect("the scheduled call ends")
            .expect("the task finishes");
        match result {
            Ok(response) => panic!("the cancelled command applied: {response:?}"),
            Err(status) if status.code() == Code::Cancelled => "CANCELLED".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        }
    }
}

/// The dashboard's transactions in Chromium against the real binary: two
/// staged changes apply together in one tick and a staged batch with a bad
/// change is refused whole, naming it; a slider whose value another
/// operator changed (through gRPC, behind the page's back) shows a conflict
/// instead of overwriting; a scheduled command is listed and Cancel drops it
/// (its sender's call ends CANCELLED).
#[test]
fn dashboard_stages_batches_shows_conflicts_and_cancels_scheduled_commands() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    require_tools(&root.join("web"));
    let mut server = Binary::start(&["--tps", "20"]);
    let addr = server.addr();
    let url = format!("http://{addr}");
    let shots = root.join("target/dashboard-screenshots/transactions");
    let shots = shots.to_str().expect("a UTF-8 path");
    let mut behind = BehindThePage::new(addr);

    let status = run_browser_script(&root, "transactions.mjs", &[&url, shots], |ask| {
        behind.answer(ask)
    });
    assert!(
        status.success(),
        "web/tests/transactions.mjs failed ({status}); server log:\n{}",
        server.log_text()
    );
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("scheduled command cancelled")),
        "the server logs the cancellation:\n{log}"
    );
}
