//! `SettlementSystem`: the ledger of every account and the journal of the
//! tick's transfer orders (Phase 7).
//!
//! Phases 1–6 only *record* orders; [`SettlementSystem::settle`] posts them in
//! Phase 7 and then checks the balance-sheet identities. Per-agent accounts
//! (household and firm deposits, firm loans) and the sector books of the bank,
//! the central bank and the government are kept separately and updated by
//! each posting; the check recomputes the per-agent sums and compares them
//! with the books, so a posting that forgets one side is caught. Money is
//! integer minor units ([`Money`]), so every identity is exact.
//! Runs on the engine thread only.

use std::fmt;

/// Money in minor units: one currency unit is [`MONEY_SCALE`] units.
pub type Money = i64;

/// Minor units per currency unit (1/10 000: fine enough for taxes on a
/// wage of about 1, coarse enough that 10 000 ticks of inflation fit in i64).
pub const MONEY_SCALE: f64 = 10_000.0;

/// Currency units to minor units, rounded; NaN maps to 0 and overflow saturates.
pub fn to_money(x: f64) -> Money {
    (x * MONEY_SCALE).round() as Money
}

/// Minor units to currency units.
pub fn to_units(m: Money) -> f64 {
    m as f64 / MONEY_SCALE
}

/// Who holds an account. Households and firms bank at the commercial bank;
/// the government banks at the central bank; the two banks' own accounts are
/// their equity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Account {
    /// A household's deposit, by index.
    Household(u32),
    /// A firm's deposit, by index.
    Firm(u32),
    /// The commercial bank's own funds (its equity).
    Bank,
    /// The government's treasury account at the central bank.
    Government,
    /// The central bank's own funds (its equity).
    CentralBank,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Household(h) => write!(f, "household {h}"),
            Account::Firm(i) => write!(f, "firm {i}"),
            Account::Bank => f.write_str("bank"),
            Account::Government => f.write_str("government"),
            Account::CentralBank => f.write_str("central bank"),
        }
    }
}

/// The class of an account, for checking an order's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Household,
    Firm,
    Bank,
    Government,
    CentralBank,
}

impl Account {
    fn class(self) -> Class {
        match self {
            Account::Household(_) => Class::Household,
            Account::Firm(_) => Class::Firm,
            Account::Bank => Class::Bank,
            Account::Government => Class::Government,
            Account::CentralBank => Class::CentralBank,
        }
    }
}

/// What a payment is for. Each kind has one allowed route and a declared
/// effect on broad money, which the ΔM identity checks against the books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Flow {
    /// Firm → household: net wage.
    Wage = 0,
    /// Firm → government: income tax withheld from wages.
    IncomeTaxOnWages,
    /// Household → firm: purchase at the gross (VAT-inclusive) price.
    Consumption,
    /// Government → firm: government purchase.
    GovernmentPurchase,
    /// Firm → government: VAT collected on sales.
    Vat,
    /// Firm → government: corporate tax.
    CorporateTax,
    /// Government → household: unemployment benefit.
    Benefit,
    /// Firm → household: dividend to the firm's owners.
    FirmDividend,
    /// Bank → household: bank dividend.
    BankDividend,
    /// Bank → household: deposit interest, net of tax.
    DepositInterest,
    /// Bank → government: income tax withheld on deposit interest.
    IncomeTaxOnInterest,
    /// Firm → bank: interest on loans.
    LoanInterest,
    /// Government → bank: interest on the bank's bonds.
    BondInterestToBank,
    /// Government → central bank: interest on the central bank's bonds.
    BondInterestToCentralBank,
    /// Central bank → bank: interest on positive reserves.
    ReserveInterestPaid,
    /// Bank → central bank: interest on a reserve overdraft.
    ReserveInterestCharged,
    /// Central bank → government: the central bank's profit.
    CentralBankRemittance,
    /// Government → household: initial endowment (tick 0 only).
    Endowment,
    /// Government → bank: capital injection (tick 0 only).
    BankCapital,
}

