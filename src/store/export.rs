//! `watchtower export RUN_DIR`: the run's telemetry table (its finished
//! Parquet chunks, see [`super::table`]) as one Parquet or CSV file,
//! optionally cut to a range of ticks. Runs on the caller's thread, without
//! a server; works on a run that is still running or was killed (it reads
//! the chunks finished so far).

use std::{io::Write, path::Path, sync::Arc};

use arrow_array::{
    ArrayRef, BooleanArray, RecordBatch, cast::AsArray, types::TimestampMillisecondType,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_select::filter::filter_record_batch;

use super::{StoreError, manifest, table};
use crate::config::ExportFormat;

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The run directory or its table could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--from-tick` is after `--to-tick`.
    #[error("--from-tick {from} is after --to-tick {to}")]
    EmptyRange {
        /// `--from-tick`.
        from: u64,
        /// `--to-tick`.
        to: u64,
    },
    /// The directory is not a run's.
    #[error(
        "{} is not a run directory (it has no {}): name one under --data-dir, \
         DATA_DIR/RUN_ID",
        dir.display(), manifest::MANIFEST_FILE
    )]
    NotARun {
        /// The directory named.
        dir: std::path::PathBuf,
    },
    /// The run has no finished chunk yet.
    #[error(
        "{} has no telemetry table yet: a run records it in chunks of {} rows, the last at \
         shutdown (`--data-dir off` records nothing)",
        dir.display(), super::recorder::ROWS_PER_CHUNK
    )]
    NothingRecorded {
        /// The table's directory.
        dir: std::path::PathBuf,
    },
    /// No recorded tick is in the range asked for.
    #[error("no recorded tick is in {from}..={to}; the run has ticks {first}..={last}")]
    OutOfRange {
        /// The range's first tick.
        from: u64,
        /// The range's last tick.
        to: u64,
        /// The first recorded tick.
        first: u64,
        /// The last recorded tick.
        last: u64,
    },
    /// The output could not be written.
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
    /// The CSV encoder failed.
    #[error("cannot write CSV: {0}")]
    Csv(#[from] ArrowError),
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Rows written.
    pub rows: usize,
    /// The first tick written.
    pub first: u64,
    /// The last tick written.
    pub last: u64,
}

/// Writes the table of the run in `run_dir`, ticks `from` to `to` (both
/// inclusive; `None`: unbounded), to `out` in `format`.
pub fn export(
    run_dir: &Path,
    format: ExportFormat,
    from: Option<u64>,
    to: Option<u64>,
    out: impl Write + Send,
) -> Result<ExportReport, ExportError> {
    let (from, to) = (from.unwrap_or(0), to.unwrap_or(u64::MAX));
    if from > to {
        return Err(ExportError::EmptyRange { from, to });
    }
    if !run_dir.join(manifest::MANIFEST_FILE).is_file() {
        return Err(ExportError::NotARun {
            dir: run_dir.to_owned(),
        });
    }
    let dir = run_dir.join(manifest::TELEMETRY_DIR);
    let chunks = table::chunks(&dir)?;
    let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else {
        return Err(ExportError::NothingRecorded { dir });
    };
    let (recorded_first, recorded_last) = (first.first, last.last);
    let mut schema: Option<SchemaRef> = None;
    let mut batches = Vec::new();
    for chunk in chunks.iter().filter(|c| c.last >= from && c.first <= to) {
        for batch in table::read_chunk(&chunk.path)? {
            schema.get_or_insert_with(|| batch.schema());
            batches.push(in_range(&batch, from, to)?);
        }
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let ticks = batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(table::ticks)
        .collect::<Result<Vec<_>, _>>()?;
    let (Some(schema), Some(first), Some(last)) = (
        schema,
        ticks.first().map(|t| t.value(0)),
        ticks.last().map(|t| t.value(t.len() - 1)),
    ) else {
        return Err(ExportError::OutOfRange {
            from,
            to,
            first: recorded_first,
            last: recorded_last,
        });
    };
    let batches = rechecked(&schema, batches)?;
    write(format, out, schema, &batches)?;
    Ok(ExportReport { rows, first, last })
}

/// The rows of `batch` whose tick is in `from..=to`.
fn in_range(batch: &RecordBatch, from: u64, to: u64) -> Result<RecordBatch, StoreError> {
    let keep: BooleanArray = table::ticks(batch)?
        .values()
        .iter()
        .map(|t| Some((from..=to).contains(t)))
        .collect();
    Ok(filter_record_batch(batch, &keep)?)
}

/// The batches, each checked to have the table's columns: a run's chunks
/// all do, unless a file was swapped in by hand.
fn rechecked(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, StoreError> {
    match batches.iter().find(|b| b.schema() != *schema) {
        Some(_) => Err(StoreError::Corrupt(
            "the run's telemetry chunks have different columns".into(),
        )),
        None => Ok(batches),
    }
}

/// `batch` with its `UTC` timestamps labelled `+00:00`, the same instants:
/// the CSV writer formats offset zones only (named ones need a time-zone
/// database).
fn with_offset_times(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(
            |(field, column)| match column.as_primitive_opt::<TimestampMillisecondType>() {
                Some(times) => (
                    Field::new(
                        field.name(),
                        DataType::Timestamp(TimeUnit::Millisecond, Some(UTC_OFFSET.into())),
                        field.is_nullable(),
                    ),
                    Arc::new(times.clone().with_timezone(UTC_OFFSET)) as ArrayRef,
                ),
                None => (field.as_ref().clone(), Arc::clone(column)),
            },
        )
        .unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// UTC as an offset, the zone of the CSV export's times.
const UTC_OFFSET: &str = "+00:00";
/// The CSV export's times: RFC 3339 with milliseconds always, so readers
/// that infer one format from the first row (pandas) parse every row.
const CSV_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f%:z";

fn write(
    format: ExportFormat,
    mut out: impl Write + Send,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), ExportError> {
    match format {
        ExportFormat::Parquet => table::write_parquet(&mut out, schema, batches)?,
        ExportFormat::Csv => {
            let mut writer = arrow_csv::WriterBuilder::new()
                .with_header(true)
                .with_timestamp_tz_format(CSV_TIME_FORMAT.to_owned())
                .build(&mut out);
            for batch in batches {
                writer.write(&with_offset_times(batch)?)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
