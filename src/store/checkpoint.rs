//! Checkpoints: the whole engine state in a versioned, checksummed binary
//! file, written atomically by the `watchtower-checkpoint` thread, and the
//! newest valid one found again on resume.
//!
//! File layout (little-endian): the magic `WTCHKPT\0`, the format version
//! (u32), the writing Watchtower version (u16 length + UTF-8), the tick
//! (u64), the payload length (u64), the payload's CRC-32 (u32), then the
//! payload: the `EngineState` in postcard. A file is written to a `.tmp`
//! name, synced, renamed into place and the directory synced, so a crash
//! leaves either the old set of checkpoints or the new one.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
};

use tracing::{error, info, warn};

use super::{StoreError, write_atomically, writer::Disk};
use crate::{engine::EngineState, priority::Placement};

/// The checkpoint format this build reads and writes. Bump it whenever the
/// serialized state changes shape.
pub const FORMAT_VERSION: u32 = 2;
/// Checkpoints kept per run; older ones are pruned.
pub const KEEP_CHECKPOINTS: usize = 3;
const MAGIC: &[u8; 8] = b"WTCHKPT\0";
const EXTENSION: &str = "ckpt";

/// Encodes `state` as a checkpoint file.
pub fn encode(state: &EngineState) -> Result<Vec<u8>, StoreError> {
    let payload =
        postcard::to_stdvec(state).map_err(|e| StoreError::Corrupt(format!("encode: {e}")))?;
    let version = env!("CARGO_PKG_VERSION").as_bytes();
    let mut out = Vec::with_capacity(payload.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(version.len() as u16).to_le_bytes());
    out.extend_from_slice(version);
    out.extend_from_slice(&state.tick.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a checkpoint file read from `path`.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<EngineState, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt(format!("{}: {why}", path.display()));
    let mut rest = bytes;
    let mut take = |n: usize| -> Result<&[u8], StoreError> {
        if rest.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    if take(8)? != MAGIC {
        return Err(corrupt("not a Watchtower checkpoint"));
    }
    let format = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default());
    let version_len = u16::from_le_bytes(take(2)?.try_into().unwrap_or_default());
    let version = String::from_utf8_lossy(take(version_len.into())?).into_owned();
    if format != FORMAT_VERSION {
        return Err(StoreError::Version {
            path: path.to_owned(),
            found_format: format,
            found_version: version,
        });
    }
    let _tick = take(8)?;
    let len = u64::from_le_bytes(take(8)?.try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default());
    let payload = take(usize::try_from(len).map_err(|_| corrupt("length"))?)?;
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    postcard::from_bytes(payload).map_err(|e| corrupt(&format!("cannot decode: {e}")))
}

/// The checkpoint files in `dir`, newest (highest tick) first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| StoreError::io(dir, e))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == EXTENSION))
        .collect();
    // Names carry the tick zero-padded, so name order is tick order.
    files.sort();
    files.reverse();
    Ok(files)
}

/// The newest checkpoint in `dir` that reads back whole. A corrupt or
/// truncated one is reported and the one before it used; one from another
/// format version is an error. `None` if there is none to use.
pub fn load_newest(dir: &Path) -> Result<Option<EngineState>, StoreError> {
    for path in list(dir)? {
        let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        match decode(&path, &bytes) {
            Ok(state) => {
                info!(path = %path.display(), tick = state.tick, "loaded checkpoint");
                return Ok(Some(state));
            }
            Err(err @ StoreError::Version { .. }) => return Err(err),
            Err(err) => {
                warn!(error = %err, "checkpoint unusable; trying the previous one");
            }
        }
    }
    Ok(None)
}

/// The way to the checkpoint writer, held by the audit writer.
#[derive(Debug)]
pub struct Checkpoints {
    sender: mpsc::Sender<Box<EngineState>>,
    /// Set by the engine's journal when it hands over a checkpoint, cleared
    /// once that checkpoint is written (or failed): while it is set, the
    /// engine skips the next one rather than queue another copy of its state.
    pub in_flight: Arc<AtomicBool>,
}

