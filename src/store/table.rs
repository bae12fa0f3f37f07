//! The telemetry table: one row per recorded tick, with `tick`, `time`
//! (UTC), every indicator as `<group>.<field>` and every parameter as
//! `param.<key>` (the columns of the Python client's `frame()`), stored as
//! Parquet chunks `telemetry/ticks-FIRST-LAST.parquet` in the run directory.
//!
//! Pure conversions between snapshots, Arrow record batches and chunk files;
//! the `watchtower-telemetry` thread ([`super::recorder`]) writes with them
//! and `watchtower export` ([`super::export`]) reads with them. Never runs on
//! the engine thread.

use std::{
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    TimestampMillisecondArray, UInt64Array, cast::AsArray, types::UInt64Type,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::{
    arrow::{ArrowWriter, arrow_reader::ParquetRecordBatchReaderBuilder},
    basic::Compression,
    file::properties::WriterProperties,
};

use super::StoreError;
use crate::pb::{WatchtowerSnapshot, parameter_value::Kind};

/// The first column: the tick.
pub const TICK: &str = "tick";
/// The second column: when the snapshot was captured, UTC.
pub const TIME: &str = "time";
/// The prefix of a parameter's column.
pub const PARAM_PREFIX: &str = "param.";

/// How an indicator column is read from a snapshot, by its Arrow type.
#[derive(Clone, Copy)]
enum Getter {
    /// A real number (Float64).
    Real(fn(&WatchtowerSnapshot) -> f64),
    /// A count (UInt64).
    Count(fn(&WatchtowerSnapshot) -> u64),
    /// An enum's number (Int32).
    Code(fn(&WatchtowerSnapshot) -> i32),
}

/// Expands `"group" field { name: Kind, … }` into `(column, Getter)` pairs;
/// a missing group reads as its defaults, as protobuf would.
macro_rules! indicators {
    ($($group:literal $message:ident { $($field:ident: $kind:ident),* $(,)? })*) => {
        &[$($(
            (
                concat!($group, ".", stringify!($field)),
                Getter::$kind(|s| s.$message.as_ref().map_or_else(Default::default, |g| g.$field)),
            ),
        )*)*]
    };
}

/// Every indicator column, in order. A test checks this list against the
/// proto, so a new field cannot be left out unnoticed.
const INDICATORS: &[(&str, Getter)] = indicators! {
    "macro" r#macro {
        nominal_gdp: Real, real_gdp: Real, real_gdp_growth: Real, price_level: Real,
        inflation: Real, unemployment_rate: Real, average_wage: Real, money_supply: Real,
        bank_loans: Real, household_consumption: Real, new_lending: Real,
        inflation_12_tick: Real,
    }
    "agents" agents {
        households: Count, employed: Count, firms: Count, bankruptcies: Count,
        bankruptcies_total: Count, wealth_gini: Real, income_gini: Real, wealth_p10: Real,
        wealth_p50: Real, wealth_p90: Real, wealth_p99: Real, unemployed_consumption: Real,
        inventories: Real,
    }
    "government" government {
        tax_revenue: Real, spending: Real, deficit: Real, debt: Real, policy_rate: Real,
        transfers: Real, income_tax: Real, corporate_tax: Real, vat: Real,
    }
    "engine" engine {
        measured_tps: Real, last_tick_duration_us: Real, queue_depth: Count,
        commands_applied: Count, commands_rejected: Count, target_tps: Real, seed: Count,
        run_state: Code,
    }
};

/// The type of a parameter's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamType {
    Number,
    Integer,
    Flag,
}

/// The columns of one run's table: fixed by its first snapshot, since a
/// run's parameters and their types never change.
#[derive(Debug, Clone)]
pub struct TableLayout {
    schema: SchemaRef,
    params: Vec<(String, ParamType)>,
}

impl TableLayout {
    /// The layout for the run `snapshot` comes from.
    pub fn of(snapshot: &WatchtowerSnapshot) -> Self {
        let mut params: Vec<(String, ParamType)> = snapshot
            .parameters
            .iter()
            .filter_map(|(key, value)| {
                let kind = match value.kind? {
                    Kind::Number(_) => ParamType::Number,
                    Kind::Integer(_) => ParamType::Integer,
                    Kind::Flag(_) => ParamType::Flag,
                };
                Some((key.clone(), kind))
            })
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let mut fields = vec![
            Field::new(TICK, DataType::UInt64, false),
            Field::new(
                TIME,
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ];
        fields.extend(INDICATORS.iter().map(|(name, getter)| {
            let data_type = match getter {
                Getter::Real(_) => DataType::Float64,
                Getter::Count(_) => DataType::UInt64,
                Getter::Code(_) => DataType::Int32,
            };
            Field::new(*name, data_type, false)
        }));
        fields.extend(params.iter().map(|(key, kind)| {
            let data_type = match kind {
                ParamType::Number => DataType::Float64,
                ParamType::Integer => DataType::Int64,
                ParamType::Flag => DataType::Boolean,
            };
            Field::new(format!("{PARAM_PREFIX}{key}"), data_type, true)
        }));
        Self {
            schema: Arc::new(Schema::new(fields)),
            params,
        }
    }

    /// One record batch, a row per snapshot, in the order given.
    pub fn batch(&self, rows: &[Arc<WatchtowerSnapshot>]) -> Result<RecordBatch, StoreError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|s| s.tick))),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|s| s.captured_at_unix_ms),
                )
                .with_timezone("UTC"),
            ),
        ];
        columns.extend(
            INDICATORS
                .iter()
                .map(|(_, getter)| indicator(*getter, rows)),
        );
        columns.extend(
            self.params
                .iter()
                .map(|(key, kind)| param(key, *kind, rows)),
        );
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

