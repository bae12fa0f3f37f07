//! Behaviour of the economic model through the library's public API: the
//! engine is stepped by hand (no bridge, no network), parameters are changed
//! between ticks as a Phase 0 command would, and the ledger is re-checked
//! after every tick.

use proptest::prelude::*;
use prost::Message;
use watchtower::{
    engine::{EconomyError, EngineError, GlobalRegistry, SimulationEngine, Value},
    pb,
};

/// An engine of `households` households (one firm per 50, at least 2), or
/// the defaults when `None`.
fn engine(households: Option<u32>, seed: u64) -> SimulationEngine {
    let mut registry = GlobalRegistry::with_defaults();
    if let Some(n) = households {
        let firms = (n / 50).max(2);
        registry
            .apply_overrides_yaml(
                &format!("agents.households: {n}\nagents.firms: {firms}\n"),
                "test",
            )
            .expect("valid sizes");
    }
    SimulationEngine::new(registry, seed).expect("the economy builds")
}

fn set(engine: &mut SimulationEngine, key: &str, value: f64) {
    engine
        .world_mut()
        .registry
        .set(key, Some(Value::Number(value)))
        .expect("a valid command");
}

/// One tick, then the identities again from outside, then the bounds.
fn step_checked(engine: &mut SimulationEngine) {
    engine.step().expect("the tick settles");
    let world = engine.world();
    world
        .economy
        .ledger_check()
        .expect("identities hold between ticks");
    let i = world.economy.indicators();
    let m = &i.macro_;
    let tick = world.tick;
    assert!(
        (0.0..=1.0).contains(&m.unemployment_rate),
        "tick {tick}: unemployment {}",
        m.unemployment_rate
    );
    assert!(
        m.price_level > 0.0,
        "tick {tick}: price level {}",
        m.price_level
    );
    let snapshot = snapshot_of(engine);
    let fields = [
        m.nominal_gdp,
        m.real_gdp,
        m.real_gdp_growth,
        m.price_level,
        m.inflation,
        m.average_wage,
        m.money_supply,
        m.bank_loans,
        m.household_consumption,
        m.new_lending,
        m.inflation_12_tick,
        i.agents.wealth_gini,
        i.agents.income_gini,
        i.agents.wealth_p10,
        i.agents.wealth_p50,
        i.agents.wealth_p90,
        i.agents.wealth_p99,
        i.agents.unemployed_consumption,
        i.agents.inventories,
        i.government.tax_revenue,
        i.government.spending,
        i.government.deficit,
        i.government.debt,
        i.government.policy_rate,
    ];
    assert!(
        fields.iter().all(|x| x.is_finite()),
        "tick {tick}: a non-finite indicator in {snapshot:?}"
    );
    assert!((0.0..=1.0).contains(&i.agents.wealth_gini));
    assert!((0.0..=1.0).contains(&i.agents.income_gini));
    assert!(i.agents.wealth_p10 <= i.agents.wealth_p50);
    assert!(i.agents.wealth_p50 <= i.agents.wealth_p90);
    assert!(i.agents.wealth_p90 <= i.agents.wealth_p99);
}

/// The economy's part of the snapshot, as `fill_snapshot` writes it.
fn snapshot_of(engine: &SimulationEngine) -> pb::WatchtowerSnapshot {
    let mut snapshot = pb::WatchtowerSnapshot::default();
    engine.world().economy.fill_snapshot(&mut snapshot);
    snapshot
}

/// Encoded bytes of the economy's messages (the engine statistics and the
/// parameter map, which is a hash map, are left out).
fn economy_bytes(engine: &SimulationEngine) -> Vec<u8> {
    let s = snapshot_of(engine);
    let mut bytes = s.r#macro.expect("macro is set").encode_to_vec();
    bytes.extend(s.agents.expect("agents are set").encode_to_vec());
    bytes.extend(s.government.expect("government is set").encode_to_vec());
    bytes
}