impl Checkpoints {
    /// Hands `state` to the checkpoint writer.
    pub fn send(&self, state: Box<EngineState>) {
        if self.sender.send(state).is_err() {
            self.in_flight.store(false, Ordering::Release);
        }
    }
}

/// Starts the checkpoint writer: it writes each state it receives into
/// `dir` and prunes all but the newest [`KEEP_CHECKPOINTS`]; it ends when
/// the audit writer drops its sender. Runs where `placement` says; its
/// writes go through `disk`.
pub(super) fn spawn_writer(
    dir: PathBuf,
    placement: Placement,
    disk: Disk,
) -> Result<(Checkpoints, std::thread::JoinHandle<()>), StoreError> {
    let (sender, rx) = mpsc::channel::<Box<EngineState>>();
    let in_flight = Arc::new(AtomicBool::new(false));
    let written = Arc::clone(&in_flight);
    let thread = std::thread::Builder::new()
        .name("watchtower-checkpoint".into())
        .spawn(move || {
            placement.apply();
            for state in rx {
                match disk.write(|| write(&dir, &state)) {
                    Ok(path) => {
                        info!(path = %path.display(), tick = state.tick, "checkpoint written")
                    }
                    Err(err) => error!(error = %err, tick = state.tick, "cannot write checkpoint"),
                }
                written.store(false, Ordering::Release);
            }
        })
        .map_err(|e| StoreError::io(Path::new("watchtower-checkpoint thread"), e))?;
    Ok((Checkpoints { sender, in_flight }, thread))
}

/// Writes one checkpoint atomically, then prunes old ones.
pub fn write(dir: &Path, state: &EngineState) -> Result<PathBuf, StoreError> {
    let path = dir.join(format!("tick-{:012}.{EXTENSION}", state.tick));
    write_atomically(&path, &encode(state)?)?;
    for old in list(dir)?.into_iter().skip(KEEP_CHECKPOINTS) {
        if let Err(err) = fs::remove_file(&old) {
            warn!(path = %old.display(), error = %err, "cannot prune checkpoint");
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        engine::{GlobalRegistry, SimulationEngine, state_digest},
        pb::GodResponse,
    };

    fn state() -> EngineState {
        let mut registry = GlobalRegistry::with_defaults();
        registry
            .apply_overrides_yaml("agents.households: 200\nagents.firms: 4\n", "test")
            .unwrap();
        let mut engine = SimulationEngine::new(registry, 9).unwrap();
        for _ in 0..5 {
            engine.step().unwrap();
        }
        engine.world_mut().audit.record(GodResponse {
            command_id: "kept".into(),
            applied_tick: 3,
            success: true,
            ..Default::default()
        });
        engine.world().state()
    }

    #[test]
    fn a_checkpoint_reads_back_whole_and_damage_is_named() {
        let state = state();
        let bytes = encode(&state).unwrap();
        let path = Path::new("tick.ckpt");
        let back = decode(path, &bytes).unwrap();
        let mut registry = GlobalRegistry::with_defaults();
        registry.restore_values(back.parameters.clone()).unwrap();
        let digest = |s: &EngineState, r: &GlobalRegistry| state_digest(s.tick, r, &s.economy);
        assert_eq!(digest(&back, &registry), digest(&state, &registry));
        let kept = back.audit.entries().find(|e| e.command_id == "kept");
        assert_eq!(kept.map(|e| e.applied_tick), Some(3));

        let cut = decode(path, &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(cut.to_string().contains("truncated"), "{cut}");
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let bad = decode(path, &flipped).unwrap_err();
        assert!(bad.to_string().contains("checksum mismatch"), "{bad}");
        let mut future = bytes;
        future[8..12].copy_from_slice(&7u32.to_le_bytes());
        let err = decode(path, &future).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Version {
                    found_format: 7,
                    ..
                }
            ),
            "{err}"
        );
    }
}