/// Number of [`Flow`] kinds.
pub const FLOW_KINDS: usize = 19;

impl Flow {
    /// Every kind, in discriminant order.
    pub const ALL: [Flow; FLOW_KINDS] = [
        Flow::Wage,
        Flow::IncomeTaxOnWages,
        Flow::Consumption,
        Flow::GovernmentPurchase,
        Flow::Vat,
        Flow::CorporateTax,
        Flow::Benefit,
        Flow::FirmDividend,
        Flow::BankDividend,
        Flow::DepositInterest,
        Flow::IncomeTaxOnInterest,
        Flow::LoanInterest,
        Flow::BondInterestToBank,
        Flow::BondInterestToCentralBank,
        Flow::ReserveInterestPaid,
        Flow::ReserveInterestCharged,
        Flow::CentralBankRemittance,
        Flow::Endowment,
        Flow::BankCapital,
    ];

    fn route(self) -> (Class, Class) {
        use Class::*;
        match self {
            Flow::Wage | Flow::FirmDividend => (Firm, Household),
            Flow::IncomeTaxOnWages | Flow::Vat | Flow::CorporateTax => (Firm, Government),
            Flow::Consumption => (Household, Firm),
            Flow::GovernmentPurchase => (Government, Firm),
            Flow::Benefit | Flow::Endowment => (Government, Household),
            Flow::BankDividend | Flow::DepositInterest => (Bank, Household),
            Flow::IncomeTaxOnInterest => (Bank, Government),
            Flow::LoanInterest => (Firm, Bank),
            Flow::BondInterestToBank | Flow::BankCapital => (Government, Bank),
            Flow::BondInterestToCentralBank => (Government, CentralBank),
            Flow::ReserveInterestPaid => (CentralBank, Bank),
            Flow::ReserveInterestCharged => (Bank, CentralBank),
            Flow::CentralBankRemittance => (CentralBank, Government),
        }
    }

    /// The declared effect on broad money (household and firm deposits):
    /// +1 creates, −1 destroys, 0 moves money between holders or outside it.
    pub fn money_effect(self) -> i64 {
        match self {
            Flow::Wage
            | Flow::Consumption
            | Flow::FirmDividend
            | Flow::IncomeTaxOnInterest
            | Flow::BondInterestToBank
            | Flow::BondInterestToCentralBank
            | Flow::ReserveInterestPaid
            | Flow::ReserveInterestCharged
            | Flow::CentralBankRemittance
            | Flow::BankCapital => 0,
            Flow::GovernmentPurchase
            | Flow::Benefit
            | Flow::BankDividend
            | Flow::DepositInterest
            | Flow::Endowment => 1,
            Flow::IncomeTaxOnWages | Flow::Vat | Flow::CorporateTax | Flow::LoanInterest => -1,
        }
    }
}

/// Who holds a government bond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Holder {
    /// The commercial bank, paying with reserves.
    Bank,
    /// The central bank, crediting the treasury account.
    CentralBank,
}

/// One transfer order, recorded in Phases 1–6 and posted in Phase 7.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Order {
    /// A payment of `amount` from one account to another.
    Pay {
        /// Payer.
        from: Account,
        /// Payee.
        to: Account,
        /// Amount, ≥ 0.
        amount: Money,
        /// What for.
        flow: Flow,
    },
    /// The bank lends to a firm, crediting its deposit (creates money).
    GrantLoan {
        /// Borrower.
        firm: u32,
        /// Principal.
        amount: Money,
    },
    /// A firm repays principal from its deposit (destroys money).
    RepayLoan {
        /// Borrower.
        firm: u32,
        /// Principal repaid.
        amount: Money,
    },
    /// The bank writes off a bankrupt firm's loan against its equity.
    WriteOff {
        /// Borrower.
        firm: u32,
        /// Principal written off.
        amount: Money,
    },
    /// The government sells new bonds to `holder`.
    IssueBonds {
        /// Buyer.
        holder: Holder,
        /// Face value.
        amount: Money,
    },
    /// The government buys back bonds from `holder`.
    RedeemBonds {
        /// Seller.
        holder: Holder,
        /// Face value.
        amount: Money,
    },
    /// The central bank buys bonds from the bank for reserves.
    OpenMarketPurchase {
        /// Face value.
        amount: Money,
    },
}

