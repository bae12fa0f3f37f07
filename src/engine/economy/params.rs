//! `Params`: the [`ParamId`] handles the economy reads every tick.
//!
//! Handles are resolved once in `Economy::new`; values are read through the
//! registry at the moment a phase needs them and never copied into the model,
//! so a command applied in Phase 0 takes effect in the same tick.

use crate::engine::{GlobalRegistry, ParamId, Rejection, ValueType};

/// One handle per parameter the model reads.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Params {
    /// `agents.households` (integer, start-up only).
    pub households: ParamId,
    /// `agents.firms` (integer, start-up only).
    pub firms: ParamId,
    /// `fiscal.income_tax_rate`.
    pub income_tax_rate: ParamId,
    /// `fiscal.corporate_tax_rate`.
    pub corporate_tax_rate: ParamId,
    /// `fiscal.vat_rate`.
    pub vat_rate: ParamId,
    /// `fiscal.government_spending_ratio`.
    pub government_spending_ratio: ParamId,
    /// `welfare.unemployment_benefit_ratio`.
    pub unemployment_benefit_ratio: ParamId,
    /// `monetary.policy_rate`.
    pub policy_rate: ParamId,
    /// `monetary.taylor_rule` (flag).
    pub taylor_rule: ParamId,
    /// `monetary.inflation_target`.
    pub inflation_target: ParamId,
    /// `bank.loan_spread`.
    pub loan_spread: ParamId,
    /// `bank.capital_ratio`.
    pub capital_ratio: ParamId,
    /// `labor.minimum_wage`.
    pub minimum_wage: ParamId,
    /// `households.propensity_to_consume`.
    pub propensity_to_consume: ParamId,
    /// `households.wealth_propensity`.
    pub wealth_propensity: ParamId,
    /// `households.rate_sensitivity`.
    pub rate_sensitivity: ParamId,
    /// `firms.markup`.
    pub markup: ParamId,
}

impl Params {
    /// Resolves every handle, failing if a key is missing or mistyped.
    pub fn resolve(registry: &GlobalRegistry) -> Result<Self, Rejection> {
        let number = |key: &str| registry.id(key, ValueType::Number);
        Ok(Self {
            households: registry.id("agents.households", ValueType::Integer)?,
            firms: registry.id("agents.firms", ValueType::Integer)?,
            income_tax_rate: number("fiscal.income_tax_rate")?,
            corporate_tax_rate: number("fiscal.corporate_tax_rate")?,
            vat_rate: number("fiscal.vat_rate")?,
            government_spending_ratio: number("fiscal.government_spending_ratio")?,
            unemployment_benefit_ratio: number("welfare.unemployment_benefit_ratio")?,
            policy_rate: number("monetary.policy_rate")?,
            taylor_rule: registry.id("monetary.taylor_rule", ValueType::Flag)?,
            inflation_target: number("monetary.inflation_target")?,
            loan_spread: number("bank.loan_spread")?,
            capital_ratio: number("bank.capital_ratio")?,
            minimum_wage: number("labor.minimum_wage")?,
            propensity_to_consume: number("households.propensity_to_consume")?,
            wealth_propensity: number("households.wealth_propensity")?,
            rate_sensitivity: number("households.rate_sensitivity")?,
            markup: number("firms.markup")?,
        })
    }
}
