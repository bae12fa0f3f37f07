//! Indicators of the settled tick: the values `fill_snapshot` publishes.
//!
//! Computed once per tick at the end of Settlement from the flow totals the
//! `SettlementSystem` posted, running totals the phases keep, and one pass
//! over the households into reused scratch buffers (no copy of the agents,
//! no allocation after the first tick). Pure helpers (Gini, percentiles)
//! are unit-tested here.

use crate::pb;

/// Gini coefficient of `sorted` (ascending, non-negative values), in [0, 1].
/// 0 for an empty slice or an all-zero one.
pub fn gini_sorted(sorted: &[i64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let mut weighted = 0.0_f64;
    let mut total = 0.0_f64;
    for (i, &x) in sorted.iter().enumerate() {
        let x = x.max(0) as f64;
        weighted += (i as f64 + 1.0) * x;
        total += x;
    }
    if total <= 0.0 {
        return 0.0;
    }
    let n = n as f64;
    ((2.0 * weighted) / (n * total) - (n + 1.0) / n).clamp(0.0, 1.0)
}

/// The `p`-quantile (0 ≤ p ≤ 1) of `sorted` by the nearest-rank rule.
pub fn percentile_sorted(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Everything the snapshot reports about the economy, in currency units.
/// Checkpointed (as protobuf bytes), so a resumed run's first snapshot shows
/// the checkpoint tick's indicators rather than zeros.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Indicators {
    /// Macro indicators.
    #[serde(with = "protobuf_bytes")]
    pub macro_: pb::MacroIndicators,
    /// Agent statistics.
    #[serde(with = "protobuf_bytes")]
    pub agents: pb::AgentStatistics,
    /// Government and central bank.
    #[serde(with = "protobuf_bytes")]
    pub government: pb::GovernmentIndicators,
}

/// Serde for a protobuf message as its encoded bytes (the generated serde
/// impls speak only JSON).
mod protobuf_bytes {
    use prost::Message;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<M: Message, S: Serializer>(message: &M, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&message.encode_to_vec())
    }

    pub fn deserialize<'de, M: Message + Default, D: Deserializer<'de>>(
        d: D,
    ) -> Result<M, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        M::decode(bytes.as_slice()).map_err(serde::de::Error::custom)
    }
}

/// Reused buffers for the distribution statistics.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    /// Household wealth, sorted each tick.
    pub wealth: Vec<i64>,
    /// Household income, sorted each tick.
    pub income: Vec<i64>,
    /// The radix sort's second buffer and histograms.
    pub radix: RadixBuffers,
}

const RADIX_BITS: u32 = 11;
const RADIX_BUCKETS: usize = 1 << RADIX_BITS;
const RADIX_PASSES: usize = 64_usize.div_ceil(RADIX_BITS as usize);

/// Reused memory of [`radix_sort`].
#[derive(Debug, Clone, Default)]
pub struct RadixBuffers {
    spare: Vec<i64>,
    counts: Vec<[u32; RADIX_BUCKETS]>,
}

/// Sorts `values` ascending with an LSD radix sort (11-bit digits, passes
/// whose digit is the same for every value skipped), using reused buffers. About five linear passes instead of a comparison sort: the
/// distribution statistics are the largest cost of a tick otherwise.
pub fn radix_sort(values: &mut Vec<i64>, buffers: &mut RadixBuffers) {
    const BITS: u32 = RADIX_BITS;
    const BUCKETS: usize = RADIX_BUCKETS;
    let n = values.len();
    if n < 64 {
        values.sort_unstable();
        return;
    }
    let key = |v: i64| (v as u64) ^ (1 << 63);
    let RadixBuffers { spare, counts } = buffers;
    spare.clear();
    spare.resize(n, 0);
    // All digit histograms in one read pass.
    counts.resize(RADIX_PASSES, [0; BUCKETS]);
    for hist in counts.iter_mut() {
        hist.fill(0);
    }
    for &v in values.iter() {
        let k = key(v);
        for (pass, hist) in counts.iter_mut().enumerate() {
            hist[((k >> (pass as u32 * BITS)) as usize) & (BUCKETS - 1)] += 1;
        }
    }
    for (pass, hist) in counts.iter_mut().enumerate() {
        if hist.iter().any(|&c| c as usize == n) {
            continue;
        }
        let mut sum = 0;
        for c in hist.iter_mut() {
            let here = *c;
            *c = sum;
            sum += here;
        }
        let shift = pass as u32 * BITS;
        for &v in values.iter() {
            let d = ((key(v) >> shift) as usize) & (BUCKETS - 1);
            spare[hist[d] as usize] = v;
            hist[d] += 1;
        }
        std::mem::swap(values, spare);
    }
}