/// `x` in a currency `factor` times larger, rounded to the nearest minor
/// unit (halves up), for currency reforms.
pub fn redenominated(x: Money, factor: Money) -> Money {
    (x + factor / 2).div_euclid(factor)
}

/// The commercial bank's books.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankBooks {
    /// Reserves at the central bank (negative: an overdraft).
    pub reserves: Money,
    /// Loans to firms.
    pub loans: Money,
    /// Government bonds held.
    pub bonds: Money,
    /// Deposits owed to households and firms.
    pub deposits: Money,
    /// Own funds, changed only by income, expense and write-offs.
    pub equity: Money,
}

/// The central bank's books.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CentralBankBooks {
    /// Government bonds held.
    pub bonds: Money,
    /// Reserves owed to the bank.
    pub reserves: Money,
    /// The treasury account owed to the government.
    pub treasury: Money,
    /// Own funds.
    pub equity: Money,
}

/// The government's books.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GovernmentBooks {
    /// Balance of the treasury account at the central bank.
    pub treasury: Money,
    /// Bonds outstanding.
    pub bonds: Money,
}

/// Every account, per agent and per sector.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    /// Household deposits, by household.
    pub household_deposits: Vec<Money>,
    /// Firm deposits, by firm.
    pub firm_deposits: Vec<Money>,
    /// Firm loans, by firm.
    pub firm_loans: Vec<Money>,
    /// The commercial bank's books.
    pub bank: BankBooks,
    /// The central bank's books.
    pub central_bank: CentralBankBooks,
    /// The government's books.
    pub government: GovernmentBooks,
}

/// Sums recomputed from the per-agent accounts by [`Ledger::totals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// Σ household deposits.
    pub household_deposits: Money,
    /// Σ firm deposits.
    pub firm_deposits: Money,
    /// Σ firm loans.
    pub firm_loans: Money,
}

impl Totals {
    /// Broad money: all household and firm deposits.
    pub fn money(&self) -> Money {
        self.household_deposits + self.firm_deposits
    }
}

impl Ledger {
    /// An empty ledger for `households` households and `firms` firms.
    pub fn new(households: usize, firms: usize) -> Self {
        Self {
            household_deposits: vec![0; households],
            firm_deposits: vec![0; firms],
            firm_loans: vec![0; firms],
            ..Default::default()
        }
    }

    /// The balance of a deposit-like account (equity for the two banks).
    pub fn balance(&self, account: Account) -> Money {
        match account {
            Account::Household(h) => self.household_deposits[h as usize],
            Account::Firm(f) => self.firm_deposits[f as usize],
            Account::Bank => self.bank.equity,
            Account::Government => self.government.treasury,
            Account::CentralBank => self.central_bank.equity,
        }
    }

    /// Sums of the per-agent accounts, recomputed in one pass.
    pub fn totals(&self) -> Totals {
        Totals {
            household_deposits: self.household_deposits.iter().sum(),
            firm_deposits: self.firm_deposits.iter().sum(),
            firm_loans: self.firm_loans.iter().sum(),
        }
    }

    /// Adds `x` (may be negative) to an account and to the books of the
    /// institution that holds it. Returns whether the account banks at the
    /// central bank (true) or the commercial bank (false).
    fn credit(&mut self, account: Account, x: Money) -> bool {
        match account {
            Account::Household(h) => {
                self.household_deposits[h as usize] += x;
                self.bank.deposits += x;
                false
            }
            Account::Firm(f) => {
                self.firm_deposits[f as usize] += x;
                self.bank.deposits += x;
                false
            }
            Account::Bank => {
                self.bank.equity += x;
                false
            }
            Account::Government => {
                self.government.treasury += x;
                self.central_bank.treasury += x;
                true
            }
            Account::CentralBank => {
                self.central_bank.equity += x;
                true
            }
        }
    }

