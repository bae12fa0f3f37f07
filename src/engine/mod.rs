//! The simulation engine: owns all simulation state and runs on one named,
//! blocking `std::thread` (spec §3.1).
//!
//! - [`registry`]: the `GlobalRegistry` of typed, range-checked parameters;
//! - [`schedule`]: commands held for a later tick (`apply_at_tick`);
//! - [`scheduler`]: the `TickScheduler` and its ordered [`Phase`]s;
//! - [`economy`]: the agents and the `SettlementSystem` behind phases 1–7;
//! - [`audit`]: the `AuditLog` of god-mode commands and the idempotency index;
//! - [`control`]: pause, resume, step and pace, and what a checkpoint saves
//!   of them;
//! - [`journal`]: what Phases 0 and 8 hand to the store without waiting
//!   (outcomes, digests, checkpoints);
//! - [`digest`]: the 64-bit state digest of every settled tick;
//! - this file: [`SimulationEngine`], which wires them, and the Phase 0 and
//!   Phase 8 hooks that attach the bridge.
//!
//! The engine never imports tokio, tonic or hyper and never awaits. It sees
//! the outside world only through the bridge halves it is handed.

pub mod audit;
pub mod control;
pub mod digest;
pub mod economy;
pub mod journal;
pub mod registry;
pub mod schedule;
pub mod scheduler;

use std::{
    collections::VecDeque,
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tracing::{error, info, warn};

pub use audit::{AuditLog, DEFAULT_IDEMPOTENCY_WINDOW};
pub use control::{CONTROL_KEY_PREFIX, RunControl, RunSettings};
pub use digest::state_digest;
pub use economy::{Economy, EconomyError};
pub use journal::{EngineState, Journal, Outcome};
pub use registry::{GlobalRegistry, ParamId, ParamSpec, ParamsError, Rejection, Value, ValueType};
pub use schedule::{Schedule, Scheduled};
pub use scheduler::{Phase, TickScheduler};

use crate::{
    bridge::{Abandoned, CommandReceiver, QueuedCommand, Reply, Request, TelemetryPublisher},
    pb,
};

/// How many audit entries each snapshot carries.
pub const SNAPSHOT_AUDIT_TAIL: usize = 16;

/// Why the engine stopped on its own.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The economy could not be built or a tick failed (for example, a
    /// ledger identity was violated). The engine halts rather than go on.
    #[error(transparent)]
    Economy(#[from] EconomyError),
    /// `run` was called before a bridge was attached.
    #[error("the engine has no command queue attached")]
    Detached,
    /// The engine thread panicked.
    #[error("the engine thread panicked")]
    Panicked,
    /// A checkpoint's state does not fit this engine.
    #[error("the checkpoint does not fit: {0}")]
    Restore(String),
}

/// Everything the phases work on. Only the engine thread ever touches it.
#[derive(Debug)]
pub struct World {
    /// The tick now running (the first tick is 1; 0 is the initial state).
    pub tick: u64,
    /// Live parameters.
    pub registry: GlobalRegistry,
    /// Agents and balance sheets.
    pub economy: Economy,
    /// Every command's outcome.
    pub audit: AuditLog,
    /// Throughput and timing of the engine itself.
    pub stats: EngineStats,
    /// Seed of the economy's random stream.
    pub seed: u64,
    /// The run this world belongs to (empty with no data directory).
    pub run_id: String,
    /// Digest of the state the last tick settled into.
    pub digest: u64,
    /// Paused or running, the target pace and a running `step`.
    pub run: RunControl,
    /// Commands held for later ticks.
    pub schedule: Schedule,
    /// Durability, if the run is recorded.
    pub durability: Option<Durability>,
}

/// The recorded run's side of the world: where outcomes go, and what is
/// left to re-apply after a resume.
#[derive(Debug)]
pub struct Durability {
    /// Takes outcomes, digests and checkpoints without waiting.
    pub journal: Box<dyn Journal>,
    /// A checkpoint every this many ticks (0: only at shutdown).
    pub checkpoint_every: u64,
    /// Audited outcomes from before a restart, oldest first, re-applied at
    /// their ticks' Phase 0 before any live command.
    pub recorded: VecDeque<pb::GodResponse>,
    /// This tick's outcomes, handed over at the end of Phase 0.
    outcomes: Vec<Outcome>,
}

impl Durability {
    /// Records through `journal`, checkpointing every `checkpoint_every`
    /// ticks, after re-applying `recorded` at their ticks.
    pub fn new(
        journal: Box<dyn Journal>,
        checkpoint_every: u64,
        recorded: Vec<pb::GodResponse>,
    ) -> Self {
        Self {
            journal,
            checkpoint_every,
            recorded: recorded.into(),
            outcomes: Vec::new(),
        }
    }
}

impl World {
    /// A copy of everything needed to go on from this tick.
    pub fn state(&self) -> EngineState {
        EngineState {
            tick: self.tick,
            seed: self.seed,
            parameters: self.registry.values().to_vec(),
            economy: self.economy.clone(),
            audit: self.audit.clone(),
            run: self.run.settings,
            scheduled: self.schedule.saved(),
        }
    }

    /// Digests the settled state into `self.digest`.
    fn settle_digest(&mut self) {
        self.digest = state_digest(self.tick, &self.registry, &self.economy);
    }
}

/// Engine throughput, as reported in snapshots.
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    /// Ticks per second measured over the last full second.
    pub measured_tps: f64,
    /// Wall time of the last completed tick.
    pub last_tick: Duration,
    /// Commands waiting in the queue when Phase 8 ran.
    pub queue_depth: u64,
    window_start: Option<Instant>,
    window_ticks: u32,
}