fn indicator(getter: Getter, rows: &[Arc<WatchtowerSnapshot>]) -> ArrayRef {
    match getter {
        Getter::Real(get) => Arc::new(Float64Array::from_iter_values(rows.iter().map(|s| get(s)))),
        Getter::Count(get) => Arc::new(UInt64Array::from_iter_values(rows.iter().map(|s| get(s)))),
        Getter::Code(get) => Arc::new(Int32Array::from_iter_values(rows.iter().map(|s| get(s)))),
    }
}

fn param(key: &str, kind: ParamType, rows: &[Arc<WatchtowerSnapshot>]) -> ArrayRef {
    let values = rows
        .iter()
        .map(|s| s.parameters.get(key).and_then(|v| v.kind));
    match kind {
        ParamType::Number => Arc::new(Float64Array::from_iter(values.map(|k| match k {
            Some(Kind::Number(x)) => Some(x),
            _ => None,
        }))),
        ParamType::Integer => Arc::new(Int64Array::from_iter(values.map(|k| match k {
            Some(Kind::Integer(x)) => Some(x),
            _ => None,
        }))),
        ParamType::Flag => Arc::new(BooleanArray::from_iter(values.map(|k| match k {
            Some(Kind::Flag(x)) => Some(x),
            _ => None,
        }))),
    }
}

/// The tick column of a batch of this table.
pub fn ticks(batch: &RecordBatch) -> Result<&UInt64Array, StoreError> {
    batch
        .column_by_name(TICK)
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        .ok_or_else(|| StoreError::Corrupt(format!("a telemetry chunk has no `{TICK}` column")))
}

/// A chunk file of the table, by the ticks it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its first tick.
    pub first: u64,
    /// Its last tick.
    pub last: u64,
    /// The file.
    pub path: PathBuf,
}

impl Chunk {
    /// The name of the chunk holding ticks `first` to `last`.
    pub fn file_name(first: u64, last: u64) -> String {
        format!("ticks-{first:09}-{last:09}.parquet")
    }

    fn parse(path: PathBuf) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let (first, last) = name
            .strip_prefix("ticks-")?
            .strip_suffix(".parquet")?
            .split_once('-')?;
        Some(Self {
            first: first.parse().ok()?,
            last: last.parse().ok()?,
            path,
        })
    }
}

/// The finished chunks in `dir`, by first tick; none if `dir` is missing.
pub fn chunks(dir: &Path) -> Result<Vec<Chunk>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut chunks = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        chunks.extend(Chunk::parse(entry.path()));
    }
    chunks.sort_by_key(|c| c.first);
    Ok(chunks)
}

/// Writes `batch` (ticks `first` to `last`) as one finished chunk in `dir`:
/// written under a hidden temporary name (which Parquet readers skip), synced
/// and renamed, so a reader never sees half a file.
pub fn write_chunk(dir: &Path, batch: &RecordBatch) -> Result<PathBuf, StoreError> {
    let ticks = ticks(batch)?;
    let (Some(first), Some(last)) = (ticks.values().first(), ticks.values().last()) else {
        return Err(StoreError::Corrupt("an empty telemetry chunk".into()));
    };
    let name = Chunk::file_name(*first, *last);
    let mut bytes = Vec::new();
    write_parquet(&mut bytes, batch.schema(), std::slice::from_ref(batch))?;
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    super::write_via(&tmp, &path, &bytes)?;
    Ok(path)
}

/// Writes `batches` as one Parquet file (snappy; the writer's default row
/// groups of up to a million rows).
pub fn write_parquet<W: Write + Send>(
    out: W,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), StoreError> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(out, schema, Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(())
}

/// Every row group of the chunk at `path`.
pub fn read_chunk(path: &Path) -> Result<Vec<RecordBatch>, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// Removes temporary files a crash left in `dir`.
pub fn remove_unfinished(dir: &Path) -> Result<(), StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".parquet.tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names of `message` in the proto file.
    fn proto_fields(message: &str) -> Vec<String> {
        let proto = include_str!("../../proto/watchtower/v1/watchtower.proto");
        let start = proto
            .find(&format!("message {message} {{"))
            .unwrap_or_else(|| panic!("no message {message}"));
        let body = &proto[start..start + proto[start..].find("\n}").unwrap()];
        body.lines()
            .filter(|l| !l.trim_start().starts_with("//") && l.contains(" = "))
            .map(|l| {
                let lhs = l.split(" = ").next().unwrap();
                lhs.split_whitespace().last().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn every_indicator_field_of_the_proto_is_a_column() {
        let mut expected = Vec::new();
        for (group, message) in [
            ("macro", "MacroIndicators"),
            ("agents", "AgentStatistics"),
            ("government", "GovernmentIndicators"),
            ("engine", "EngineStatistics"),
        ] {
            expected.extend(
                proto_fields(message)
                    .into_iter()
                    .map(|f| format!("{group}.{f}")),
            );
        }
        let columns: Vec<String> = INDICATORS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(columns, expected);
    }

    #[test]
    fn chunk_names_round_trip_and_sort_by_first_tick() {
        let name = Chunk::file_name(256, 511);
        assert_eq!(name, "ticks-000000256-000000511.parquet");
        let chunk = Chunk::parse(PathBuf::from(&name)).unwrap();
        assert_eq!((chunk.first, chunk.last), (256, 511));
        assert!(Chunk::parse(PathBuf::from(format!(".{name}.tmp"))).is_none());
    }
}
