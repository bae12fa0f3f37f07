//! Tick benchmark of the economy (no bridge attached, so no snapshot is
//! published): prints ms per tick and ns per agent per tick at 10k, 100k and
//! 1M households, one firm per 50 households.
//!
//! Run with `cargo bench --bench tick`. A plain `harness = false` main: each
//! size is warmed up (the first ticks of a run build up the state and the
//! buffers), then timed over a fixed number of ticks; the median of several
//! batches is reported to damp noise from other work on the machine.

use std::time::Instant;

use watchtower::engine::{GlobalRegistry, SimulationEngine};

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

fn main() {
    // (households, warm-up ticks, ticks per batch, batches)
    let sizes = [
        (10_000_u64, 200, 200, 7),
        (100_000, 50, 40, 5),
        (1_000_000, 10, 5, 3),
    ];
    println!(
        "{:>10} {:>8} {:>12} {:>12} {:>14}",
        "households", "firms", "ms/tick", "min ms/tick", "ns/agent/tick"
    );
    for (households, warm_up, ticks, batches) in sizes {
        let mut e = engine(households);
        for _ in 0..warm_up {
            e.step().expect("warm-up tick");
        }
        let mut per_tick: Vec<f64> = (0..batches)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..ticks {
                    e.step().expect("timed tick");
                }
                start.elapsed().as_secs_f64() / f64::from(ticks)
            })
            .collect();
        per_tick.sort_by(f64::total_cmp);
        let median = per_tick[per_tick.len() / 2];
        let firms = (households / 50).max(2);
        let agents = (households + firms) as f64;
        println!(
            "{:>10} {:>8} {:>12.3} {:>12.3} {:>14.1}",
            households,
            firms,
            median * 1e3,
            per_tick[0] * 1e3,
            median * 1e9 / agents
        );
    }
}