impl EngineStats {
    /// Ticks per second over a window of about one second, from the start
    /// times of the ticks in it (so a fast first tick reads as what it is,
    /// not as a huge rate).
    fn tick_finished(&mut self, started: Instant) {
        self.last_tick = started.elapsed();
        let window_start = *self.window_start.get_or_insert(started);
        let span = started - window_start;
        if self.window_ticks > 0 && !span.is_zero() {
            let rate = f64::from(self.window_ticks) / span.as_secs_f64();
            if span >= Duration::from_secs(1) {
                self.measured_tps = rate;
                self.window_start = Some(started);
                self.window_ticks = 0;
            } else if self.measured_tps == 0.0 {
                // Before the first full window, report what we have so far.
                self.measured_tps = rate;
            }
        }
        self.window_ticks += 1;
    }
}

/// How `run` paces ticks.
#[derive(Debug, Clone)]
pub enum Pacing {
    /// A fixed rate, in ticks per second.
    Fixed(f64),
    /// As fast as the machine allows.
    Unthrottled,
    /// One tick per [`StepGate::step`]; for tests and single-stepping.
    Manual(StepGate),
}

impl Pacing {
    /// `--tps` semantics: 0 means unthrottled.
    pub fn from_tps(tps: f64) -> Self {
        if tps > 0.0 {
            Pacing::Fixed(tps)
        } else {
            Pacing::Unthrottled
        }
    }

    /// The initial target pace: 0 for unthrottled and manual pacing.
    pub fn target_tps(&self) -> f64 {
        match self {
            Pacing::Fixed(tps) => *tps,
            Pacing::Unthrottled | Pacing::Manual(_) => 0.0,
        }
    }
}

/// Lets another thread release ticks one at a time.
#[derive(Debug, Clone, Default)]
pub struct StepGate {
    /// Permits and the closed flag; the engine sleeps on the condvar.
    state: Arc<(Mutex<(u64, bool)>, Condvar)>,
}

impl StepGate {
    /// A gate with no permits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Releases `n` more ticks.
    pub fn step(&self, n: u64) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(PoisonError::into_inner).0 += n;
        wake.notify_all();
    }

    /// Stops the engine waiting: `run` returns at its next wait.
    pub fn close(&self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        wake.notify_all();
    }

    /// Waits for a permit or the close; true if a tick may run.
    fn acquire(&self) -> bool {
        let (lock, wake) = &*self.state;
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut guard = wake
            .wait_while(guard, |(permits, closed)| *permits == 0 && !*closed)
            .unwrap_or_else(PoisonError::into_inner);
        if guard.1 {
            return false;
        }
        guard.0 -= 1;
        true
    }
}

/// Summary returned when `run` ends.
#[derive(Debug, Clone)]
pub struct EngineReport {
    /// The last tick completed.
    pub ticks: u64,
    /// Commands applied.
    pub applied: u64,
    /// Commands rejected.
    pub rejected: u64,
}

/// The engine: a world plus the schedule that advances it.
pub struct SimulationEngine {
    world: World,
    scheduler: TickScheduler<World, EngineError>,
    /// The command queue, shared by the Phase 0 hook, the Phase 8 hook (for
    /// the queue depth) and `run` (which stops when the queue closes).
    commands: Option<Arc<CommandReceiver>>,
    /// The telemetry slot, shared by the Phase 8 hook and the Phase 0 that
    /// runs between ticks while paused.
    telemetry: Option<Arc<TelemetryPublisher>>,
    /// True when built from a checkpoint, whose saved pace wins over the
    /// pacing `run` is given.
    restored: bool,
}

impl std::fmt::Debug for SimulationEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulationEngine")
            .field("tick", &self.world.tick)
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

