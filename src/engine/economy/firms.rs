//! Firms: Phase 1 (sales expectations and markup pricing, after Assenza et
//! al. 2015 and Dosi et al. 2010) and Phase 3 (production and the wage bill),
//! plus the opening balance sheets of tick 0.
//!
//! Firms are few (one per 50 households by default), so they are an array of
//! structs; the household side is structure-of-arrays (`households.rs`).

use rand::RngExt;

use super::{
    Account, Economy, EconomyError, Flow, Holder, MONEY_SCALE, Money, Order, PRODUCTIVITY,
    UNEMPLOYED, to_money,
};
use crate::engine::GlobalRegistry;

/// Inventory firms aim to hold, as a share of expected sales.
pub const INVENTORY_TARGET: f64 = 0.15;
/// Share of inventory that spoils each tick.
pub const SPOILAGE: f64 = 0.02;
/// Weight of the last tick's sales in adaptive sales expectations.
pub const EXPECTATION_WEIGHT: f64 = 0.5;
/// Largest per-tick revision of a firm's markup factor.
pub const MARKUP_STEP: f64 = 0.03;

/// One consumption-goods firm.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Firm {
    /// Wage paid to each worker per tick, minor units.
    pub wage: Money,
    /// Net price per unit (without VAT), currency units.
    pub price: f64,
    /// The firm's own multiplier on the registry markup (Dosi-style
    /// adaptation to stock-outs and unsold stock).
    pub markup_factor: f64,
    /// Workers employed.
    pub workers: u32,
    /// Vacancies posted this tick.
    pub vacancies: u32,
    /// Vacancies still open after matching.
    pub unfilled: u32,
    /// Workers to let go this tick.
    pub to_fire: u32,
    /// Goods in stock.
    pub inventory: f64,
    /// Expected sales per tick, in goods.
    pub expected_sales: f64,
    /// Output the firm plans this tick.
    pub desired_output: f64,
    /// Goods sold this tick.
    pub sales_units: f64,
    /// Sales to households this tick, VAT included, minor units.
    pub household_revenue: Money,
    /// Sales to the government this tick, minor units.
    pub government_revenue: Money,
    /// Gross wage bill this tick.
    pub wage_bill: Money,
    /// Income tax withheld from wages this tick.
    pub tax_withheld: Money,
    /// Loan interest paid last tick (deducted from this tick's profit).
    pub interest_paid: Money,
    /// Profit after corporate tax this tick.
    pub profit: Money,
    /// Net cash flows recorded this tick and not yet settled.
    pub planned: Money,
}

impl Firm {
    /// Sells for at most `budget` (minor units) at `price` (minor units per
    /// unit, what the buyer pays) from stock; returns the amount spent and
    /// the units sold, or `None` if nothing can be sold. The buyer books the
    /// revenue to the right account.
    #[inline]
    pub fn sell(&mut self, budget: Money, price: f64) -> Option<(Money, f64)> {
        if self.inventory <= 0.0 || price <= 0.0 {
            return None;
        }
        let spend = budget.min((self.inventory * price) as Money);
        if spend <= 0 {
            return None;
        }
        let units = (spend as f64 / price).min(self.inventory);
        self.inventory -= units;
        self.sales_units += units;
        self.planned += spend;
        Some((spend, units))
    }

    /// Ceiling of the workforce the firm wants for `desired_output`.
    pub fn desired_workers(&self) -> u32 {
        (self.desired_output / PRODUCTIVITY)
            .ceil()
            .clamp(0.0, u32::MAX as f64 / 2.0) as u32
    }

    /// A new entrant taking over a bankrupt firm's slot.
    fn entrant(wage: Money, price: f64, expected_sales: f64) -> Self {
        Firm {
            wage,
            price,
            markup_factor: 1.0,
            expected_sales,
            desired_output: expected_sales,
            ..Default::default()
        }
    }
}