    /// Moves reserves from the central bank side to the commercial bank side
    /// (`x` < 0 moves them the other way).
    fn move_reserves(&mut self, x: Money) {
        self.bank.reserves += x;
        self.central_bank.reserves += x;
    }

    /// Posts one order. Fails on a negative amount or a route its flow kind
    /// does not allow.
    pub fn post(&mut self, order: &Order) -> Result<(), String> {
        match *order {
            Order::Pay {
                from,
                to,
                amount,
                flow,
            } => {
                if amount < 0 {
                    return Err(format!(
                        "{flow:?} of {amount} from {from} to {to} is negative"
                    ));
                }
                if (from.class(), to.class()) != flow.route() {
                    return Err(format!("{flow:?} may not go from {from} to {to}"));
                }
                let payer_at_cb = self.credit(from, -amount);
                let payee_at_cb = self.credit(to, amount);
                match (payer_at_cb, payee_at_cb) {
                    (false, true) => self.move_reserves(-amount),
                    (true, false) => self.move_reserves(amount),
                    _ => {}
                }
            }
            Order::GrantLoan { firm, amount } => {
                self.firm_loans[firm as usize] += amount;
                self.bank.loans += amount;
                self.credit(Account::Firm(firm), amount);
            }
            Order::RepayLoan { firm, amount } => {
                self.firm_loans[firm as usize] -= amount;
                self.bank.loans -= amount;
                self.credit(Account::Firm(firm), -amount);
            }
            Order::WriteOff { firm, amount } => {
                self.firm_loans[firm as usize] -= amount;
                self.bank.loans -= amount;
                self.bank.equity -= amount;
            }
            Order::IssueBonds { holder, amount } | Order::RedeemBonds { holder, amount } => {
                let x = if matches!(order, Order::IssueBonds { .. }) {
                    amount
                } else {
                    -amount
                };
                self.government.bonds += x;
                self.credit(Account::Government, x);
                match holder {
                    Holder::Bank => {
                        self.bank.bonds += x;
                        self.move_reserves(-x);
                    }
                    Holder::CentralBank => self.central_bank.bonds += x,
                }
            }
            Order::OpenMarketPurchase { amount } => {
                self.bank.bonds -= amount;
                self.central_bank.bonds += amount;
                self.move_reserves(amount);
            }
        }
        Ok(())
    }

    /// The declared change of broad money of one order.
    fn money_effect(order: &Order) -> Money {
        match *order {
            Order::Pay { amount, flow, .. } => flow.money_effect() * amount,
            Order::GrantLoan { amount, .. } => amount,
            Order::RepayLoan { amount, .. } => -amount,
            Order::WriteOff { .. }
            | Order::IssueBonds { .. }
            | Order::RedeemBonds { .. }
            | Order::OpenMarketPurchase { .. } => 0,
        }
    }

