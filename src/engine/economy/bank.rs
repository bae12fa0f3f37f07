//! The commercial bank and the central bank: Phase 6.
//!
//! The central bank sets the policy rate (the registry's value, or a Taylor
//! rule when `monetary.taylor_rule` is on). The bank charges the policy rate
//! plus `bank.loan_spread` on loans, pays the policy rate less 1 pp (floored
//! at zero) on household deposits, collects interest and amortisation,
//! writes off the loans of firms that cannot pay (each is replaced by an
//! entrant), and lends working capital within the limit
//! `loans ≤ equity / bank.capital_ratio`. Firms pay dividends to their
//! owners, the bank to its owners, and the central bank remits its profit.

use super::{Account, Economy, Flow, Money, Order, UNEMPLOYED, households::WAGE_NORM_UNEMPLOYMENT};
use crate::engine::GlobalRegistry;

/// Ticks over which a loan is amortised.
pub const AMORTISATION_TICKS: Money = 60;
/// Share of after-tax profit firms pay out when they have spare cash.
pub const FIRM_PAYOUT: f64 = 0.8;
/// Share of its profit the bank pays out when well capitalised.
pub const BANK_PAYOUT: f64 = 0.7;
/// Neutral real rate of the Taylor rule, per year.
pub const NEUTRAL_REAL_RATE: f64 = 0.02;
/// Most a firm may owe, in months of its planned wage bill: the bank's
/// creditworthiness limit, so a loss-making firm cannot borrow forever.
pub const MAX_LEVERAGE: f64 = 3.0;
/// Marker for a firm that went bankrupt this tick.
const BANKRUPT: u32 = u32::MAX;

/// The Taylor rule: `i = r* + π + 0.5(π − π*) + 0.5(u* − u)`, clamped to the
/// registry's range for the policy rate.
pub fn taylor_rate(inflation_12: f64, target: f64, unemployment: f64) -> f64 {
    let rate = NEUTRAL_REAL_RATE
        + inflation_12
        + 0.5 * (inflation_12 - target)
        + 0.5 * (WAGE_NORM_UNEMPLOYMENT - unemployment);
    if rate.is_finite() {
        rate.clamp(-0.02, 0.25)
    } else {
        NEUTRAL_REAL_RATE
    }
}

/// Share of its cash shortfall a firm borrows: all of it at a loan rate of
/// 6% a year or less, less as the rate rises (the rest it meets by hiring
/// fewer workers); the credit channel of monetary policy.
pub fn borrowing_share(loan_rate: f64) -> f64 {
    ((1.0 + 20.0 * 0.06) / (1.0 + 20.0 * loan_rate.max(0.0)))
        .powi(3)
        .min(1.0)
}

/// Months of wage bill a firm wants in its deposit after paying wages; it
/// falls as borrowing gets dearer.
pub fn cash_buffer(loan_rate: f64) -> f64 {
    1.0 + 1.0 / (1.0 + 20.0 * loan_rate.max(0.0))
}

