//! Households, stored as structure-of-arrays, and the two markets they meet
//! firms in: Phase 2 (labour: wage setting, firing, quits, matching) and
//! Phase 4 (goods: each household visits a few random firms and buys from
//! the cheapest with stock; then the government buys).
//!
//! Deposits live in the `SettlementSystem`'s ledger, not here: the model
//! reads settled balances and records orders, and never moves money itself.

use rand::RngExt;

use super::{Account, Economy, Flow, MONEY_SCALE, Money, PRODUCTIVITY, UNEMPLOYED};
use crate::engine::GlobalRegistry;

/// Probability per tick that an employed household quits (job turnover).
pub const QUIT_RATE: f64 = 0.01;
/// Wage growth per tick when unemployment is at [`WAGE_NORM_UNEMPLOYMENT`].
pub const WAGE_DRIFT: f64 = 0.0005;
/// Unemployment rate at which wage growth equals the drift.
pub const WAGE_NORM_UNEMPLOYMENT: f64 = 0.06;
/// Slope of wage growth in the unemployment gap (per tick).
pub const WAGE_PHILLIPS: f64 = 0.003;
/// Deposit rate (per year) at which the rate does not shift propensities.
pub const NEUTRAL_DEPOSIT_RATE: f64 = 0.02;

/// Every household, one array per attribute.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Households {
    /// Employer's firm index, or [`UNEMPLOYED`].
    pub employer: Vec<u32>,
    /// Expected disposable income per tick, minor units.
    pub expected_income: Vec<Money>,
    /// Disposable income received this tick so far, minor units.
    pub income: Vec<Money>,
}

impl Households {
    /// `n` households, all unemployed with no income.
    pub fn new(n: usize) -> Self {
        Self {
            employer: vec![UNEMPLOYED; n],
            expected_income: vec![0; n],
            income: vec![0; n],
        }
    }

    /// Number of households.
    pub fn len(&self) -> usize {
        self.employer.len()
    }

    /// True if there are no households.
    pub fn is_empty(&self) -> bool {
        self.employer.is_empty()
    }
}

impl Economy {
    /// Phase 2: wages follow a wage-Phillips rule in last tick's
    /// unemployment (floored at the minimum wage); firms size their
    /// workforce to planned output and to the wages they can pay from their
    /// deposit; firing, quits, then unemployed households match to random
    /// vacancies, choosing the better paid of two.
    pub(super) fn labor_market(&mut self, registry: &GlobalRegistry) {
        let minimum_wage = super::to_money(registry.number(self.params.minimum_wage)).max(1);
        let u = self.state.unemployment;
        let growth = (WAGE_DRIFT
            + WAGE_PHILLIPS * (WAGE_NORM_UNEMPLOYMENT - u) / WAGE_NORM_UNEMPLOYMENT)
            .clamp(-0.004, 0.008);
        self.hiring.clear();
        let deposits = &self.settlement.ledger().firm_deposits;
        for (f, firm) in self.firms.iter_mut().enumerate() {
            let noise = 0.5 + self.rng.random::<f64>();
            let shortage = if firm.unfilled > 0 { 0.001 } else { 0.0 };
            let wage = firm.wage as f64 * (1.0 + growth * noise + shortage);
            firm.wage = (wage.round() as Money).max(minimum_wage);
            let affordable = (deposits[f] / firm.wage).clamp(0, Money::from(u32::MAX)) as u32;
            let desired = firm.desired_workers();
            let must_fire = firm.workers.saturating_sub(affordable);
            let may_fire = firm
                .workers
                .saturating_sub(desired)
                .min(firm.workers / 10 + 1);
            firm.to_fire = must_fire.max(may_fire);
            firm.vacancies = desired.min(affordable).saturating_sub(firm.workers);
            if firm.vacancies > 0 {
                self.hiring.push(f as u32);
            }
        }
        self.unemployed.clear();
        let n = self.households.len();
        for h in self.rotation(n) {
            let f = self.households.employer[h];
            if f != UNEMPLOYED {
                let firm = &mut self.firms[f as usize];
                if firm.to_fire > 0 {
                    firm.to_fire -= 1;
                } else if self.rng.random::<f64>() >= QUIT_RATE {
                    continue;
                }
                firm.workers -= 1;
                self.households.employer[h] = UNEMPLOYED;
                self.unemployed.push(h as u32);
            } else if self.hiring.is_empty() {
                self.unemployed.push(h as u32);
            } else {
                let len = self.hiring.len();
                let a = self.rng.random_range(0..len);
                let b = self.rng.random_range(0..len);
                let i = if self.firms[self.hiring[b] as usize].wage
                    > self.firms[self.hiring[a] as usize].wage
                {
                    b
                } else {
                    a
                };
                let f = self.hiring[i];
                let firm = &mut self.firms[f as usize];
                firm.workers += 1;
                firm.vacancies -= 1;
                if firm.vacancies == 0 {
                    self.hiring.swap_remove(i);
                }
                self.households.employer[h] = f;
            }
        }
        for firm in &mut self.firms {
            firm.unfilled = firm.vacancies;
            firm.to_fire = 0;
        }
    }