impl SimulationEngine {
    /// Builds the initial economy and registers phases 1–7.
    pub fn new(registry: GlobalRegistry, seed: u64) -> Result<Self, EngineError> {
        let economy = Economy::new(&registry, seed)?;
        Ok(Self::with_state(
            registry,
            economy,
            seed,
            0,
            AuditLog::default(),
        ))
        .map(|mut engine| {
            engine.restored = false;
            engine
        })
    }

    /// Goes on from a checkpoint's state; `registry` has the run's schema.
    pub fn restore(mut registry: GlobalRegistry, state: EngineState) -> Result<Self, EngineError> {
        registry
            .restore_values(state.parameters)
            .map_err(EngineError::Restore)?;
        let mut engine =
            Self::with_state(registry, state.economy, state.seed, state.tick, state.audit);
        engine.world.run.settings = state.run;
        engine.world.schedule.restore(state.scheduled);
        Ok(engine)
    }

    fn with_state(
        registry: GlobalRegistry,
        economy: Economy,
        seed: u64,
        tick: u64,
        audit: AuditLog,
    ) -> Self {
        let mut scheduler = TickScheduler::new();
        for phase in Phase::SIMULATION {
            scheduler.register_hook(phase, move |w: &mut World| {
                w.economy
                    .run_phase(phase, &w.registry, w.tick)
                    .map_err(EngineError::from)
            });
        }
        let mut world = World {
            tick,
            registry,
            economy,
            audit,
            stats: EngineStats::default(),
            seed,
            run_id: String::new(),
            digest: 0,
            run: RunControl::default(),
            schedule: Schedule::default(),
            durability: None,
        };
        world.settle_digest();
        Self {
            world,
            scheduler,
            commands: None,
            telemetry: None,
            restored: true,
        }
    }

    /// Records the run through `durability` under `run_id`.
    pub fn attach_durability(&mut self, run_id: String, durability: Durability) {
        for entry in &durability.recorded {
            self.world.audit.remember(entry.clone());
        }
        self.world.run_id = run_id;
        self.world.durability = Some(durability);
    }

    /// Runs one tick of a recorded run without a bridge: applies `entries`
    /// (the audited outcomes of that tick, in log order) in Phase 0, then
    /// phases 1–7, and returns the settled state's digest.
    pub fn replay_tick(&mut self, entries: &[pb::GodResponse]) -> Result<u64, EngineError> {
        self.world.tick += 1;
        for entry in entries {
            apply_recorded(&mut self.world, entry.clone());
        }
        self.scheduler.run_tick(&mut self.world)?;
        self.world.settle_digest();
        Ok(self.world.digest)
    }

    /// Attaches the bridge (spec §4.3): Phase 0 drains `commands`, Phase 8
    /// publishes to `telemetry`.
    pub fn attach_bridge(&mut self, commands: CommandReceiver, telemetry: TelemetryPublisher) {
        let commands = Arc::new(commands);
        let telemetry = Arc::new(telemetry);
        self.telemetry = Some(Arc::clone(&telemetry));
        let queue = Arc::clone(&commands);
        let mut drained = Vec::new();
        self.scheduler
            .register_hook(Phase::Intercept, move |w: &mut World| {
                queue.drain_into(&mut drained);
                reapply_recorded(w);
                apply_due(w);
                for queued in drained.drain(..) {
                    intercept(w, queued);
                }
                hand_over_outcomes(w);
                Ok(())
            });
        // Tick 0, the initial settled state, so readers never find the slot
        // empty once the engine exists.
        telemetry.publish(capture_snapshot(&self.world));
        let queue = Arc::clone(&commands);
        self.scheduler
            .register_hook(Phase::Broadcast, move |w: &mut World| {
                w.stats.queue_depth = queue.len() as u64;
                record_settlement(w);
                let snapshot = Arc::new(capture_snapshot(w));
                if let Some(durability) = w.durability.as_mut() {
                    durability.journal.published(&snapshot);
                }
                telemetry.publish(snapshot);
                Ok(())
            });
        self.commands = Some(commands);
    }

    /// The world, for inspection between ticks.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The world, mutably; for tests and tools that drive the engine by hand.
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// The schedule, to register more hooks.
    pub fn scheduler_mut(&mut self) -> &mut TickScheduler<World, EngineError> {
        &mut self.scheduler
    }

    /// Runs exactly one tick: phases 0 to 8.
    pub fn step(&mut self) -> Result<(), EngineError> {
        let started = Instant::now();
        self.world.tick += 1;
        self.scheduler.run_tick(&mut self.world)?;
        self.world.stats.tick_finished(started);
        if let Some(stepped) = self.world.run.tick_published(self.world.tick) {
            // The step's caller may read the audit next: answer once the
            // tick's entries are on disk.
            deliver(
                &mut self.world,
                pb::GodResponse::default(),
                Some(stepped),
                false,
            );
            hand_over_outcomes(&mut self.world);
        }
        Ok(())
    }