impl Economy {
    /// Phase 6: rates, debt service, bankruptcies, lending, interest on
    /// deposits and reserves, dividends, and the central bank's remittance.
    pub(super) fn monetary_credit(&mut self, registry: &GlobalRegistry) {
        let policy = if registry.flag(self.params.taylor_rule) {
            taylor_rate(
                self.state.inflation_12,
                registry.number(self.params.inflation_target),
                self.state.unemployment,
            )
        } else {
            registry.number(self.params.policy_rate)
        };
        let spread = registry.number(self.params.loan_spread);
        self.state.policy_rate = policy;
        self.state.loan_rate = (policy + spread).max(0.0);
        self.state.deposit_rate = (policy - 0.01).max(0.0);
        let monthly_loan_rate = self.state.loan_rate / 12.0;
        let buffer = cash_buffer(self.state.loan_rate);
        let share = borrowing_share(self.state.loan_rate);
        let n_f = self.firms.len();

        // Debt service, dividends and bankruptcies.
        let mut interest_total: Money = 0;
        let mut repaid: Money = 0;
        let mut written_off: Money = 0;
        self.bankrupt.clear();
        for f in 0..n_f {
            let (deposit, loan) = {
                let l = self.settlement.ledger();
                (l.firm_deposits[f], l.firm_loans[f])
            };
            let firm = &mut self.firms[f];
            let cash = deposit + firm.planned;
            let interest = (loan as f64 * monthly_loan_rate).round() as Money;
            let amortisation = (loan + AMORTISATION_TICKS - 1) / AMORTISATION_TICKS;
            if cash < interest + amortisation {
                let repay = cash.clamp(0, loan);
                self.settlement.record(Order::RepayLoan {
                    firm: f as u32,
                    amount: repay,
                });
                self.settlement.record(Order::WriteOff {
                    firm: f as u32,
                    amount: loan - repay,
                });
                firm.planned -= repay;
                repaid += repay;
                written_off += loan - repay;
                firm.to_fire = BANKRUPT;
                self.bankrupt.push(f as u32);
                continue;
            }
            let account = Account::Firm(f as u32);
            self.settlement
                .pay(account, Account::Bank, interest, Flow::LoanInterest);
            if amortisation > 0 {
                self.settlement.record(Order::RepayLoan {
                    firm: f as u32,
                    amount: amortisation,
                });
            }
            firm.planned -= interest + amortisation;
            firm.interest_paid = interest;
            interest_total += interest;
            repaid += amortisation;
            let target = target_cash(firm, buffer);
            let excess = deposit + firm.planned - target;
            if excess > 0 {
                // Pay out most of the profit, and run down idle cash slowly.
                let from_profit = (firm.profit.max(0) as f64 * FIRM_PAYOUT) as Money;
                let dividend = from_profit.max(excess / 4).min(excess);
                let paid = pay_owners(
                    &mut self.settlement,
                    &mut self.households.income,
                    f as u32,
                    n_f as u32,
                    (self.capitalists, self.capitalist_stride),
                    dividend,
                );
                firm.planned -= paid;
            }
            let left = loan - amortisation;
            let surplus = deposit + firm.planned - 2 * target;
            if left > 0 && surplus > 0 {
                let prepay = surplus.min(left);
                self.settlement.record(Order::RepayLoan {
                    firm: f as u32,
                    amount: prepay,
                });
                firm.planned -= prepay;
                repaid += prepay;
            }
        }
        if !self.bankrupt.is_empty() {
            for employer in &mut self.households.employer {
                if *employer != UNEMPLOYED && self.firms[*employer as usize].to_fire == BANKRUPT {
                    *employer = UNEMPLOYED;
                }
            }
            for i in 0..self.bankrupt.len() {
                let f = self.bankrupt[i] as usize;
                let planned = self.firms[f].planned;
                self.replace_firm(f, registry);
                // The entrant inherits the slot's account and what is left in it.
                self.firms[f].planned = planned;
            }
            self.tick_totals.bankruptcies = self.bankrupt.len() as u64;
            self.bankruptcies_total += self.bankrupt.len() as u64;
        }
        self.tick_totals.bank_equity_planned += interest_total - written_off;

        // Working-capital lending, rationed by the capital requirement.
        let capital_ratio = registry.number(self.params.capital_ratio);
        let (equity, loans) = {
            let b = &self.settlement.ledger().bank;
            (
                b.equity + self.tick_totals.bank_equity_planned,
                b.loans - repaid - written_off,
            )
        };
        let mut capacity = if capital_ratio > 0.0 {
            ((equity as f64 / capital_ratio) as Money - loans).max(0)
        } else {
            Money::MAX
        };
        let mut new_lending: Money = 0;
        for f in self.rotation(n_f) {
            if capacity <= 0 {
                break;
            }
            let (deposit, loan) = {
                let l = self.settlement.ledger();
                (l.firm_deposits[f], l.firm_loans[f])
            };
            let firm = &mut self.firms[f];
            let wanted = target_cash(firm, buffer);
            let limit = (wanted as f64 / buffer * MAX_LEVERAGE) as Money - loan;
            let shortfall = wanted - (deposit + firm.planned);
            let demand = ((shortfall as f64 * share) as Money).min(limit);
            if demand <= 0 {
                continue;
            }
            let grant = demand.min(capacity);
            self.settlement.record(Order::GrantLoan {
                firm: f as u32,
                amount: grant,
            });
            firm.planned += grant;
            capacity -= grant;
            new_lending += grant;
        }
        self.tick_totals.new_lending = new_lending;

        // Deposit interest to households, income tax withheld at source.
        let tax_rate = registry.number(self.params.income_tax_rate);
        let monthly_deposit_rate = self.state.deposit_rate / 12.0;
        let mut gross_total: Money = 0;
        let mut tax_total: Money = 0;
        if monthly_deposit_rate > 0.0 {
            for h in 0..self.households.len() {
                let deposit = self.settlement.ledger().household_deposits[h];
                let gross = (deposit as f64 * monthly_deposit_rate) as Money;
                if gross <= 0 {
                    continue;
                }
                // Rounded half up; both factors are non-negative, and `+ 0.5`
                // with a truncating cast stays inline where `round` is a libm call.
                let tax = (gross as f64 * tax_rate + 0.5) as Money;
                self.settlement.pay(
                    Account::Bank,
                    Account::Household(h as u32),
                    gross - tax,
                    Flow::DepositInterest,
                );
                self.households.income[h] += gross - tax;
                gross_total += gross;
                tax_total += tax;
            }
        }
        self.settlement.pay(
            Account::Bank,
            Account::Government,
            tax_total,
            Flow::IncomeTaxOnInterest,
        );
        self.tick_totals.government_planned += tax_total;
        self.tick_totals.bank_equity_planned -= gross_total;

        // Interest on reserves at the policy rate, both ways; an overdraft
        // is closed by the central bank buying bonds from the bank.
        let (reserves, bank_bonds, deposits) = {
            let b = &self.settlement.ledger().bank;
            (
                b.reserves,
                b.bonds + self.tick_totals.bank_bonds_planned,
                b.deposits,
            )
        };
        let reserve_interest = (reserves as f64 * policy / 12.0).round() as Money;
        if reserve_interest > 0 {
            self.settlement.pay(
                Account::CentralBank,
                Account::Bank,
                reserve_interest,
                Flow::ReserveInterestPaid,
            );
        } else if reserve_interest < 0 {
            self.settlement.pay(
                Account::Bank,
                Account::CentralBank,
                -reserve_interest,
                Flow::ReserveInterestCharged,
            );
        }
        self.tick_totals.bank_equity_planned += reserve_interest;
        self.tick_totals.central_bank_planned -= reserve_interest;
        if reserves < 0 {
            let amount = (-reserves
                + (deposits as f64 * super::government::RESERVE_TARGET) as Money)
                .min(bank_bonds);
            if amount > 0 {
                self.settlement.record(Order::OpenMarketPurchase { amount });
            }
        }

        // Bank dividends, only above 1.5 times the required capital.
        let profit = self.tick_totals.bank_equity_planned;
        let equity = self.settlement.ledger().bank.equity + profit;
        let required = (1.5 * capital_ratio.max(0.04) * loans as f64) as Money;
        if profit > 0 && equity > required && self.capitalists > 0 {
            let dividend = ((profit as f64 * BANK_PAYOUT) as Money).min(equity - required);
            let each = dividend / Money::from(self.capitalists);
            if each > 0 {
                for c in 0..self.capitalists {
                    let h = c * self.capitalist_stride;
                    self.settlement.pay(
                        Account::Bank,
                        Account::Household(h),
                        each,
                        Flow::BankDividend,
                    );
                    self.households.income[h as usize] += each;
                }
                self.tick_totals.bank_equity_planned -= each * Money::from(self.capitalists);
            }
        }

        // The central bank remits any profit to the government.
        let cb_profit = self.tick_totals.central_bank_planned;
        if cb_profit > 0 {
            self.settlement.pay(
                Account::CentralBank,
                Account::Government,
                cb_profit,
                Flow::CentralBankRemittance,
            );
            self.tick_totals.government_planned += cb_profit;
        }
    }
}