impl Economy {
    /// Tick 0: households' endowments, the bank's capital and firms'
    /// working-capital loans, financed by bonds, all posted and checked
    /// through the `SettlementSystem`.
    pub(super) fn open(
        &mut self,
        registry: &GlobalRegistry,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<(), EconomyError> {
        let n_h = self.households.len();
        let n_f = self.net_wage.len();
        let markup = registry.number(self.params.markup);
        let tax = registry.number(self.params.income_tax_rate);
        let benefit_ratio = registry.number(self.params.unemployment_benefit_ratio);
        let wage = to_money(1.0).max(to_money(registry.number(self.params.minimum_wage)));
        let price = (1.0 + markup) * wage as f64 / MONEY_SCALE / PRODUCTIVITY;
        for _ in 0..n_f {
            self.firms.push(Firm::entrant(wage, price, 0.0));
        }
        let mut employed = 0_u64;
        for h in 0..n_h {
            let f = rng.random_range(0..n_f);
            if rng.random::<f64>() < 0.93 {
                self.households.employer[h] = f as u32;
                self.firms[f].workers += 1;
                self.households.expected_income[h] = (wage as f64 * (1.0 - tax)) as Money;
                employed += 1;
            } else {
                self.households.expected_income[h] = (wage as f64 * benefit_ratio) as Money;
            }
        }
        let s = &mut self.settlement;
        let mut endowments: Money = 0;
        for h in 0..n_h {
            let stride = self.capitalist_stride as usize;
            let capitalist = h % stride == 0 && h / stride < self.capitalists as usize;
            let amount = to_money(if capitalist { 12.0 } else { 2.5 });
            s.pay(
                Account::Government,
                Account::Household(h as u32),
                amount,
                Flow::Endowment,
            );
            endowments += amount;
        }
        let mut loans: Money = 0;
        for (i, firm) in self.firms.iter_mut().enumerate() {
            firm.expected_sales = f64::from(firm.workers) * PRODUCTIVITY;
            firm.sales_units = firm.expected_sales;
            firm.inventory = INVENTORY_TARGET * firm.expected_sales;
            let loan = 2 * wage * Money::from(firm.workers) + wage;
            s.record(Order::GrantLoan {
                firm: i as u32,
                amount: loan,
            });
            loans += loan;
        }
        let capital = loans / 8;
        s.pay(
            Account::Government,
            Account::Bank,
            capital,
            Flow::BankCapital,
        );
        // The bank keeps reserves of 5% of deposits and holds the rest of
        // its surplus funds in bonds; the central bank takes the remainder.
        let funding = endowments + capital;
        let deposits = endowments + loans;
        let bank_bonds = (funding - deposits / 20).clamp(0, funding);
        s.record(Order::IssueBonds {
            holder: Holder::Bank,
            amount: bank_bonds,
        });
        s.record(Order::IssueBonds {
            holder: Holder::CentralBank,
            amount: funding - bank_bonds,
        });
        s.settle()
            .map_err(|message| EconomyError::LedgerViolation { tick: 0, message })?;
        let policy = registry.number(self.params.policy_rate);
        self.state.policy_rate = policy;
        self.state.loan_rate = policy + registry.number(self.params.loan_spread);
        self.state.deposit_rate = (policy - 0.01).max(0.0);
        self.state.price_level = price;
        self.state.price_history = [price; 13];
        self.state.average_wage = wage;
        self.state.unemployment = 1.0 - employed as f64 / n_h as f64;
        self.state.real_gdp = employed as f64 * PRODUCTIVITY;
        self.compute_indicators();
        Ok(())
    }

    /// Phase 1: adaptive sales expectations, markup adaptation and prices
    /// as a markup over unit labour cost; resets the tick's running totals.
    pub(super) fn expectations(&mut self, registry: &GlobalRegistry) {
        let markup = registry.number(self.params.markup);
        self.tick_totals = Default::default();
        for firm in &mut self.firms {
            firm.expected_sales += EXPECTATION_WEIGHT * (firm.sales_units - firm.expected_sales);
            let scale = firm.expected_sales.max(1.0);
            let step = MARKUP_STEP * self.rng.random::<f64>();
            if firm.inventory <= 0.02 * scale {
                firm.markup_factor *= 1.0 + step;
            } else if firm.inventory > 2.0 * INVENTORY_TARGET * scale {
                firm.markup_factor *= 1.0 - step;
            }
            firm.markup_factor = firm.markup_factor.clamp(0.25, 2.5);
            let unit_labour_cost = firm.wage as f64 / MONEY_SCALE / PRODUCTIVITY;
            firm.price = (1.0 + markup * firm.markup_factor) * unit_labour_cost;
            firm.desired_output =
                (firm.expected_sales * (1.0 + INVENTORY_TARGET) - firm.inventory).max(0.0);
            firm.sales_units = 0.0;
            firm.household_revenue = 0;
            firm.government_revenue = 0;
            firm.wage_bill = 0;
            firm.tax_withheld = 0;
            firm.profit = 0;
            firm.planned = 0;
        }
    }

    /// Phase 3: firms produce with their workforce and pay net wages; the
    /// withheld income tax is remitted in the fiscal phase.
    pub(super) fn production(&mut self, registry: &GlobalRegistry) {
        let tax_rate = registry.number(self.params.income_tax_rate);
        let mut wage_bill: Money = 0;
        let mut employed: u64 = 0;
        for (firm, net) in self.firms.iter_mut().zip(&mut self.net_wage) {
            let output = f64::from(firm.workers) * PRODUCTIVITY;
            firm.inventory = firm.inventory * (1.0 - SPOILAGE) + output;
            let tax = (firm.wage as f64 * tax_rate).round() as Money;
            *net = firm.wage - tax;
            firm.wage_bill = firm.wage * Money::from(firm.workers);
            firm.tax_withheld = tax * Money::from(firm.workers);
            firm.planned -= firm.wage_bill;
            wage_bill += firm.wage_bill;
            employed += u64::from(firm.workers);
        }
        self.tick_totals.wage_bill = wage_bill;
        self.tick_totals.employed = employed;
        let hh = &mut self.households;
        for h in 0..hh.employer.len() {
            // Expected disposable income adapts to last tick's income.
            let last = hh.income[h];
            hh.expected_income[h] += (last - hh.expected_income[h]) / 2;
            let f = hh.employer[h];
            if f == UNEMPLOYED {
                hh.income[h] = 0;
            } else {
                let net = self.net_wage[f as usize];
                hh.income[h] = net;
                self.settlement.pay(
                    Account::Firm(f),
                    Account::Household(h as u32),
                    net,
                    Flow::Wage,
                );
            }
        }
    }

    /// A fresh firm in slot `f` after a bankruptcy: the economy's average
    /// wage, a unit markup factor, no stock, half the average expected sales.
    pub(super) fn replace_firm(&mut self, f: usize, registry: &GlobalRegistry) {
        let n = self.firms.len() as f64;
        let mean_sales = self.firms.iter().map(|x| x.expected_sales).sum::<f64>() / n;
        let wage = self
            .state
            .average_wage
            .max(to_money(registry.number(self.params.minimum_wage)))
            .max(1);
        let markup = registry.number(self.params.markup);
        let price = (1.0 + markup) * wage as f64 / MONEY_SCALE / PRODUCTIVITY;
        self.firms[f] = Firm::entrant(wage, price, 0.5 * mean_sales);
    }
}