    /// Ticks at `pacing` until the command queue closes or a tick fails.
    /// While paused it ticks not at all, but runs Phase 0 whenever
    /// something is queued.
    pub fn run(mut self, pacing: Pacing) -> Result<EngineReport, EngineError> {
        let commands = self.commands.clone().ok_or(EngineError::Detached)?;
        if !self.restored {
            self.world.run.settings.target_tps = pacing.target_tps();
        }
        let mut next = Instant::now();
        info!(
            tps = self.world.run.settings.target_tps,
            paused = self.world.run.settings.paused,
            seed = self.world.seed,
            "engine started"
        );
        loop {
            let catching_up = self
                .world
                .durability
                .as_ref()
                .is_some_and(|d| !d.recorded.is_empty());
            if !catching_up && self.world.run.holding() {
                if !commands.wait_for_work() {
                    break;
                }
                self.intercept_between_ticks(&commands);
                next = Instant::now();
                continue;
            }
            // Re-running recorded ticks after a resume, and a `step`, go at
            // full speed.
            let unpaced = catching_up || self.world.run.stepping();
            if !unpaced && !self.wait_turn(&pacing, &commands, &mut next) {
                break;
            }
            if commands.is_closed() {
                break;
            }
            if let Err(err) = self.step() {
                error!(tick = self.world.tick, error = %err, "engine halted");
                return Err(err);
            }
        }
        if let Some(mut durability) = self.world.durability.take() {
            durability.journal.checkpoint(Box::new(self.world.state()));
        }
        let report = EngineReport {
            ticks: self.world.tick,
            applied: self.world.audit.applied(),
            rejected: self.world.audit.rejected(),
        };
        info!(
            ticks = report.ticks,
            applied = report.applied,
            rejected = report.rejected,
            "engine stopped"
        );
        Ok(report)
    }
}

impl SimulationEngine {
    /// Waits until the next tick is due: a gate permit, or the target
    /// pace's next slot. False once the queue closes.
    fn wait_turn(&self, pacing: &Pacing, commands: &CommandReceiver, next: &mut Instant) -> bool {
        if let Pacing::Manual(gate) = pacing {
            return gate.acquire();
        }
        let tps = self.world.run.settings.target_tps;
        if tps > 0.0 {
            let now = Instant::now();
            if *next > now && commands.wait_closed(*next - now) {
                return false;
            }
            // Pace from the schedule, not from when we woke, but never try
            // to catch up more than one tick of lag.
            *next = (*next + Duration::from_secs_f64(1.0 / tps)).max(Instant::now());
        }
        true
    }

    /// Phase 0 while paused: applies what is queued without advancing the
    /// tick, then publishes a snapshot with the same tick and the new values.
    fn intercept_between_ticks(&mut self, commands: &CommandReceiver) {
        let mut drained = Vec::new();
        commands.drain_into(&mut drained);
        self.world.run.between_ticks = true;
        for queued in drained {
            intercept(&mut self.world, queued);
        }
        self.world.run.between_ticks = false;
        hand_over_outcomes(&mut self.world);
        self.world.stats.queue_depth = commands.len() as u64;
        if let Some(telemetry) = &self.telemetry {
            telemetry.publish(capture_snapshot(&self.world));
        }
    }
}

/// Phase 0 after a resume: re-applies this tick's outcomes recorded before
/// the restart, ahead of any live command, exactly as they were decided.
fn reapply_recorded(world: &mut World) {
    let tick = world.tick;
    while let Some(durability) = world.durability.as_mut()
        && durability
            .recorded
            .front()
            .is_some_and(|e| e.applied_tick <= tick)
        && let Some(entry) = durability.recorded.pop_front()
    {
        apply_recorded(world, entry);
    }
}

/// Applies an audited outcome again: the new value of an applied command,
/// nothing for a rejected one; either way it is counted and indexed.
fn apply_recorded(world: &mut World, entry: pb::GodResponse) {
    if entry.success && !entry.key.starts_with(CONTROL_KEY_PREFIX) {
        let value = entry.new_value.as_ref().and_then(registry::value_from_pb);
        if let Err(rejection) = world.registry.set(&entry.key, value) {
            warn!(command_id = %entry.command_id, error = %rejection, "recorded command no longer applies");
        }
    }
    world.audit.record(entry);
}

/// End of Phase 0: the tick's outcomes go to the journal in one batch.
fn hand_over_outcomes(world: &mut World) {
    if let Some(durability) = world.durability.as_mut()
        && !durability.outcomes.is_empty()
    {
        let outcomes = std::mem::take(&mut durability.outcomes);
        durability.journal.record(world.tick, outcomes);
    }
}

