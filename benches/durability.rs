//! What durability costs the engine thread, and what the writers do with
//! it: at 10k, 100k and 1M households (one firm per 50), prints the median
//! time of one tick, of the state digest Phase 8 computes every tick, of the
//! state copy handed to the checkpoint writer, and (on the writer's thread,
//! not the engine's) of encoding that copy, with the checkpoint's size.
//! The last three columns are the state copy, its encoding and the
//! checkpoint's size again once the audit log holds a full idempotency window
//! (`DEFAULT_IDEMPOTENCY_WINDOW` commands), as it does after a long run of
//! commands.
//!
//! Run with `cargo bench --bench durability`. A plain `harness = false`
//! main, like `benches/tick.rs`: warm up, then the median of several runs.

use std::time::Instant;

use watchtower::{
    engine::{DEFAULT_IDEMPOTENCY_WINDOW, GlobalRegistry, SimulationEngine, World, state_digest},
    pb::{GodResponse, ParameterValue, parameter_value::Kind},
    store::checkpoint,
};

fn engine(households: u64) -> SimulationEngine {
    let mut registry = GlobalRegistry::with_defaults();
    let firms = (households / 50).max(2);
    registry
        .apply_overrides_yaml(
            &format!("agents.households: {households}\nagents.firms: {firms}\n"),
            "bench",
        )
        .expect("valid sizes");
    SimulationEngine::new(registry, 42).expect("the economy builds")
}

/// Median wall time of `f` over `runs` runs, in milliseconds.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// An applied command's outcome, as an operator's command leaves it.
fn outcome(i: usize) -> GodResponse {
    let value = |v: f64| ParameterValue {
        kind: Some(Kind::Number(v)),
    };
    GodResponse {
        command_id: format!("{i:032x}"),
        success: true,
        applied_tick: i as u64,
        old_value: Some(value(0.1)),
        new_value: Some(value(0.12)),
        key: "fiscal.vat_rate".into(),
        reason: "benchmark".into(),
        principal: "operator".into(),
        ..Default::default()
    }
}

/// What a checkpoint costs: the median ms of the state copy (engine
/// thread) and of its encoding (writer thread), and the checkpoint's MiB.
fn checkpoint_costs(world: &World, runs: usize) -> (f64, f64, f64) {
    let clone = median_ms(runs, || {
        std::hint::black_box(world.state());
    });
    let state = world.state();
    let mut size = 0;
    let encode = median_ms(runs, || {
        size = checkpoint::encode(&state).expect("encodes").len();
    });
    (clone, encode, size as f64 / (1024.0 * 1024.0))
}

fn main() {
    // (households, warm-up ticks, runs)
    let sizes = [(10_000_u64, 100, 51), (100_000, 20, 15), (1_000_000, 5, 5)];
    println!(
        "{:>10} {:>10} {:>12} {:>12} {:>14} {:>12} {:>22} {:>10} {:>10}",
        "households",
        "ms/tick",
        "digest ms",
        "clone ms",
        "encode ms",
        "ckpt MiB",
        "full window: clone ms",
        "encode ms",
        "ckpt MiB"
    );
    for (households, warm_up, runs) in sizes {
        let mut e = engine(households);
        for _ in 0..warm_up {
            e.step().expect("warm-up tick");
        }
        let tick = median_ms(runs, || e.step().expect("timed tick"));
        let world = e.world();
        let digest = median_ms(runs, || {
            std::hint::black_box(state_digest(world.tick, &world.registry, &world.economy));
        });
        let (clone, encode, size) = checkpoint_costs(world, runs);
        let audit = &mut e.world_mut().audit;
        (0..DEFAULT_IDEMPOTENCY_WINDOW).for_each(|i| audit.record(outcome(i)));
        let (full, full_encode, full_size) = checkpoint_costs(e.world(), runs);
        println!(
            "{:>10} {:>10.3} {:>12.3} {:>12.3} {:>14.3} {:>12.2} {:>22.3} {:>10.3} {:>10.2}",
            households, tick, digest, clone, encode, size, full, full_encode, full_size
        );
    }
}