    /// Checks every identity against recomputed `totals`; `money_before` is
    /// broad money after the previous settlement and `declared_change` the
    /// sum of the declared money effects of the orders posted since.
    pub fn check(
        &self,
        totals: &Totals,
        money_before: Money,
        declared_change: Money,
    ) -> Result<(), String> {
        let bank = &self.bank;
        let cb = &self.central_bank;
        let gov = &self.government;
        let mut failures = Vec::new();
        // The message is built only when the identity fails: a passing
        // check allocates nothing, every tick.
        let mut require = |ok: bool, what: &dyn Fn() -> String| {
            if !ok {
                failures.push(what());
            }
        };
        // Rows of the balance-sheet matrix: each instrument sums to zero.
        let deposits_row = totals.household_deposits + totals.firm_deposits - bank.deposits;
        require(deposits_row == 0, &|| {
            format!(
                "deposits row: households {} + firms {} != bank deposit liabilities {}",
                totals.household_deposits, totals.firm_deposits, bank.deposits
            )
        });
        require(totals.firm_loans == bank.loans, &|| {
            format!(
                "loans row: firm loans {} != bank loan book {}",
                totals.firm_loans, bank.loans
            )
        });
        require(gov.bonds == bank.bonds + cb.bonds, &|| {
            format!(
                "bonds row: government bonds {} != bank {} + central bank {}",
                gov.bonds, bank.bonds, cb.bonds
            )
        });
        require(bank.reserves == cb.reserves, &|| {
            format!(
                "reserves row: bank reserves {} != central bank reserve liabilities {}",
                bank.reserves, cb.reserves
            )
        });
        require(gov.treasury == cb.treasury, &|| {
            format!(
                "treasury row: government {} != central bank treasury liability {}",
                gov.treasury, cb.treasury
            )
        });
        // Columns: each institution's book equity equals assets − liabilities.
        let bank_net = bank.reserves + bank.loans + bank.bonds - bank.deposits;
        require(bank_net == bank.equity, &|| {
            format!(
                "bank column: reserves + loans + bonds − deposits = {bank_net} != equity {}",
                bank.equity
            )
        });
        let cb_net = cb.bonds - cb.reserves - cb.treasury;
        require(cb_net == cb.equity, &|| {
            format!(
                "central bank column: bonds − reserves − treasury = {cb_net} != equity {}",
                cb.equity
            )
        });
        // Net-worth row: financial net worth sums to zero across sectors.
        let net_worth = totals.household_deposits
            + (totals.firm_deposits - totals.firm_loans)
            + bank.equity
            + cb.equity
            + (gov.treasury - gov.bonds);
        require(net_worth == 0, &|| {
            format!("net worth row sums to {net_worth}, not 0")
        });
        // Money is created and destroyed only by the classified flows.
        let change = totals.money() - money_before;
        require(change == declared_change, &|| {
            format!(
                "broad money changed by {change} but the classified flows account for {declared_change}"
            )
        });
        if let Some(h) = self.household_deposits.iter().position(|&d| d < 0) {
            failures.push(format!(
                "household {h} is overdrawn: {}",
                self.household_deposits[h]
            ));
        }
        if let Some(f) = self.firm_deposits.iter().position(|&d| d < 0) {
            failures.push(format!("firm {f} is overdrawn: {}", self.firm_deposits[f]));
        }
        if let Some(f) = self.firm_loans.iter().position(|&l| l < 0) {
            failures.push(format!(
                "firm {f} has a negative loan: {}",
                self.firm_loans[f]
            ));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

/// Flow totals of the last settlement, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowTotals {
    /// Σ payments by [`Flow`] kind.
    pub by_flow: [Money; FLOW_KINDS],
    /// New loans granted.
    pub loans_granted: Money,
    /// Principal repaid.
    pub loans_repaid: Money,
    /// Principal written off.
    pub written_off: Money,
    /// Bonds issued.
    pub bonds_issued: Money,
    /// Bonds redeemed.
    pub bonds_redeemed: Money,
}

impl FlowTotals {
    /// The total of one kind of payment.
    pub fn flow(&self, flow: Flow) -> Money {
        self.by_flow[flow as usize]
    }
}

/// The ledger plus the journal of orders not yet posted.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SettlementSystem {
    ledger: Ledger,
    journal: Vec<Order>,
    totals: Totals,
    flows: FlowTotals,
}

impl SettlementSystem {
    /// An empty system for `households` households and `firms` firms.
    pub fn new(households: usize, firms: usize) -> Self {
        Self {
            ledger: Ledger::new(households, firms),
            journal: Vec::with_capacity(4 * households + 16 * firms + 64),
            totals: Totals::default(),
            flows: FlowTotals::default(),
        }
    }