/// Phase 8 before the snapshot: digest the settled state, hand the digest
/// (and, every `checkpoint_every` ticks unless the last one is still being
/// written, a copy of the state) to the journal.
fn record_settlement(world: &mut World) {
    world.settle_digest();
    let Some(mut durability) = world.durability.take() else {
        return;
    };
    durability.journal.settled(world.tick, world.digest);
    let every = durability.checkpoint_every;
    if every > 0
        && world.tick.is_multiple_of(every)
        && durability.journal.ready_for_checkpoint(world.tick)
    {
        durability.journal.checkpoint(Box::new(world.state()));
    }
    world.durability = Some(durability);
}

/// Sends `response` to its caller: at once with no audit log on disk,
/// otherwise through the journal once it is durable.
fn deliver(world: &mut World, response: pb::GodResponse, reply: Option<Reply>, append: bool) {
    match world.durability.as_mut() {
        Some(durability) => durability.outcomes.push(Outcome {
            response,
            reply,
            append,
        }),
        None => {
            if let Some(reply) = reply {
                reply.send(response);
            }
        }
    }
}

/// Phase 0 for one command: apply or reject it through the registry, audit
/// it, then answer the caller. A command whose id is already recorded gets
/// its recorded outcome and changes nothing; a command whose caller gave up
/// first (its deadline passed, or it cancelled) is not applied, only audited.
fn intercept(world: &mut World, queued: QueuedCommand) {
    let (id, key, reason) = match &queued.request {
        Request::Command(command) => (&command.id, &command.key, &command.reason),
        Request::Control { id, .. } => (id, &String::new(), &String::new()),
        Request::Batch { .. } => return intercept_batch(world, queued),
        Request::Cancel { .. } => return cancel_scheduled(world, queued),
        Request::ListScheduled => {
            queued.into_reply().send_listing(world.schedule.list());
            return;
        }
        Request::Revert { .. } => return revert(world, queued),
    };
    if let Some(recorded) = world.audit.recorded(id) {
        info!(command_id = %id, tick = recorded.applied_tick, "command id already recorded; returning its outcome");
        let recorded = recorded.clone();
        deliver(world, recorded, Some(queued.into_reply()), false);
        return;
    }
    let mut response = pb::GodResponse {
        command_id: id.clone(),
        applied_tick: world.tick,
        key: key.clone(),
        reason: reason.clone(),
        principal: queued.origin.principal.to_string(),
        applied_while_paused: world.run.between_ticks,
        ..Default::default()
    };
    let abandoned = queued.abandoned(Instant::now());
    if abandoned.is_none()
        && let Request::Command(command) = &queued.request
        && command.apply_at_tick != 0
    {
        match timing(world, command.apply_at_tick) {
            Timing::Now => {}
            Timing::Later => return schedule_command(world, queued, response),
            Timing::Passed => {
                let allowed = format!("0 (the next tick) or a tick after {}", world.tick);
                let error = format!("tick {} has already passed", command.apply_at_tick);
                refuse(
                    &world.registry,
                    &mut response,
                    pb::RejectionReason::TickPassed,
                    error,
                    allowed,
                );
                response.field = "command.apply_at_tick".to_owned();
                log_rejection(world.tick, &response);
                world.audit.record(response.clone());
                return deliver(world, response, Some(queued.into_reply()), true);
            }
        }
    }
    let QueuedCommand { request, .. } = &queued;
    let reply = match (abandoned, request) {
        (Some(abandoned), _) => {
            record_abandoned(world, &mut response, abandoned);
            Some(queued.into_reply())
        }
        (None, Request::Command(command)) => {
            apply(world, command, &mut response);
            Some(queued.into_reply())
        }
        (None, Request::Control { action, .. }) => {
            let action = *action;
            control(world, action, queued.into_reply(), &mut response)
        }
        (
            None,
            Request::Batch { .. }
            | Request::Cancel { .. }
            | Request::ListScheduled
            | Request::Revert { .. },
        ) => {
            unreachable!("handled above")
        }
    };
    world.audit.record(response.clone());
    deliver(world, response, reply, true);
}

/// When a command's `apply_at_tick` falls, seen from this Phase 0.
enum Timing {
    Now,
    Later,
    Passed,
}

fn timing(world: &World, apply_at_tick: u64) -> Timing {
    // Between ticks (paused), tick `world.tick` has settled; the next
    // Phase 0 is the next tick's.
    let next = world.tick + u64::from(world.run.between_ticks);
    match apply_at_tick.cmp(&next) {
        std::cmp::Ordering::Less => Timing::Passed,
        std::cmp::Ordering::Equal if !world.run.between_ticks => Timing::Now,
        _ => Timing::Later,
    }
}

