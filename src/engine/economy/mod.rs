//! The economy behind phases 1–7. Placeholder: a minimal model that changes
//! every tick; the stock-flow consistent agent-based model replaces it.

use crate::{
    engine::{GlobalRegistry, ParamId, Phase, ValueType},
    pb,
};

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
}

/// All agents and their balance sheets.
#[derive(Debug, Clone)]
pub struct Economy {
    income_tax: ParamId,
    output: f64,
    revenue: f64,
    tick: u64,
}

impl Economy {
    /// Builds the initial economy from the registry's values.
    pub fn new(registry: &GlobalRegistry, _seed: u64) -> Result<Self, EconomyError> {
        Ok(Self {
            income_tax: registry.id("fiscal.income_tax_rate", ValueType::Number)?,
            output: 100.0,
            revenue: 0.0,
            tick: 0,
        })
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
            Phase::Production => self.output *= 1.001,
            Phase::Fiscal => self.revenue = self.output * registry.number(self.income_tax),
            _ => {}
        }
        Ok(())
    }

    /// Writes the economy's indicators into `snapshot`.
    pub fn fill_snapshot(&self, snapshot: &mut pb::WatchtowerSnapshot) {
        snapshot.r#macro = Some(pb::MacroIndicators {
            nominal_gdp: self.output,
            real_gdp: self.output,
            ..Default::default()
        });
        snapshot.government = Some(pb::GovernmentIndicators {
            tax_revenue: self.revenue,
            ..Default::default()
        });
        snapshot.agents = Some(pb::AgentStatistics::default());
    }
}