/// Gini and percentiles of household wealth and income, sorting the
/// scratch buffers in place.
pub fn distribution(scratch: &mut Scratch, agents: &mut pb::AgentStatistics, scale: f64) {
    radix_sort(&mut scratch.wealth, &mut scratch.radix);
    radix_sort(&mut scratch.income, &mut scratch.radix);
    let w = &scratch.wealth;
    agents.wealth_gini = gini_sorted(w);
    agents.income_gini = gini_sorted(&scratch.income);
    agents.wealth_p10 = percentile_sorted(w, 0.10) as f64 / scale;
    agents.wealth_p50 = percentile_sorted(w, 0.50) as f64 / scale;
    agents.wealth_p90 = percentile_sorted(w, 0.90) as f64 / scale;
    agents.wealth_p99 = percentile_sorted(w, 0.99) as f64 / scale;
}

impl super::Economy {
    /// End of Settlement: the tick's indicators, from the posted flow
    /// totals, the running totals and one pass over the households.
    pub(super) fn compute_indicators(&mut self) {
        use super::{Flow, MONEY_SCALE, to_units};
        let flows = *self.settlement.flows();
        let ledger = self.settlement.ledger();
        let t = &self.tick_totals;
        let s = &mut self.state;
        let n_h = self.households.len();

        let real_gdp = t.units_sold;
        let nominal_gdp = to_units(t.household_consumption + t.government_purchases);
        if real_gdp > 0.0 && t.net_sales_value > 0.0 {
            s.price_level = t.net_sales_value / real_gdp;
        }
        let previous = s.price_history[12];
        s.price_history.rotate_left(1);
        s.price_history[12] = s.price_level;
        let inflation = ratio_change(s.price_level, previous);
        s.inflation_12 = ratio_change(s.price_level, s.price_history[0]);
        let growth = ratio_change(real_gdp, s.real_gdp);
        if self.tick > 0 {
            s.real_gdp = real_gdp;
        }
        let employed = self
            .households
            .employer
            .iter()
            .filter(|&&e| e != super::UNEMPLOYED)
            .count() as u64;
        s.unemployment = if n_h > 0 {
            1.0 - employed as f64 / n_h as f64
        } else {
            0.0
        };

        self.scratch.wealth.clear();
        self.scratch
            .wealth
            .extend_from_slice(&ledger.household_deposits);
        self.scratch.income.clear();
        self.scratch
            .income
            .extend_from_slice(&self.households.income);
        let mut agents = pb::AgentStatistics {
            households: n_h as u64,
            employed,
            firms: self.firms.len() as u64,
            bankruptcies: t.bankruptcies,
            bankruptcies_total: self.bankruptcies_total,
            unemployed_consumption: if t.unemployed_at_market > 0 {
                to_units(t.unemployed_consumption) / t.unemployed_at_market as f64
            } else {
                0.0
            },
            inventories: self.firms.iter().map(|f| f.inventory).sum(),
            ..Default::default()
        };
        distribution(&mut self.scratch, &mut agents, MONEY_SCALE);

        let income_tax = flows.flow(Flow::IncomeTaxOnWages) + flows.flow(Flow::IncomeTaxOnInterest);
        let corporate = flows.flow(Flow::CorporateTax);
        let vat = flows.flow(Flow::Vat);
        let taxes = income_tax + corporate + vat;
        let transfers = flows.flow(Flow::Benefit);
        let spending = flows.flow(Flow::GovernmentPurchase)
            + transfers
            + flows.flow(Flow::BondInterestToBank)
            + flows.flow(Flow::BondInterestToCentralBank);
        let revenue = taxes + flows.flow(Flow::CentralBankRemittance);
        let government = pb::GovernmentIndicators {
            tax_revenue: to_units(taxes),
            spending: to_units(spending),
            deficit: to_units(spending - revenue),
            debt: to_units(ledger.government.bonds),
            policy_rate: s.policy_rate,
            transfers: to_units(transfers),
            income_tax: to_units(income_tax),
            corporate_tax: to_units(corporate),
            vat: to_units(vat),
        };
        let macro_ = pb::MacroIndicators {
            nominal_gdp,
            real_gdp,
            real_gdp_growth: growth,
            price_level: s.price_level,
            inflation,
            unemployment_rate: s.unemployment,
            average_wage: if t.employed > 0 {
                to_units(t.wage_bill) / t.employed as f64
            } else {
                to_units(s.average_wage)
            },
            money_supply: to_units(self.settlement.totals().money()),
            bank_loans: to_units(ledger.bank.loans),
            household_consumption: to_units(t.household_consumption),
            new_lending: to_units(flows.loans_granted),
            inflation_12_tick: s.inflation_12,
        };
        self.indicators = Indicators {
            macro_,
            agents,
            government,
        };
    }
}