/// Holds a command for its tick; the caller is answered then. A full
/// schedule refuses it.
fn schedule_command(world: &mut World, queued: QueuedCommand, mut response: pb::GodResponse) {
    let principal = queued.origin.principal.to_string();
    let (request, reply) = queued.into_parts();
    let Request::Command(command) = request else {
        return;
    };
    let scheduled = Scheduled {
        command,
        principal,
        reply: Some(reply),
    };
    match world.schedule.insert(scheduled) {
        Ok(()) => info!(command_id = %response.command_id, tick = world.tick, "command scheduled"),
        Err(back) => {
            let error = format!(
                "{} commands are already scheduled",
                world.schedule.capacity()
            );
            let allowed = format!("at most {} scheduled commands", world.schedule.capacity());
            refuse(
                &world.registry,
                &mut response,
                pb::RejectionReason::ScheduleFull,
                error,
                allowed,
            );
            response.field = "command.apply_at_tick".to_owned();
            log_rejection(world.tick, &response);
            world.audit.record(response.clone());
            deliver(world, response, back.reply, true);
        }
    }
}

/// Phase 0: applies the scheduled commands due at this tick, in the order
/// they were scheduled, before anything from the queue.
fn apply_due(world: &mut World) {
    for due in world.schedule.take_due(world.tick) {
        let command = &due.command;
        if let Some(recorded) = world.audit.recorded(&command.id) {
            let recorded = recorded.clone();
            deliver(world, recorded, due.reply, false);
            continue;
        }
        let mut response = pb::GodResponse {
            command_id: command.id.clone(),
            applied_tick: world.tick,
            key: command.key.clone(),
            reason: command.reason.clone(),
            principal: due.principal.clone(),
            ..Default::default()
        };
        apply(world, command, &mut response);
        world.audit.record(response.clone());
        deliver(world, response, due.reply, true);
    }
}

/// Drops a scheduled command: its own caller gets CANCELLED, the canceller
/// the same audited entry. An unknown id changes and audits nothing.
fn cancel_scheduled(world: &mut World, queued: QueuedCommand) {
    let canceller = queued.origin.principal.to_string();
    let (request, reply) = queued.into_parts();
    let Request::Cancel { command_id } = request else {
        return;
    };
    let Some(cancelled) = world.schedule.cancel(&command_id) else {
        let mut response = pb::GodResponse {
            command_id: command_id.clone(),
            field: "command_id".to_owned(),
            ..Default::default()
        };
        let error = format!("no scheduled command has id {command_id:?}");
        let allowed = "the id of a command listed by ListScheduledCommands".to_owned();
        refuse(
            &world.registry,
            &mut response,
            pb::RejectionReason::NotScheduled,
            error,
            allowed,
        );
        reply.send(response);
        return;
    };
    let command = &cancelled.command;
    let mut response = pb::GodResponse {
        command_id: command.id.clone(),
        applied_tick: world.tick,
        key: command.key.clone(),
        reason: command.reason.clone(),
        principal: cancelled.principal.clone(),
        ..Default::default()
    };
    let error = format!(
        "cancelled by {canceller} before its tick {}; not applied",
        command.apply_at_tick
    );
    refuse(
        &world.registry,
        &mut response,
        pb::RejectionReason::Cancelled,
        error,
        String::new(),
    );
    info!(command_id = %response.command_id, tick = world.tick, principal = %canceller, "scheduled command cancelled");
    world.audit.record(response.clone());
    deliver(world, response.clone(), cancelled.reply, true);
    deliver(world, response, Some(reply), false);
}

/// Phase 0 for a revert: sets the parameter back to the old value the
/// named command replaced, as a new audited command, if it still holds that
/// command's new value. A repeated revert id gets its recorded outcome.
fn revert(world: &mut World, mut queued: QueuedCommand) {
    let Request::Revert { id, command_id } = &queued.request else {
        return;
    };
    if let Some(recorded) = world.audit.recorded(id) {
        let recorded = recorded.clone();
        return deliver(world, recorded, Some(queued.into_reply()), false);
    }
    let target = world.audit.recorded(command_id).cloned();
    let command = pb::GodCommand {
        id: id.clone(),
        key: target.as_ref().map(|t| t.key.clone()).unwrap_or_default(),
        value: target.as_ref().and_then(|t| t.old_value),
        reason: format!("revert of {command_id}"),
        ..Default::default()
    };
    let refusal = match &target {
        None => Some((
            pb::RejectionReason::UnknownCommand,
            format!("no recorded command has id {command_id:?}"),
        )),
        Some(t) if !t.success || t.key.starts_with(CONTROL_KEY_PREFIX) => Some((
            pb::RejectionReason::NotRevertible,
            format!("command {command_id:?} changed no parameter"),
        )),
        Some(t) if world.registry.value_by_key(&t.key).map(Into::into) != t.new_value => Some((
            pb::RejectionReason::NotRevertible,
            format!("{} has changed since command {command_id:?}", t.key),
        )),
        Some(_) => None,
    };
    queued.request = Request::Command(command);
    match refusal {
        None => intercept(world, queued),
        Some((reason, error)) => {
            let Request::Command(command) = &queued.request else {
                return;
            };
            let mut response = pb::GodResponse {
                command_id: command.id.clone(),
                applied_tick: world.tick,
                key: command.key.clone(),
                reason: command.reason.clone(),
                principal: queued.origin.principal.to_string(),
                field: "command_id".to_owned(),
                ..Default::default()
            };
            let allowed =
                "the id of an applied command whose parameter has not changed since".to_owned();
            refuse(&world.registry, &mut response, reason, error, allowed);
            log_rejection(world.tick, &response);
            world.audit.record(response.clone());
            deliver(world, response, Some(queued.into_reply()), true);
        }
    }
}

