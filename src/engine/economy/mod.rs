//! The economy behind phases 1–7: a small stock-flow consistent agent-based
//! model (households, firms, one commercial bank, a government and a central
//! bank) in the spirit of Godley & Lavoie (2007) and Caiani et al. (2016).
//! See `docs/model.md` for the equations and the balance-sheet matrices.
//!
//! - [`settlement`]: the `SettlementSystem` (ledger, journal, identity check);
//! - [`params`]: the registry handles read every tick;
//! - `firms` (Phases 1 and 3), `households` (Phases 2 and 4), `government`
//!   (Phase 5), `bank` (Phase 6): the behavioural rules;
//! - [`telemetry`]: the indicators `fill_snapshot` publishes.
//!
//! Runs on the engine thread only; one seeded ChaCha8 stream drives every
//! random choice, and no model code iterates a hash map, so a run is a pure
//! function of the seed and the commands.

mod bank;
mod firms;
mod government;
mod households;
pub mod params;
pub mod settlement;
pub mod telemetry;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{
    engine::{GlobalRegistry, Phase},
    pb,
};

pub use firms::Firm;
pub use households::Households;
pub use params::Params;
pub use settlement::{
    Account, Flow, FlowTotals, Holder, Ledger, MONEY_SCALE, Money, Order, SettlementSystem, Totals,
    to_money, to_units,
};
pub use telemetry::Indicators;

/// Goods one worker produces per tick.
pub const PRODUCTIVITY: f64 = 1.0;
/// A currency reform divides every nominal quantity by this.
pub const REDENOMINATION_FACTOR: Money = 1000;
/// Any book beyond this (in minor units, about 2^43) triggers a reform,
/// far below the overflow guard of `i64::MAX / 64`.
pub const REDENOMINATE_AT: Money = i64::MAX >> 20;

/// Marker in [`Households::employer`] for a household without a job.
pub const UNEMPLOYED: u32 = u32::MAX;

/// Why the economy cannot go on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EconomyError {
    /// A parameter the model needs is missing from the registry or mistyped.
    #[error("the economy needs parameter {0}")]
    Parameter(#[from] crate::engine::Rejection),
    /// A balance-sheet identity failed after settlement.
    #[error("ledger identity violated at tick {tick}: {message}")]
    LedgerViolation {
        /// The tick whose settlement failed.
        tick: u64,
        /// Which identity, and which accounts.
        message: String,
    },
    /// Nominal values have grown so far (for example, under hyperinflation
    /// from extreme parameters) that integer money could overflow; the
    /// engine halts rather than wrap.
    #[error("nominal values at tick {tick} near the limit of integer money: {message}")]
    Overflow {
        /// The tick that reached the limit.
        tick: u64,
        /// Which book.
        message: String,
    },
    /// The registry asks for an economy size the model cannot hold.
    #[error("cannot build an economy of {households} households and {firms} firms")]
    Size {
        /// Households asked for.
        households: i64,
        /// Firms asked for.
        firms: i64,
    },
}

/// Aggregate state carried from tick to tick (not parameters: these are
/// the model's own variables).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct MacroState {
    /// Policy rate in force, per year (registry or Taylor rule).
    policy_rate: f64,
    /// Loan rate in force, per year.
    loan_rate: f64,
    /// Deposit rate in force, per year.
    deposit_rate: f64,
    /// Sales-weighted average net price of the last tick.
    price_level: f64,
    /// Price levels of the last 13 ticks, oldest first once full.
    price_history: [f64; 13],
    /// Real GDP of the last tick.
    real_gdp: f64,
    /// Unemployment rate of the last tick.
    unemployment: f64,
    /// Average gross wage of the last tick, in minor units.
    average_wage: Money,
    /// Inflation over the last 12 ticks.
    inflation_12: f64,
}

/// Running totals of the tick being simulated, reset in Phase 1.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct TickTotals {
    household_consumption: Money,
    unemployed_consumption: Money,
    unemployed_at_market: u64,
    government_purchases: Money,
    net_sales_value: f64,
    units_sold: f64,
    /// Net flows of the government's treasury recorded this tick.
    government_planned: Money,
    /// Net flows of the bank's equity recorded this tick.
    bank_equity_planned: Money,
    /// Net flows of the central bank's equity recorded this tick.
    central_bank_planned: Money,
    /// New loans granted this tick.
    new_lending: Money,
    /// Change of the bank's bond holdings recorded this tick.
    bank_bonds_planned: Money,
    bankruptcies: u64,
    employed: u64,
    wage_bill: Money,
}