/// `now / before − 1`, or 0 when `before` is not positive.
fn ratio_change(now: f64, before: f64) -> f64 {
    if before > 0.0 && now.is_finite() {
        now / before - 1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_of_equal_values_is_zero() {
        assert_eq!(gini_sorted(&[5, 5, 5, 5]), 0.0);
        assert_eq!(gini_sorted(&[]), 0.0);
        assert_eq!(gini_sorted(&[0, 0]), 0.0);
    }

    #[test]
    fn gini_of_one_owner_approaches_one() {
        let mut v = vec![0; 99];
        v.push(100);
        let g = gini_sorted(&v);
        assert!((g - 0.99).abs() < 1e-12, "{g}");
    }

    #[test]
    fn gini_matches_the_mean_absolute_difference() {
        let v = [1_i64, 2, 3, 7, 20];
        let n = v.len() as f64;
        let mean = v.iter().sum::<i64>() as f64 / n;
        let mut mad = 0.0;
        for a in v {
            for b in v {
                mad += (a - b).abs() as f64;
            }
        }
        let expected = mad / (2.0 * n * n * mean);
        assert!((gini_sorted(&v) - expected).abs() < 1e-12);
    }

    #[test]
    fn radix_sort_agrees_with_the_standard_sort() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut values: Vec<i64> = (0..5_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match i % 4 {
                    0 => (x >> 20) as i64,
                    1 => -((x >> 30) as i64),
                    2 => (x % 1_000) as i64,
                    _ => x as i64,
                }
            })
            .collect();
        values.extend([i64::MIN, i64::MAX, 0, 0]);
        let mut expected = values.clone();
        expected.sort_unstable();
        let mut buffers = RadixBuffers::default();
        radix_sort(&mut values, &mut buffers);
        assert_eq!(values, expected);
        let mut same = vec![42_i64; 1_000];
        radix_sort(&mut same, &mut buffers);
        assert!(same.iter().all(|&v| v == 42));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 0.10), 10);
        assert_eq!(percentile_sorted(&v, 0.50), 50);
        assert_eq!(percentile_sorted(&v, 0.99), 99);
        assert_eq!(percentile_sorted(&v, 0.0), 1);
        assert_eq!(percentile_sorted(&v, 1.0), 100);
        assert_eq!(percentile_sorted(&[], 0.5), 0);
    }
}