/// Fills in a refusal that is not the registry's: the value stays as it is.
fn refuse(
    registry: &GlobalRegistry,
    response: &mut pb::GodResponse,
    reason: pb::RejectionReason,
    error: String,
    allowed: String,
) {
    let current = registry.value_by_key(&response.key).map(Into::into);
    response.success = false;
    response.error = error;
    response.allowed = allowed;
    response.rejection = reason.into();
    response.old_value = current;
    response.new_value = current;
}

/// Takes a control action into effect and fills in its audit entry. The
/// reply comes back with the run state attached, or none for a `step`,
/// whose caller is answered after its last tick.
fn control(
    world: &mut World,
    action: pb::control_engine_request::Action,
    reply: Reply,
    response: &mut pb::GodResponse,
) -> Option<Reply> {
    let (key, old, new) = control::audit_entry(&action, &world.run.settings);
    info!(%key, tick = world.tick, principal = %response.principal, "run control");
    response.key = key;
    response.old_value = old;
    response.new_value = new;
    response.success = true;
    let reply = world.run.take(action, reply, world.tick)?;
    Some(reply.with_status(world.run.status(world.tick)))
}

/// Sets the parameter (if it holds the expected value, when one is given),
/// or records why the registry refused it.
fn apply(world: &mut World, command: &pb::GodCommand, response: &mut pb::GodResponse) {
    if set_on(&mut world.registry, command, response) {
        log_update(world.tick, response);
    } else {
        log_rejection(world.tick, response);
    }
}

/// Sets `command` on `registry` and fills in `response`; true if applied.
fn set_on(
    registry: &mut GlobalRegistry,
    command: &pb::GodCommand,
    response: &mut pb::GodResponse,
) -> bool {
    let value = command.value.as_ref().and_then(registry::value_from_pb);
    let expected = command
        .expected_value
        .as_ref()
        .and_then(registry::value_from_pb);
    match registry.set_if(&command.key, value, expected) {
        Ok((old, new)) => {
            response.success = true;
            response.old_value = Some(old.into());
            response.new_value = Some(new.into());
            true
        }
        Err(rejection) => {
            let current = registry.value_by_key(&command.key).map(Into::into);
            response.error = rejection.to_string();
            response.field = rejection.field().to_owned();
            response.allowed = rejection.allowed(registry);
            response.rejection = rejection.reason().into();
            response.old_value = current;
            response.new_value = current;
            false
        }
    }
}

