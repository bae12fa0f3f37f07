//! The audit log and the digest file on disk: their line and record
//! formats, repair of a torn tail after a crash, and reading them back
//! (resume, replay, `ListAuditEntries`).
//!
//! `audit.jsonl` holds one line per command outcome: `{"wall_unix_ms": …,
//! "entry": <GodResponse in canonical protobuf JSON>}`, so fields added to
//! `GodResponse` are recorded with no change here. `digests.bin` holds one
//! 16-byte record per tick: the tick and its state digest, little-endian.
//! Readers run on the caller's thread (start-up, the replay tool, or a
//! blocking task of the server), never on the engine thread.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::StoreError;
use crate::pb::GodResponse;

/// Bytes per record in `digests.bin`.
pub const DIGEST_RECORD: usize = 16;

/// One line of `audit.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditLine {
    /// When the writer appended it, milliseconds since the Unix epoch.
    pub wall_unix_ms: i64,
    /// The outcome, as the engine decided it.
    pub entry: GodResponse,
}

/// Hands every whole entry of the log at `path` to `each`, oldest first. A
/// last line that is cut short or unreadable (a crash mid-append) is cut
/// off the file and logged; an unreadable line anywhere else is an error.
pub fn read_and_repair(path: &Path, each: impl FnMut(GodResponse)) -> Result<(), StoreError> {
    let good_len = visit_entries(path, u64::MAX, each)?;
    let len = std::fs::metadata(path)
        .map_err(|e| StoreError::io(path, e))?
        .len();
    if good_len < len {
        warn!(
            path = %path.display(),
            dropped_bytes = len - good_len,
            "the audit log ends in a torn line (a crash mid-append); dropping it"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        file.set_len(good_len)
            .map_err(|e| StoreError::io(path, e))?;
        file.sync_all().map_err(|e| StoreError::io(path, e))?;
    }
    Ok(())
}

/// Reads the entries of the log at `path` within its first `limit` bytes,
/// and the length of the whole lines read. Only the last line may be bad.
pub fn read_entries(path: &Path, limit: u64) -> Result<(Vec<GodResponse>, u64), StoreError> {
    let mut entries = Vec::new();
    let good_len = visit_entries(path, limit, |entry| entries.push(entry))?;
    Ok((entries, good_len))
}

/// Hands the entries of the log at `path` within its first `limit` bytes to
/// `each`, one at a time, and returns the length of the whole lines read.
/// Only the last line may be bad.
fn visit_entries(
    path: &Path,
    limit: u64,
    mut each: impl FnMut(GodResponse),
) -> Result<u64, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mut reader = BufReader::new(file.take(limit));
    let mut good_len = 0;
    let mut line = String::new();
    let mut line_no = 0;
    let mut bad: Option<String> = None;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| StoreError::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if let Some(why) = bad.take() {
            return Err(StoreError::Corrupt(format!(
                "{} line {}: {why}",
                path.display(),
                line_no - 1
            )));
        }
        let parsed = line
            .strip_suffix('\n')
            .ok_or_else(|| "no end of line".to_owned())
            .and_then(|text| serde_json::from_str::<AuditLine>(text).map_err(|e| e.to_string()));
        match parsed {
            Ok(parsed) => {
                each(parsed.entry);
                good_len += n as u64;
            }
            Err(why) => bad = Some(why),
        }
    }
    Ok(good_len)
}

/// Reads `digests.bin`: (tick, digest) pairs, a later record for a tick
/// replacing an earlier one. A torn last record is ignored.
pub fn read_digests(path: &Path) -> Result<Vec<(u64, u64)>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    Ok(bytes
        .chunks_exact(DIGEST_RECORD)
        .map(|record| {
            let (tick, digest) = record.split_at(8);
            (
                u64::from_le_bytes(tick.try_into().unwrap_or_default()),
                u64::from_le_bytes(digest.try_into().unwrap_or_default()),
            )
        })
        .collect())
}

/// Cuts `digests.bin` back to the records of ticks up to `tick` (a resume
/// re-records the ticks after its checkpoint), dropping a torn record.
pub fn truncate_digests(path: &Path, tick: u64) -> Result<(), StoreError> {
    let keep = read_digests(path)?
        .iter()
        .take_while(|(t, _)| *t <= tick)
        .count();
    if let Ok(file) = OpenOptions::new().write(true).open(path) {
        file.set_len((keep * DIGEST_RECORD) as u64)
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io(path, e))?;
    }
    Ok(())
}

/// Which entries a `ListAuditEntries` page wants.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this key; empty for every key.
    pub key: String,
    /// Only entries at this tick or later.
    pub from_tick: u64,
    /// Only entries at this tick or earlier; 0 for no bound.
    pub to_tick: u64,
    /// Most entries to return.
    pub page_size: usize,
    /// Byte offset to start reading at (a page token).
    pub offset: u64,
}

/// A page of the log and where the next one starts, if anything is left.
#[derive(Debug, Default)]
pub struct AuditPage {
    /// The matching entries, oldest first.
    pub entries: Vec<GodResponse>,
    /// The byte offset of the next page; `None` at the end of the log.
    pub next_offset: Option<u64>,
}

/// Read access to the run's audit log for the server: only the durable
/// prefix (what was fsync'd before callers were answered) is ever read.
#[derive(Debug, Clone)]
pub struct AuditFile {
    path: PathBuf,
    /// Bytes of the log known to be on disk, advanced by the writer after
    /// each sync.
    durable_len: Arc<AtomicU64>,
}

impl AuditFile {
    /// A reader of `path` whose durable length the writer keeps in
    /// `durable_len`.
    pub fn new(path: PathBuf, durable_len: Arc<AtomicU64>) -> Self {
        Self { path, durable_len }
    }

    /// One page of entries matching `query`. Blocking: call it off the
    /// async threads.
    pub fn page(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let end = self.durable_len.load(Ordering::Acquire);
        let mut page = AuditPage::default();
        if query.offset >= end {
            return Ok(page);
        }
        let path = &self.path;
        let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        file.seek(SeekFrom::Start(query.offset))
            .map_err(|e| StoreError::io(path, e))?;
        let mut reader = BufReader::new(file.take(end - query.offset));
        let mut offset = query.offset;
        let mut line = String::new();
        while offset < end {
            if page.entries.len() == query.page_size {
                page.next_offset = Some(offset);
                break;
            }
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| StoreError::io(path, e))?;
            if n == 0 {
                break;
            }
            offset += n as u64;
            let parsed: AuditLine = serde_json::from_str(line.trim_end()).map_err(|e| {
                StoreError::Corrupt(format!("{} at byte {}: {e}", path.display(), offset))
            })?;
            let entry = parsed.entry;
            let wanted = (query.key.is_empty() || entry.key == query.key)
                && entry.applied_tick >= query.from_tick
                && (query.to_tick == 0 || entry.applied_tick <= query.to_tick);
            if wanted {
                page.entries.push(entry);
            }
        }
        Ok(page)
    }
}
