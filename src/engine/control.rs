//! Run control: whether the engine advances ticks, at what pace, and a
//! pending `step`.
//!
//! Control actions come off the command queue in Phase 0, in order with the
//! commands, and are audited like them (key `engine.pause`, `engine.resume`,
//! `engine.step` or `engine.set_tps`). `SimulationEngine::run` reads
//! [`RunControl`] before every tick: ticking, or (paused) waiting for the
//! queue and running Phase 0 between ticks. Engine thread only.

use serde::{Deserialize, Serialize};

use crate::{
    bridge::Reply,
    pb::{self, control_engine_request::Action},
};

/// Audit keys of control actions start with this; they name no parameter.
pub const CONTROL_KEY_PREFIX: &str = "engine.";

/// The part of run control a checkpoint saves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct RunSettings {
    /// True while ticks hold.
    pub paused: bool,
    /// Target ticks per second (0 = unthrottled).
    pub target_tps: f64,
}

/// Run control as the engine thread keeps it.
#[derive(Debug, Default)]
pub struct RunControl {
    /// What a checkpoint saves.
    pub settings: RunSettings,
    /// A `step` still running: ticks left, and its caller.
    stepping: Option<Stepping>,
    /// True while Phase 0 runs between ticks (paused), so its commands are
    /// marked as taking effect from the next tick.
    pub between_ticks: bool,
}

#[derive(Debug)]
struct Stepping {
    left: u32,
    reply: Reply,
}

impl RunControl {
    /// True when the engine should not tick: paused with no step running.
    pub fn holding(&self) -> bool {
        self.settings.paused && self.stepping.is_none()
    }

    /// True while a `step` runs its ticks.
    pub fn stepping(&self) -> bool {
        self.stepping.is_some()
    }

    /// The wire's run state: paused when holding, and already in the
    /// snapshot of a step's last tick, after which it holds.
    pub fn run_state(&self) -> pb::RunState {
        let last_step = self.stepping.as_ref().is_none_or(|s| s.left <= 1);
        if self.settings.paused && last_step {
            pb::RunState::Paused
        } else {
            pb::RunState::Running
        }
    }

    /// What a control action's caller is told at `tick`.
    pub fn status(&self, tick: u64) -> pb::ControlEngineResponse {
        pb::ControlEngineResponse {
            run_state: self.run_state().into(),
            tick,
            target_tps: self.settings.target_tps,
        }
    }

    /// Takes `action` into effect. A `step` keeps `reply` until its last
    /// tick has been published; any other action hands it back to be
    /// answered with the audit entry.
    pub fn take(&mut self, action: Action, reply: Reply, tick: u64) -> Option<Reply> {
        match action {
            Action::Pause(_) => self.settings.paused = true,
            Action::Resume(_) => {
                self.settings.paused = false;
                if let Some(stepping) = self.stepping.take() {
                    stepping.reply.send_status(self.status(tick));
                }
            }
            Action::SetTps(set) => self.settings.target_tps = set.tps,
            Action::Step(step) => {
                if let Some(earlier) = self.stepping.take() {
                    earlier.reply.send_status(self.status(tick));
                }
                self.settings.paused = true;
                self.stepping = Some(Stepping {
                    left: step.ticks.max(1),
                    reply,
                });
                return None;
            }
        }
        Some(reply)
    }

    /// After a tick has been published: counts it against a running
    /// `step`. After the step's last tick, returns its caller's reply with
    /// the run state attached, to answer once everything before it is
    /// durable.
    pub fn tick_published(&mut self, tick: u64) -> Option<Reply> {
        let stepping = self.stepping.as_mut()?;
        stepping.left -= 1;
        if stepping.left > 0 {
            return None;
        }
        let done = self.stepping.take()?;
        Some(done.reply.with_status(self.status(tick)))
    }
}

/// The audit key and value of a control action.
pub fn audit_entry(
    action: &Action,
    settings: &RunSettings,
) -> (
    String,
    Option<pb::ParameterValue>,
    Option<pb::ParameterValue>,
) {
    use pb::parameter_value::Kind;
    let value = |kind| Some(pb::ParameterValue { kind: Some(kind) });
    let paused = value(Kind::Flag(settings.paused));
    let (name, old, new) = match action {
        Action::Pause(_) => ("pause", paused, value(Kind::Flag(true))),
        Action::Resume(_) => ("resume", paused, value(Kind::Flag(false))),
        Action::Step(step) => ("step", None, value(Kind::Integer(step.ticks.into()))),
        Action::SetTps(set) => (
            "set_tps",
            value(Kind::Number(settings.target_tps)),
            value(Kind::Number(set.tps)),
        ),
    };
    (format!("{CONTROL_KEY_PREFIX}{name}"), old, new)
}