    /// The settled ledger: balances as of the last settlement.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger, mutably; only for tests that corrupt it on purpose.
    #[doc(hidden)]
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// Per-agent sums as checked at the last settlement.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Flows posted at the last settlement.
    pub fn flows(&self) -> &FlowTotals {
        &self.flows
    }

    /// Orders recorded and not yet posted.
    pub fn pending(&self) -> &[Order] {
        &self.journal
    }

    /// Records a payment; zero amounts are dropped.
    #[inline]
    pub fn pay(&mut self, from: Account, to: Account, amount: Money, flow: Flow) {
        if amount != 0 {
            self.journal.push(Order::Pay {
                from,
                to,
                amount,
                flow,
            });
        }
    }

    /// Records any order.
    #[inline]
    pub fn record(&mut self, order: Order) {
        self.journal.push(order);
    }

    /// A currency reform between ticks: every money stock is divided by
    /// `factor` (rounded to the nearest minor unit) and each sector's books are
    /// rebuilt from the per-agent accounts, with the two banks' equity as the
    /// residual that absorbs the rounding, so every identity still holds
    /// exactly. Only called with an empty journal.
    pub fn redenominate(&mut self, factor: Money) {
        debug_assert!(self.journal.is_empty(), "redenominate between ticks only");
        let scale = |x: Money| redenominated(x, factor);
        let l = &mut self.ledger;
        for v in l
            .household_deposits
            .iter_mut()
            .chain(l.firm_deposits.iter_mut())
            .chain(l.firm_loans.iter_mut())
        {
            *v = scale(*v);
        }
        let totals = l.totals();
        let (bank, cb, gov) = (&mut l.bank, &mut l.central_bank, &mut l.government);
        gov.bonds = scale(gov.bonds);
        gov.treasury = scale(gov.treasury);
        bank.bonds = scale(bank.bonds);
        bank.reserves = scale(bank.reserves);
        bank.deposits = totals.money();
        bank.loans = totals.firm_loans;
        bank.equity = bank.reserves + bank.loans + bank.bonds - bank.deposits;
        cb.bonds = gov.bonds - bank.bonds;
        cb.reserves = bank.reserves;
        cb.treasury = gov.treasury;
        cb.equity = cb.bonds - cb.reserves - cb.treasury;
        self.totals = totals;
    }