/// Deposit a firm wants after paying this tick's bills: the buffer times the
/// wage bill of the workforce it plans for next tick.
fn target_cash(firm: &super::Firm, buffer: f64) -> Money {
    let workers = firm
        .workers
        .saturating_add(firm.unfilled)
        .max(firm.desired_workers())
        .max(1);
    (firm.wage as f64 * f64::from(workers) * buffer) as Money
}

/// Pays `amount` to the owners of firm `f` (capitalists `c` with
/// `c mod n_f == f`, or one owner when there are fewer capitalists than
/// firms; capitalist `c` is household `c * stride`) in equal whole shares;
/// returns what was paid.
fn pay_owners(
    settlement: &mut super::SettlementSystem,
    income: &mut [Money],
    f: u32,
    n_f: u32,
    (capitalists, stride): (u32, u32),
    amount: Money,
) -> Money {
    if capitalists == 0 || amount <= 0 {
        return 0;
    }
    if f >= capitalists {
        let owner = (f % capitalists) * stride;
        settlement.pay(
            Account::Firm(f),
            Account::Household(owner),
            amount,
            Flow::FirmDividend,
        );
        income[owner as usize] += amount;
        return amount;
    }
    let owners = (capitalists - 1 - f) / n_f + 1;
    let each = amount / Money::from(owners);
    if each <= 0 {
        return 0;
    }
    let mut c = f;
    while c < capitalists {
        let h = c * stride;
        settlement.pay(
            Account::Firm(f),
            Account::Household(h),
            each,
            Flow::FirmDividend,
        );
        income[h as usize] += each;
        c += n_f;
    }
    each * Money::from(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_taylor_rule_leans_against_inflation_and_unemployment() {
        let at_target = taylor_rate(0.02, 0.02, WAGE_NORM_UNEMPLOYMENT);
        assert!((at_target - 0.04).abs() < 1e-12, "{at_target}");
        // More than one for one in inflation (the Taylor principle).
        let hot = taylor_rate(0.04, 0.02, WAGE_NORM_UNEMPLOYMENT);
        assert!((hot - at_target - 0.03).abs() < 1e-12, "{hot}");
        assert!(taylor_rate(0.02, 0.02, 0.10) < at_target);
        assert_eq!(taylor_rate(1.0, 0.02, 0.0), 0.25);
        assert_eq!(taylor_rate(-1.0, 0.02, 0.5), -0.02);
        assert_eq!(taylor_rate(f64::NAN, 0.02, 0.05), NEUTRAL_REAL_RATE);
    }

    #[test]
    fn dearer_credit_means_smaller_buffers_and_less_borrowing() {
        assert_eq!(borrowing_share(0.0), 1.0);
        assert_eq!(borrowing_share(0.06), 1.0);
        let mut last = 1.0;
        for step in 1..=20 {
            let share = borrowing_share(0.06 + 0.01 * f64::from(step));
            assert!(share < last && share > 0.0, "{share}");
            last = share;
        }
        assert!(cash_buffer(0.0) > cash_buffer(0.06));
        assert!(cash_buffer(0.06) > cash_buffer(0.2));
        assert!(cash_buffer(0.2) > 1.0);
    }

    #[test]
    fn owners_share_a_dividend_in_whole_parts() {
        // 10 capitalists, stride 3, 4 firms: firm 1 is owned by capitalists
        // 1, 5 and 9, that is households 3, 15 and 27.
        let mut s = crate::engine::economy::SettlementSystem::new(30, 4);
        let mut income = vec![0; 30];
        let paid = pay_owners(&mut s, &mut income, 1, 4, (10, 3), 100);
        assert_eq!(paid, 99);
        assert_eq!((income[3], income[15], income[27]), (33, 33, 33));
        assert_eq!(income.iter().sum::<Money>(), paid);
        assert_eq!(s.pending().len(), 3);
        // Fewer capitalists than firms: one owner each.
        let mut income = vec![0; 30];
        let paid = pay_owners(&mut s, &mut income, 3, 4, (2, 15), 50);
        assert_eq!(paid, 50);
        assert_eq!(income[15], 50);
    }
}