#[test]
fn ten_thousand_ticks_at_the_defaults_stay_consistent_finite_and_plausible() {
    let mut e = engine(None, 7);
    let mut unemployment = Vec::new();
    let mut inflation = Vec::new();
    for _ in 0..10_000 {
        step_checked(&mut e);
        let m = e.world().economy.indicators().macro_;
        unemployment.push(m.unemployment_rate);
        inflation.push(m.inflation_12_tick);
    }
    let tail = 1_000..10_000;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let u = mean(&unemployment[tail.clone()]);
    let pi = mean(&inflation[tail]);
    assert!((0.03..=0.15).contains(&u), "mean unemployment {u}");
    assert!((-0.02..=0.06).contains(&pi), "mean yearly inflation {pi}");
    let agents = e.world().economy.indicators().agents;
    assert_eq!(agents.firms, 200, "the firm count stays constant");
}

#[test]
fn tiny_and_lopsided_economies_stay_consistent() {
    for (households, firms) in [(10, 2), (10, 100), (60, 2), (300, 299)] {
        let mut registry = GlobalRegistry::with_defaults();
        registry
            .apply_overrides_yaml(
                &format!("agents.households: {households}\nagents.firms: {firms}\n"),
                "test",
            )
            .expect("valid sizes");
        let mut e = SimulationEngine::new(registry, 5).expect("the economy builds");
        for _ in 0..500 {
            step_checked(&mut e);
        }
        let agents = e.world().economy.indicators().agents;
        assert_eq!(agents.households, households);
        assert_eq!(agents.firms, firms);
    }
}

#[test]
fn a_corrupted_ledger_halts_the_engine_with_the_identity_named() {
    let mut e = engine(Some(500), 3);
    for _ in 0..5 {
        step_checked(&mut e);
    }
    e.world_mut()
        .economy
        .settlement_mut()
        .ledger_mut()
        .household_deposits[17] += 1;
    let err = e.world().economy.ledger_check().unwrap_err();
    assert!(err.to_string().contains("deposits row"), "{err}");
    match e.step() {
        Err(EngineError::Economy(EconomyError::LedgerViolation { tick, message })) => {
            assert_eq!(tick, 6);
            assert!(message.contains("deposits row"), "{message}");
        }
        other => panic!("expected a ledger violation, got {other:?}"),
    }
}

#[test]
fn same_seed_and_commands_give_identical_snapshots_and_another_seed_differs() {
    let run = |seed: u64| {
        let mut e = engine(Some(1_000), seed);
        let mut frames = Vec::new();
        for tick in 1..=200 {
            if tick == 50 {
                set(&mut e, "fiscal.vat_rate", 0.15);
            }
            if tick == 120 {
                set(&mut e, "monetary.policy_rate", 0.06);
            }
            e.step().expect("the tick settles");
            frames.push(economy_bytes(&e));
        }
        frames
    };
    let a = run(11);
    let b = run(11);
    assert_eq!(a, b, "same seed, same commands");
    let c = run(12);
    assert_ne!(a, c, "another seed");
    let differing = a.iter().zip(&c).filter(|(x, y)| x != y).count();
    assert!(differing > 150, "only {differing} of 200 ticks differ");
}

/// Means of an indicator over `window` ticks after a change at tick
/// `burn_in`, in the baseline and the treated run (same seed).
struct Response {
    baseline: Vec<f64>,
    treated: Vec<f64>,
}

impl Response {
    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }
    fn baseline_mean(&self) -> f64 {
        Self::mean(&self.baseline)
    }
    fn treated_mean(&self) -> f64 {
        Self::mean(&self.treated)
    }
}