/// All agents and their balance sheets.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Economy {
    params: Params,
    rng: ChaCha8Rng,
    households: Households,
    firms: Vec<Firm>,
    settlement: SettlementSystem,
    /// Number of capitalist households, who own the firms and the bank.
    capitalists: u32,
    /// Capitalist `c` is household `c * capitalist_stride`: spread over the
    /// index range so that queue order never singles them out.
    capitalist_stride: u32,
    state: MacroState,
    tick_totals: TickTotals,
    bankruptcies_total: u64,
    /// Firms with open vacancies during matching (reused).
    hiring: Vec<u32>,
    /// Households without a job after matching (reused).
    unemployed: Vec<u32>,
    /// Net wage per worker, by firm (reused).
    net_wage: Vec<Money>,
    /// Gross price per unit in minor units, by firm (reused).
    gross_price: Vec<f64>,
    /// Firms gone bankrupt this tick (reused).
    bankrupt: Vec<u32>,
    /// Reused buffers; not state, so neither checkpointed nor digested.
    #[serde(skip)]
    scratch: telemetry::Scratch,
    /// Derived from the state at every settlement.
    indicators: Indicators,
    tick: u64,
    /// Currency reforms so far.
    redenominations: u64,
}

impl Economy {
    /// Builds the initial economy from the registry's values. The opening
    /// balance sheets are themselves posted through the `SettlementSystem`
    /// and checked, as tick 0.
    pub fn new(registry: &GlobalRegistry, seed: u64) -> Result<Self, EconomyError> {
        let params = Params::resolve(registry)?;
        let h_req = registry.integer(params.households);
        let f_req = registry.integer(params.firms);
        let size = EconomyError::Size {
            households: h_req,
            firms: f_req,
        };
        let (Ok(n_h), Ok(n_f)) = (u32::try_from(h_req), u32::try_from(f_req)) else {
            return Err(size);
        };
        if n_h == 0 || n_f == 0 || n_h == UNEMPLOYED {
            return Err(size);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let capitalists = n_f.max(n_h / 10).min(n_h);
        let households = Households::new(n_h as usize);
        let mut economy = Self {
            params,
            rng: ChaCha8Rng::seed_from_u64(0),
            households,
            firms: Vec::with_capacity(n_f as usize),
            settlement: SettlementSystem::new(n_h as usize, n_f as usize),
            capitalists,
            capitalist_stride: n_h / capitalists,
            state: MacroState::default(),
            tick_totals: TickTotals::default(),
            bankruptcies_total: 0,
            redenominations: 0,
            hiring: Vec::with_capacity(n_f as usize),
            unemployed: Vec::with_capacity(n_h as usize),
            net_wage: vec![0; n_f as usize],
            gross_price: vec![0.0; n_f as usize],
            bankrupt: Vec::new(),
            scratch: telemetry::Scratch {
                wealth: Vec::with_capacity(n_h as usize),
                income: Vec::with_capacity(n_h as usize),
                radix: Default::default(),
            },
            indicators: Indicators::default(),
            tick: 0,
        };
        economy.open(registry, &mut rng)?;
        economy.rng = rng;
        Ok(economy)
    }

    /// Runs one of phases 1–7 for `tick`.
    pub fn run_phase(
        &mut self,
        phase: Phase,
        registry: &GlobalRegistry,
        tick: u64,
    ) -> Result<(), EconomyError> {
        self.tick = tick;
        match phase {
            Phase::Expectations => {
                if self.needs_redenomination() {
                    self.redenominate();
                }
                self.expectations(registry);
            }
            Phase::LaborMarket => self.labor_market(registry),
            Phase::Production => self.production(registry),
            Phase::GoodsMarket => self.goods_market(registry),
            Phase::Fiscal => self.fiscal(registry),
            Phase::MonetaryCredit => self.monetary_credit(registry),
            Phase::Settlement => {
                self.settle()?;
                self.compute_indicators();
            }
            Phase::Intercept | Phase::Broadcast => {}
        }
        Ok(())
    }

    /// Writes the economy's indicators into `snapshot`.
    pub fn fill_snapshot(&self, snapshot: &mut pb::WatchtowerSnapshot) {
        snapshot.r#macro = Some(self.indicators.macro_);
        snapshot.agents = Some(self.indicators.agents);
        snapshot.government = Some(self.indicators.government);
    }

    /// The indicators of the last settled tick.
    pub fn indicators(&self) -> &Indicators {
        &self.indicators
    }

    /// The settled ledger.
    pub fn ledger(&self) -> &Ledger {
        self.settlement.ledger()
    }

    /// Flows posted at the last settlement.
    pub fn flows(&self) -> &FlowTotals {
        self.settlement.flows()
    }

    /// The settlement system, mutably; only for tests that corrupt the
    /// ledger to prove the check catches it.
    #[doc(hidden)]
    pub fn settlement_mut(&mut self) -> &mut SettlementSystem {
        &mut self.settlement
    }

    /// Re-checks every identity of the settled ledger against freshly
    /// recomputed sums, as Settlement does each tick.
    pub fn ledger_check(&self) -> Result<(), EconomyError> {
        // Between ticks no order is pending, so broad money must equal the
        // money recorded at the last settlement: the declared change is 0.
        let totals = self.settlement.ledger().totals();
        self.settlement
            .ledger()
            .check(&totals, self.settlement.totals().money(), 0)
            .map_err(|message| EconomyError::LedgerViolation {
                tick: self.tick,
                message,
            })
    }

    /// The households.
    pub fn households(&self) -> &Households {
        &self.households
    }

    /// The firms.
    pub fn firms(&self) -> &[Firm] {
        &self.firms
    }

    /// Currency reforms so far (see [`REDENOMINATION_FACTOR`]).
    pub fn redenominations(&self) -> u64 {
        self.redenominations
    }

    /// The policy rate in force, per year.
    pub fn policy_rate(&self) -> f64 {
        self.state.policy_rate
    }

    /// True once nominal stocks have grown far enough (through steady
    /// inflation over thousands of ticks) that a currency reform is due,
    /// long before integer money could overflow.
    fn needs_redenomination(&self) -> bool {
        let l = self.settlement.ledger();
        [
            self.settlement.totals().money(),
            l.bank.loans,
            l.government.bonds,
            l.bank.reserves,
            l.bank.equity,
        ]
        .iter()
        .any(|v| v.unsigned_abs() > REDENOMINATE_AT as u64)
    }

    /// A currency reform: every nominal quantity, stocks, prices, wages and
    /// expectations alike, is divided by [`REDENOMINATION_FACTOR`]; real
    /// quantities and ratios are untouched, so behaviour carries on as before.
    fn redenominate(&mut self) {
        const F: Money = REDENOMINATION_FACTOR;
        let scale = |x: Money| settlement::redenominated(x, F);
        let f = F as f64;
        self.settlement.redenominate(F);
        for firm in &mut self.firms {
            firm.wage = scale(firm.wage);
            firm.price /= f;
            firm.household_revenue = scale(firm.household_revenue);
            firm.government_revenue = scale(firm.government_revenue);
            firm.wage_bill = scale(firm.wage_bill);
            firm.tax_withheld = scale(firm.tax_withheld);
            firm.interest_paid = scale(firm.interest_paid);
            firm.profit = scale(firm.profit);
            firm.planned = scale(firm.planned);
        }
        for v in self
            .households
            .expected_income
            .iter_mut()
            .chain(self.households.income.iter_mut())
        {
            *v = scale(*v);
        }
        self.state.price_level /= f;
        for p in &mut self.state.price_history {
            *p /= f;
        }
        self.state.average_wage = scale(self.state.average_wage);
        self.redenominations += 1;
        tracing::info!(
            tick = self.tick,
            factor = F,
            total = self.redenominations,
            "currency redenominated"
        );
    }

    /// Phase 7: post the journal and check the identities.
    fn settle(&mut self) -> Result<(), EconomyError> {
        /// A 64th of the i64 range: room for a tick's flows on top of any book.
        const LIMIT: Money = i64::MAX / 64;
        let tick = self.tick;
        self.settlement
            .settle()
            .map_err(|message| EconomyError::LedgerViolation { tick, message })?;
        // What Phase 6 decided to lend must be what Settlement posted.
        let posted = self.settlement.flows().loans_granted;
        if posted != self.tick_totals.new_lending {
            return Err(EconomyError::LedgerViolation {
                tick,
                message: format!(
                    "loans granted: posted {posted} != recorded by the bank {}",
                    self.tick_totals.new_lending
                ),
            });
        }
        let l = self.settlement.ledger();
        let books = [
            ("broad money", self.settlement.totals().money()),
            ("bank loans", l.bank.loans),
            ("government bonds", l.government.bonds),
            ("bank reserves", l.bank.reserves),
            ("bank equity", l.bank.equity),
        ];
        match books.iter().find(|(_, v)| v.unsigned_abs() > LIMIT as u64) {
            Some((name, value)) => Err(EconomyError::Overflow {
                tick,
                message: format!("{name} = {value}"),
            }),
            None => Ok(()),
        }
    }

    /// Visits `0..n` starting at a random offset, so no agent is always
    /// first in a queue.
    fn rotation(&mut self, n: usize) -> impl Iterator<Item = usize> + use<> {
        use rand::RngExt;
        let start = if n == 0 {
            0
        } else {
            self.rng.random_range(0..n)
        };
        (start..n).chain(0..start)
    }
}