    /// Phase 4: household consumption and government purchases.
    ///
    /// Desired spending is `k·(c_y·ŷ + c_w·D)`, with `k` falling as the
    /// deposit rate rises and `ŷ` the adaptive expectation of disposable
    /// income (the benefit, for the unemployed); it is capped by the settled deposit plus this
    /// tick's net wage, so no household can overdraw.
    pub(super) fn goods_market(&mut self, registry: &GlobalRegistry) {
        let vat = registry.number(self.params.vat_rate);
        let c_y = registry.number(self.params.propensity_to_consume);
        let c_w = registry.number(self.params.wealth_propensity);
        let sensitivity = registry.number(self.params.rate_sensitivity);
        let expected_benefit = registry.number(self.params.unemployment_benefit_ratio)
            * self.state.average_wage as f64;
        let k =
            (1.0 - sensitivity * (self.state.deposit_rate - NEUTRAL_DEPOSIT_RATE)).clamp(0.3, 1.5);
        for (gp, firm) in self.gross_price.iter_mut().zip(&self.firms) {
            *gp = firm.price * (1.0 + vat) * MONEY_SCALE;
        }
        let n_f = self.firms.len();
        let n = self.households.len();
        let mut consumption: Money = 0;
        let mut unemployed_consumption: Money = 0;
        let mut unemployed: u64 = 0;
        let mut net_value = 0.0;
        let mut units_total = 0.0;
        for h in self.rotation(n) {
            let deposit = self.settlement.ledger().household_deposits[h];
            let cash = deposit + self.households.income[h];
            let jobless = self.households.employer[h] == UNEMPLOYED;
            // The unemployed know the benefit rule and expect the benefit.
            let expected = if jobless {
                expected_benefit
            } else {
                self.households.expected_income[h] as f64
            };
            let desired = k * (c_y * expected + c_w * deposit as f64);
            let mut budget = (desired as Money).min(cash);
            if jobless {
                unemployed += 1;
            }
            if budget <= 0 {
                continue;
            }
            let mut visit = [0_usize; 3];
            for v in &mut visit {
                *v = self.rng.random_range(0..n_f);
            }
            let gp = &self.gross_price;
            // Cheapest first: a three-element sorting network.
            let mut swap_if = |i: usize, j: usize| {
                if gp[visit[j]] < gp[visit[i]] {
                    visit.swap(i, j);
                }
            };
            swap_if(0, 1);
            swap_if(1, 2);
            swap_if(0, 1);
            let mut spent: Money = 0;
            for (i, &f) in visit.iter().enumerate() {
                if budget <= 0 {
                    break;
                }
                if i > 0 && visit[i - 1] == f {
                    continue;
                }
                let firm = &mut self.firms[f];
                let Some((spend, units)) = firm.sell(budget, gp[f]) else {
                    continue;
                };
                firm.household_revenue += spend;
                units_total += units;
                net_value += units * firm.price;
                budget -= spend;
                spent += spend;
                self.settlement.pay(
                    Account::Household(h as u32),
                    Account::Firm(f as u32),
                    spend,
                    Flow::Consumption,
                );
            }
            consumption += spent;
            if jobless {
                unemployed_consumption += spent;
            }
        }
        // The government buys a share of potential output at net prices,
        // spread evenly over the firms, then greedily from any stock left.
        let ratio = registry.number(self.params.government_spending_ratio);
        let potential = n as f64 * PRODUCTIVITY * self.state.price_level * MONEY_SCALE;
        let mut remaining = (ratio * potential) as Money;
        let mut purchases: Money = 0;
        for pass in 0..2 {
            let start = self.rng.random_range(0..n_f);
            for j in 0..n_f {
                if remaining <= 0 {
                    break;
                }
                let f = (start + j) % n_f;
                let share = if pass == 0 {
                    remaining / (n_f - j) as Money
                } else {
                    remaining
                };
                let firm = &mut self.firms[f];
                let Some((spend, units)) = firm.sell(share, firm.price * MONEY_SCALE) else {
                    continue;
                };
                firm.government_revenue += spend;
                units_total += units;
                net_value += units * firm.price;
                remaining -= spend;
                purchases += spend;
                self.settlement.pay(
                    Account::Government,
                    Account::Firm(f as u32),
                    spend,
                    Flow::GovernmentPurchase,
                );
            }
        }
        let t = &mut self.tick_totals;
        t.household_consumption = consumption;
        t.unemployed_consumption = unemployed_consumption;
        t.unemployed_at_market = unemployed;
        t.government_purchases = purchases;
        t.government_planned -= purchases;
        t.net_sales_value = net_value;
        t.units_sold = units_total;
    }
}