fn log_update(tick: u64, response: &pb::GodResponse) {
    let value = |v: &Option<pb::ParameterValue>| {
        v.as_ref()
            .and_then(registry::value_from_pb)
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    info!(
        key = %response.key,
        old = %value(&response.old_value),
        new = %value(&response.new_value),
        tick,
        command_id = %response.command_id,
        principal = %response.principal,
        "Registry updated"
    );
}

fn log_rejection(tick: u64, response: &pb::GodResponse) {
    warn!(
        key = %response.key,
        tick,
        command_id = %response.command_id,
        principal = %response.principal,
        error = %response.error,
        "command rejected"
    );
}

/// Phase 0 for a batch or a dry run. Every command is checked in order on a
/// copy of the registry, against the values the commands before it leave;
/// the copy replaces the registry only if every one applied. A dry run
/// answers with what would happen and changes and audits nothing.
fn intercept_batch(world: &mut World, queued: QueuedCommand) {
    let abandoned = queued.abandoned(Instant::now());
    let principal = queued.origin.principal.to_string();
    let (request, reply) = queued.into_parts();
    let Request::Batch {
        commands,
        validate_only,
    } = request
    else {
        return;
    };
    if !validate_only && let Some(recorded) = recorded_batch(world, &commands) {
        info!(command_id = %commands[0].id, "batch already recorded; returning its outcomes");
        return deliver_batch(world, recorded, reply, false);
    }
    let mut responses: Vec<_> = commands
        .iter()
        .map(|command| pb::GodResponse {
            command_id: command.id.clone(),
            applied_tick: world.tick,
            key: command.key.clone(),
            reason: command.reason.clone(),
            principal: principal.clone(),
            applied_while_paused: world.run.between_ticks,
            dry_run: validate_only,
            ..Default::default()
        })
        .collect();
    match abandoned {
        // Nobody waits for a dry run's answer, and it records nothing.
        Some(_) if validate_only => return,
        Some(abandoned) => {
            for response in &mut responses {
                record_abandoned(world, response, abandoned);
            }
        }
        None => {
            let mut scratch = world.registry.clone();
            let refused = commands
                .iter()
                .zip(&mut responses)
                .position(|(command, response)| !set_on(&mut scratch, command, response));
            if validate_only {
                reply.send_all(responses);
                return;
            }
            match refused {
                None => commit_batch(world, scratch, &responses),
                Some(index) => abort_batch(world, &mut responses, index),
            }
        }
    }
    for response in &responses {
        world.audit.record(response.clone());
    }
    deliver_batch(world, responses, reply, true);
}

/// The recorded outcomes of a batch whose every id is already recorded.
fn recorded_batch(world: &World, commands: &[pb::GodCommand]) -> Option<Vec<pb::GodResponse>> {
    commands
        .iter()
        .map(|c| world.audit.recorded(&c.id).cloned())
        .collect()
}

fn commit_batch(world: &mut World, scratch: GlobalRegistry, responses: &[pb::GodResponse]) {
    world.registry = scratch;
    for response in responses {
        log_update(world.tick, response);
    }
}

/// Marks every command of a refused batch as not applied: the refused one
/// keeps its reason, the others say the batch was aborted.
fn abort_batch(world: &World, responses: &mut [pb::GodResponse], refused: usize) {
    log_rejection(world.tick, &responses[refused]);
    for (i, response) in responses.iter_mut().enumerate() {
        if i == refused {
            continue;
        }
        let current = world.registry.value_by_key(&response.key).map(Into::into);
        response.success = false;
        response.error = format!("not applied: command {refused} of the same batch was refused");
        response.rejection = pb::RejectionReason::BatchAborted.into();
        response.old_value = current;
        response.new_value = current;
    }
}

/// Sends a batch's responses to its caller: at once with no audit log on
/// disk, otherwise once the last of them is durable.
fn deliver_batch(world: &mut World, responses: Vec<pb::GodResponse>, reply: Reply, append: bool) {
    let Some(durability) = world.durability.as_mut() else {
        reply.send_all(responses);
        return;
    };
    let reply = reply.with_responses(responses.clone());
    let last = responses.len().saturating_sub(1);
    let mut reply = Some(reply);
    for (i, response) in responses.into_iter().enumerate() {
        durability.outcomes.push(Outcome {
            response,
            reply: if i == last { reply.take() } else { None },
            append,
        });
    }
}

/// Records a command that was not applied because its caller gave up.
fn record_abandoned(world: &World, response: &mut pb::GodResponse, abandoned: Abandoned) {
    let (reason, error) = match abandoned {
        Abandoned::Expired => (
            pb::RejectionReason::Expired,
            "the caller's deadline passed before Phase 0 reached the command; not applied",
        ),
        Abandoned::Cancelled => (
            pb::RejectionReason::Cancelled,
            "the caller cancelled before Phase 0 reached the command; not applied",
        ),
    };
    warn!(
        key = %response.key,
        tick = world.tick,
        command_id = %response.command_id,
        principal = %response.principal,
        "command {abandoned:?}: not applied"
    );
    let current = world.registry.value_by_key(&response.key).map(Into::into);
    response.error = error.to_owned();
    response.rejection = reason.into();
    response.old_value = current;
    response.new_value = current;
}

/// Phase 8: an immutable view of the settled world, built from running totals
/// and the economy's one pass, never a deep copy of the agents.
fn capture_snapshot(world: &World) -> pb::WatchtowerSnapshot {
    let captured_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let stats = &world.stats;
    let mut snapshot = pb::WatchtowerSnapshot {
        tick: world.tick,
        captured_at_unix_ms,
        engine: Some(pb::EngineStatistics {
            measured_tps: stats.measured_tps,
            last_tick_duration_us: stats.last_tick.as_secs_f64() * 1e6,
            queue_depth: stats.queue_depth,
            commands_applied: world.audit.applied(),
            commands_rejected: world.audit.rejected(),
            target_tps: world.run.settings.target_tps,
            seed: world.seed,
            run_state: world.run.run_state().into(),
        }),
        parameters: world.registry.values_pb(),
        audit: Some(pb::AuditSummary {
            total: world.audit.total(),
            recent: world.audit.recent(SNAPSHOT_AUDIT_TAIL).cloned().collect(),
        }),
        run_id: world.run_id.clone(),
        state_digest: world.digest,
        ..Default::default()
    };
    world.economy.fill_snapshot(&mut snapshot);
    snapshot
}
