//! The government: Phase 5 (VAT and withheld income tax remitted by firms,
//! corporate tax, unemployment benefits, interest on bonds, and the bond
//! issue or redemption that finances the balance).
//!
//! Stateless `TaxSystem`: every rate is read from the registry in this phase,
//! this tick; nothing is cached, so a command changes the next tax bill.

use super::{Account, Economy, Flow, Holder, Money, Order};
use crate::engine::GlobalRegistry;

/// Reserves the bank keeps before it buys new bonds, as a share of deposits.
pub const RESERVE_TARGET: f64 = 0.05;

impl Economy {
    /// Phase 5: taxes, benefits, bond interest and deficit financing.
    pub(super) fn fiscal(&mut self, registry: &GlobalRegistry) {
        let vat_rate = registry.number(self.params.vat_rate);
        let corporate_rate = registry.number(self.params.corporate_tax_rate);
        let benefit_ratio = registry.number(self.params.unemployment_benefit_ratio);
        let mut revenue: Money = 0;
        for (f, firm) in self.firms.iter_mut().enumerate() {
            let account = Account::Firm(f as u32);
            let net_sales = (firm.household_revenue as f64 / (1.0 + vat_rate)).round() as Money;
            let vat = firm.household_revenue - net_sales;
            let taxable = net_sales + firm.government_revenue - firm.wage_bill - firm.interest_paid;
            // The gross wage bill, withheld tax included, is already in `planned`.
            let cash = self.settlement.ledger().firm_deposits[f] + firm.planned - vat;
            let corporate =
                ((taxable.max(0) as f64 * corporate_rate).round() as Money).clamp(0, cash.max(0));
            self.settlement
                .pay(account, Account::Government, vat, Flow::Vat);
            self.settlement.pay(
                account,
                Account::Government,
                firm.tax_withheld,
                Flow::IncomeTaxOnWages,
            );
            self.settlement
                .pay(account, Account::Government, corporate, Flow::CorporateTax);
            firm.planned -= vat + corporate;
            firm.profit = taxable - corporate;
            revenue += vat + firm.tax_withheld + corporate;
        }
        let t = &self.tick_totals;
        let average_wage = if t.employed > 0 {
            t.wage_bill / t.employed as Money
        } else {
            self.state.average_wage
        };
        self.state.average_wage = average_wage;
        let benefit = (average_wage as f64 * benefit_ratio).round() as Money;
        let mut transfers: Money = 0;
        if benefit > 0 {
            for &h in &self.unemployed {
                if self.households.employer[h as usize] == super::UNEMPLOYED {
                    self.settlement.pay(
                        Account::Government,
                        Account::Household(h),
                        benefit,
                        Flow::Benefit,
                    );
                    self.households.income[h as usize] += benefit;
                    transfers += benefit;
                }
            }
        }
        // Bonds pay the policy rate in force (floored at zero) each tick.
        let coupon = self.state.policy_rate.max(0.0) / 12.0;
        let ledger = self.settlement.ledger();
        let to_bank = (ledger.bank.bonds as f64 * coupon).round() as Money;
        let to_cb = (ledger.central_bank.bonds as f64 * coupon).round() as Money;
        self.settlement.pay(
            Account::Government,
            Account::Bank,
            to_bank,
            Flow::BondInterestToBank,
        );
        self.settlement.pay(
            Account::Government,
            Account::CentralBank,
            to_cb,
            Flow::BondInterestToCentralBank,
        );
        self.tick_totals.bank_equity_planned += to_bank;
        self.tick_totals.central_bank_planned += to_cb;
        let t = &mut self.tick_totals;
        t.government_planned += revenue - transfers - to_bank - to_cb;
        // Finance the balance: the treasury account should end the tick at
        // zero before the central bank's remittance.
        let ledger = self.settlement.ledger();
        let projected = ledger.government.treasury + t.government_planned;
        if projected < 0 {
            let need = -projected;
            let spare =
                ledger.bank.reserves - (ledger.bank.deposits as f64 * RESERVE_TARGET) as Money;
            let bank = need.min(spare.max(0));
            for (holder, amount) in [(Holder::Bank, bank), (Holder::CentralBank, need - bank)] {
                if amount > 0 {
                    self.settlement.record(Order::IssueBonds { holder, amount });
                }
            }
            t.government_planned += need;
            t.bank_bonds_planned += bank;
        } else if projected > 0 {
            let from_cb = projected.min(ledger.central_bank.bonds);
            let from_bank = (projected - from_cb).min(ledger.bank.bonds);
            for (holder, amount) in [(Holder::CentralBank, from_cb), (Holder::Bank, from_bank)] {
                if amount > 0 {
                    self.settlement
                        .record(Order::RedeemBonds { holder, amount });
                }
            }
            t.government_planned -= from_cb + from_bank;
            t.bank_bonds_planned -= from_bank;
        }
    }
}