    /// Posts every recorded order, then checks all identities. On failure
    /// the message names the identity or the order and accounts at fault.
    pub fn settle(&mut self) -> Result<(), String> {
        let money_before = self.totals.money();
        let mut declared: Money = 0;
        let mut flows = FlowTotals::default();
        for (i, order) in self.journal.iter().enumerate() {
            self.ledger
                .post(order)
                .map_err(|e| format!("order {i}: {e}"))?;
            declared += Ledger::money_effect(order);
            match *order {
                Order::Pay { amount, flow, .. } => flows.by_flow[flow as usize] += amount,
                Order::GrantLoan { amount, .. } => flows.loans_granted += amount,
                Order::RepayLoan { amount, .. } => flows.loans_repaid += amount,
                Order::WriteOff { amount, .. } => flows.written_off += amount,
                Order::IssueBonds { amount, .. } => flows.bonds_issued += amount,
                Order::RedeemBonds { amount, .. } => flows.bonds_redeemed += amount,
                Order::OpenMarketPurchase { .. } => {}
            }
        }
        self.journal.clear();
        self.flows = flows;
        let totals = self.ledger.totals();
        self.ledger.check(&totals, money_before, declared)?;
        self.totals = totals;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn funded() -> SettlementSystem {
        let mut s = SettlementSystem::new(3, 2);
        s.pay(
            Account::Government,
            Account::Household(0),
            1_000,
            Flow::Endowment,
        );
        s.pay(Account::Government, Account::Bank, 500, Flow::BankCapital);
        s.record(Order::IssueBonds {
            holder: Holder::CentralBank,
            amount: 1_500,
        });
        s.record(Order::GrantLoan {
            firm: 1,
            amount: 300,
        });
        s.settle().expect("a consistent opening");
        s
    }

    #[test]
    fn posting_moves_every_side_of_a_payment() {
        let mut s = funded();
        let l = s.ledger();
        assert_eq!(l.household_deposits[0], 1_000);
        assert_eq!(l.firm_deposits[1], 300);
        assert_eq!(l.bank.reserves, 1_500);
        assert_eq!(l.bank.deposits, 1_300);
        assert_eq!(l.government.treasury, 0);
        s.pay(
            Account::Household(0),
            Account::Firm(0),
            200,
            Flow::Consumption,
        );
        s.pay(Account::Firm(0), Account::Government, 20, Flow::Vat);
        s.pay(Account::Firm(1), Account::Bank, 3, Flow::LoanInterest);
        s.record(Order::IssueBonds {
            holder: Holder::Bank,
            amount: 100,
        });
        s.settle().unwrap();
        let l = s.ledger();
        assert_eq!(l.household_deposits[0], 800);
        assert_eq!(l.firm_deposits[0], 180);
        assert_eq!(l.firm_deposits[1], 297);
        assert_eq!(l.bank.equity, 503);
        assert_eq!(l.bank.reserves, 1_500 - 20 - 100);
        assert_eq!(l.government.treasury, 120);
        assert_eq!(s.flows().flow(Flow::Vat), 20);
        assert_eq!(s.totals().money(), 800 + 180 + 297);
    }

    #[test]
    fn a_wrong_route_is_refused() {
        let mut s = funded();
        s.pay(Account::Household(0), Account::Government, 5, Flow::Wage);
        let err = s.settle().unwrap_err();
        assert!(err.contains("Wage may not go from household 0"), "{err}");
    }

    #[test]
    fn the_check_catches_a_corrupted_ledger() {
        let s = funded();
        let base = s.ledger().clone();
        let totals = base.totals();
        let money = totals.money();
        assert!(base.check(&totals, money, 0).is_ok());

        let mut l = base.clone();
        l.household_deposits[2] += 7;
        let err = l.check(&l.totals(), money, 7).unwrap_err();
        assert!(err.contains("deposits row"), "{err}");

        let mut l = base.clone();
        l.firm_loans[0] += 1;
        let err = l.check(&l.totals(), money, 0).unwrap_err();
        assert!(err.contains("loans row"), "{err}");

        let mut l = base.clone();
        l.central_bank.bonds -= 1;
        let err = l.check(&l.totals(), money, 0).unwrap_err();
        assert!(err.contains("bonds row"), "{err}");

        let mut l = base.clone();
        l.bank.reserves += 1;
        let err = l.check(&l.totals(), money, 0).unwrap_err();
        assert!(err.contains("reserves row"), "{err}");

        // Money created without a classified flow.
        let err = base.check(&totals, money - 5, 0).unwrap_err();
        assert!(err.contains("broad money changed by 5"), "{err}");

        // Both sides moved but the bank's equity book was not.
        let mut l = base.clone();
        l.bank.equity += 9;
        let err = l.check(&l.totals(), money, 0).unwrap_err();
        assert!(err.contains("bank column"), "{err}");
    }

    #[test]
    fn money_effects_match_the_postings() {
        // For each flow kind, post one payment along its route and compare
        // the declared money effect with the recomputed change.
        for flow in Flow::ALL {
            let mut s = funded();
            let (from, to) = flow.route();
            let account = |c: Class| match c {
                Class::Household => Account::Household(0),
                Class::Firm => Account::Firm(1),
                Class::Bank => Account::Bank,
                Class::Government => Account::Government,
                Class::CentralBank => Account::CentralBank,
            };
            s.pay(account(from), account(to), 10, flow);
            s.settle()
                .unwrap_or_else(|e| panic!("{flow:?} broke an identity: {e}"));
        }
    }
}