/// Runs baseline and treated economies of the default size side by side;
/// after `burn_in` ticks `key` is set to `value` in the treated one; collects
/// `measures` over the next `window` ticks.
fn policy_response(
    seed: u64,
    key: &str,
    value: f64,
    window: usize,
    measures: &[fn(&pb::WatchtowerSnapshot) -> f64],
) -> Vec<Response> {
    const BURN_IN: usize = 100;
    let mut base = engine(None, seed);
    let mut treated = engine(None, seed);
    for _ in 0..BURN_IN {
        base.step().expect("baseline tick");
        treated.step().expect("treated tick");
    }
    set(&mut treated, key, value);
    let mut out: Vec<Response> = measures
        .iter()
        .map(|_| Response {
            baseline: Vec::new(),
            treated: Vec::new(),
        })
        .collect();
    for _ in 0..window {
        step_checked(&mut base);
        step_checked(&mut treated);
        let (sb, st) = (snapshot_of(&base), snapshot_of(&treated));
        for (m, r) in measures.iter().zip(&mut out) {
            r.baseline.push(m(&sb));
            r.treated.push(m(&st));
        }
    }
    out
}

const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

fn gov(s: &pb::WatchtowerSnapshot) -> &pb::GovernmentIndicators {
    s.government.as_ref().expect("government is set")
}
fn mac(s: &pb::WatchtowerSnapshot) -> &pb::MacroIndicators {
    s.r#macro.as_ref().expect("macro is set")
}
fn agents(s: &pb::WatchtowerSnapshot) -> &pb::AgentStatistics {
    s.agents.as_ref().expect("agents are set")
}

#[test]
fn a_higher_income_tax_raises_income_tax_revenue_and_lowers_consumption() {
    for seed in SEEDS {
        let r = policy_response(
            seed,
            "fiscal.income_tax_rate",
            0.30,
            30,
            &[|s| gov(s).income_tax, |s| mac(s).household_consumption],
        );
        let (tax, consumption) = (&r[0], &r[1]);
        eprintln!(
            "seed {seed}: income tax {:.1} -> {:.1}, consumption {:.1} -> {:.1}",
            tax.baseline_mean(),
            tax.treated_mean(),
            consumption.baseline_mean(),
            consumption.treated_mean()
        );
        // Threshold: income tax collected at least 25% higher (the rate rises 50%;
        // measured: about 33%).
        assert!(
            tax.treated_mean() > 1.25 * tax.baseline_mean(),
            "seed {seed}: income tax {} vs {}",
            tax.treated_mean(),
            tax.baseline_mean()
        );
        // Threshold: household consumption at least 5% lower (measured: about 15%).
        assert!(
            consumption.treated_mean() < 0.95 * consumption.baseline_mean(),
            "seed {seed}: consumption {} vs {}",
            consumption.treated_mean(),
            consumption.baseline_mean()
        );
    }
}

#[test]
fn a_higher_unemployment_benefit_raises_transfers_and_consumption_of_the_unemployed() {
    for seed in SEEDS {
        let r = policy_response(
            seed,
            "welfare.unemployment_benefit_ratio",
            0.80,
            50,
            &[|s| gov(s).transfers, |s| agents(s).unemployed_consumption],
        );
        let (transfers, unemployed) = (&r[0], &r[1]);
        eprintln!(
            "seed {seed}: transfers {:.1} -> {:.1}, unemployed consumption {:.3} -> {:.3}",
            transfers.baseline_mean(),
            transfers.treated_mean(),
            unemployed.baseline_mean(),
            unemployed.treated_mean()
        );
        // Threshold: transfers at least 20% higher (the ratio rises 60%; measured:
        // about 37%, less than 60% as unemployment falls).
        assert!(
            transfers.treated_mean() > 1.2 * transfers.baseline_mean(),
            "seed {seed}"
        );
        // Threshold: consumption of the unemployed at least 20% higher (measured:
        // about 47%).
        assert!(
            unemployed.treated_mean() > 1.2 * unemployed.baseline_mean(),
            "seed {seed}"
        );
    }
}

