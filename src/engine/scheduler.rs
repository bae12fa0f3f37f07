//! `TickScheduler`: one tick is nine phases in a fixed order (spec §3.1, §4).
//!
//! The order is plain data ([`Phase::ALL`]); each phase runs the hooks
//! registered for it, in registration order. Phase 0 and Phase 8 are where the
//! bridge attaches (spec §4.3): Intercept drains the command queue before any
//! simulation step reads a parameter, and Broadcast publishes a snapshot only
//! after Settlement has finished, so no observer ever sees a half-settled tick.
//! Runs on the engine thread only.

use std::fmt;

/// The phases of one tick, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Phase 0: drain the `CommandQueue` and apply each command through the
    /// `GlobalRegistry`, recording a `GodResponse` in the `AuditLog`. Every
    /// later phase of the tick sees the new values.
    Intercept = 0,
    /// Phase 1: firms form sales expectations from last tick's sales and set
    /// prices as a markup over unit labour cost; the bank and households update
    /// their expectations.
    Expectations = 1,
    /// Phase 2: firms post vacancies or fire, unemployed households search and
    /// match, wages adjust to labour-market tightness and the minimum wage.
    LaborMarket = 2,
    /// Phase 3: firms produce with their workforce and accrue the wage bill.
    Production = 3,
    /// Phase 4: households visit several firms and buy from the cheaper ones
    /// that have stock; the government buys its purchases.
    GoodsMarket = 4,
    /// Phase 5: income tax, corporate tax, VAT, unemployment benefits and
    /// government purchases, read from the registry this tick; the deficit is
    /// financed by issuing bonds.
    Fiscal = 5,
    /// Phase 6: the central bank sets the policy rate; the bank prices and
    /// rations loans, collects interest and repayments, and writes off the
    /// loans of bankrupt firms.
    MonetaryCredit = 6,
    /// Phase 7: the `SettlementSystem` posts every transfer of the tick to the
    /// ledger and checks the balance-sheet identities; a violation halts the
    /// engine.
    Settlement = 7,
    /// Phase 8: capture an immutable snapshot of the settled state and publish
    /// it to the `TelemetryExchange`.
    Broadcast = 8,
}

impl Phase {
    /// Every phase, in tick order.
    pub const ALL: [Phase; 9] = [
        Phase::Intercept,
        Phase::Expectations,
        Phase::LaborMarket,
        Phase::Production,
        Phase::GoodsMarket,
        Phase::Fiscal,
        Phase::MonetaryCredit,
        Phase::Settlement,
        Phase::Broadcast,
    ];

    /// The simulation steps: phases 1 to 7.
    pub const SIMULATION: [Phase; 7] = [
        Phase::Expectations,
        Phase::LaborMarket,
        Phase::Production,
        Phase::GoodsMarket,
        Phase::Fiscal,
        Phase::MonetaryCredit,
        Phase::Settlement,
    ];

    /// The phase's number, 0 to 8.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phase {} ({:?})", self.index(), self)
    }
}

/// A step registered for one phase. It gets the whole world mutably, since
/// only one phase runs at a time on the engine thread.
pub type Hook<W, E> = Box<dyn FnMut(&mut W) -> Result<(), E> + Send>;

/// Runs the registered hooks phase by phase.
pub struct TickScheduler<W, E> {
    hooks: [Vec<Hook<W, E>>; 9],
}

impl<W, E> Default for TickScheduler<W, E> {
    fn default() -> Self {
        Self {
            hooks: Default::default(),
        }
    }
}

impl<W, E> fmt::Debug for TickScheduler<W, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: Vec<_> = Phase::ALL
            .iter()
            .map(|p| (p, self.hooks[p.index()].len()))
            .collect();
        f.debug_struct("TickScheduler")
            .field("hooks", &counts)
            .finish()
    }
}

impl<W, E> TickScheduler<W, E> {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `hook` to run in `phase`, after the hooks already there.
    pub fn register_hook(
        &mut self,
        phase: Phase,
        hook: impl FnMut(&mut W) -> Result<(), E> + Send + 'static,
    ) {
        self.hooks[phase.index()].push(Box::new(hook));
    }

    /// How many hooks `phase` has.
    pub fn hook_count(&self, phase: Phase) -> usize {
        self.hooks[phase.index()].len()
    }

    /// Runs one tick: every phase in order. Stops at the first error, leaving
    /// the later phases of the tick unrun.
    pub fn run_tick(&mut self, world: &mut W) -> Result<(), E> {
        for phase in Phase::ALL {
            for hook in &mut self.hooks[phase.index()] {
                hook(world)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_run_in_order_whatever_the_registration_order() {
        let mut scheduler = TickScheduler::<Vec<Phase>, ()>::new();
        for phase in Phase::ALL.into_iter().rev() {
            scheduler.register_hook(phase, move |log: &mut Vec<Phase>| {
                log.push(phase);
                Ok(())
            });
        }
        let mut log = Vec::new();
        scheduler.run_tick(&mut log).unwrap();
        assert_eq!(log, Phase::ALL);
    }

    #[test]
    fn an_error_stops_the_tick() {
        let mut scheduler = TickScheduler::<Vec<Phase>, &str>::new();
        scheduler.register_hook(Phase::Settlement, |_| Err("ledger"));
        scheduler.register_hook(Phase::Broadcast, |log: &mut Vec<Phase>| {
            log.push(Phase::Broadcast);
            Ok(())
        });
        let mut log = Vec::new();
        assert_eq!(scheduler.run_tick(&mut log), Err("ledger"));
        assert!(log.is_empty());
    }
}