#[test]
fn a_higher_policy_rate_lowers_new_lending_and_inflation() {
    for seed in SEEDS {
        let r = policy_response(
            seed,
            "monetary.policy_rate",
            0.08,
            50,
            &[
                |s| mac(s).new_lending,
                |s| mac(s).inflation,
                |s| gov(s).policy_rate,
            ],
        );
        let (lending, inflation, rate) = (&r[0], &r[1], &r[2]);
        eprintln!(
            "seed {seed}: new lending {:.1} -> {:.1}, inflation {:.5} -> {:.5}",
            lending.baseline_mean(),
            lending.treated_mean(),
            inflation.baseline_mean(),
            inflation.treated_mean()
        );
        assert!(
            rate.treated.iter().all(|&r| r == 0.08),
            "the commanded rate is in force"
        );
        // Threshold: new lending at least 20% lower over 50 ticks (measured:
        // 30-43%).
        assert!(
            lending.treated_mean() < 0.8 * lending.baseline_mean(),
            "seed {seed}"
        );
        // Threshold: mean tick-on-tick inflation lower than the baseline's.
        assert!(
            inflation.treated_mean() < inflation.baseline_mean(),
            "seed {seed}"
        );
    }
}

/// A parameter change for the property test: (tick, key, value).
fn change() -> impl Strategy<Value = (u64, &'static str, f64)> {
    let keys = prop_oneof![
        (0.0..0.9_f64).prop_map(|v| ("fiscal.income_tax_rate", v)),
        (0.0..0.9_f64).prop_map(|v| ("fiscal.corporate_tax_rate", v)),
        (0.0..0.5_f64).prop_map(|v| ("fiscal.vat_rate", v)),
        (0.0..0.6_f64).prop_map(|v| ("fiscal.government_spending_ratio", v)),
        (0.0..1.5_f64).prop_map(|v| ("welfare.unemployment_benefit_ratio", v)),
        (-0.02..0.25_f64).prop_map(|v| ("monetary.policy_rate", v)),
        (0.0..0.2_f64).prop_map(|v| ("bank.loan_spread", v)),
        (0.0..0.5_f64).prop_map(|v| ("bank.capital_ratio", v)),
        (0.0..5.0_f64).prop_map(|v| ("labor.minimum_wage", v)),
        (0.1..1.0_f64).prop_map(|v| ("households.propensity_to_consume", v)),
        (0.0..0.5_f64).prop_map(|v| ("households.wealth_propensity", v)),
        (0.0..2.0_f64).prop_map(|v| ("firms.markup", v)),
        (0.0..10.0_f64).prop_map(|v| ("households.rate_sensitivity", v)),
    ];
    (1..300_u64, keys).prop_map(|(tick, (key, value))| (tick, key, value))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn identities_hold_under_random_parameter_changes(
        seed in any::<u64>(),
        households in 200_u32..1_500,
        taylor in any::<bool>(),
        changes in proptest::collection::vec(change(), 0..12),
    ) {
        let mut e = engine(Some(households), seed);
        e.world_mut()
            .registry
            .set("monetary.taylor_rule", Some(Value::Flag(taylor)))
            .expect("a valid flag");
        for tick in 1..=300_u64 {
            for (_, key, value) in changes.iter().filter(|c| c.0 == tick) {
                set(&mut e, key, *value);
            }
            step_checked(&mut e);
        }
    }
}

/// Steady inflation over thousands of ticks multiplies nominal values; a
/// currency reform divides them by 1000 before integer money could overflow,
/// with every identity still exact and real behaviour carrying on.
#[test]
fn long_runs_redenominate_instead_of_overflowing() {
    let mut e = engine(Some(500), 3);
    let mut reform_ticks = Vec::new();
    let mut before = 0;
    for _ in 0..24_000 {
        let unemployment_before = e.world().economy.indicators().macro_.unemployment_rate;
        step_checked(&mut e);
        let economy = &e.world().economy;
        if economy.redenominations() > before {
            before = economy.redenominations();
            reform_ticks.push(e.world().tick);
            let m = &economy.indicators().macro_;
            assert!(
                m.inflation.abs() < 0.05,
                "tick {}: the reform shows as inflation {}",
                e.world().tick,
                m.inflation
            );
            assert!(
                (m.unemployment_rate - unemployment_before).abs() < 0.1,
                "tick {}: unemployment jumped from {unemployment_before} to {}",
                e.world().tick,
                m.unemployment_rate
            );
        }
    }
    assert!(!reform_ticks.is_empty(), "no reform in 24,000 ticks");
    println!("reforms at ticks {reform_ticks:?}");
}
