//! `watchtower replay RUN_DIR`: re-runs a recorded run without a server,
//! from its manifest and audit log, applying each outcome at its recorded
//! tick, and with `--verify` compares every tick's digest with the one the
//! run recorded. Runs on the caller's thread; a progress bar on a terminal.

use std::{collections::BTreeMap, io::IsTerminal, path::Path};

use indicatif::{ProgressBar, ProgressStyle};

use super::{
    StoreError,
    log_file::{read_digests, read_entries},
    manifest::{self, Manifest},
};
use crate::{
    engine::{EngineError, SimulationEngine},
    pb::GodResponse,
};

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// The last tick replayed.
    pub tick: u64,
    /// The digest of that tick's settled state.
    pub digest: u64,
    /// Ticks whose digest was compared with a recorded one.
    pub verified: u64,
    /// The first tick whose digest differs from the recorded one.
    pub divergence: Option<Divergence>,
}

/// A tick where the replay and the recording disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The tick.
    pub tick: u64,
    /// The digest the run recorded.
    pub recorded: u64,
    /// The digest the replay computed.
    pub replayed: u64,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The run directory could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tick failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Replays the run in `dir` up to `to_tick` (default: the last recorded
/// tick); with `verify`, stops at the first tick whose digest differs.
pub fn replay(dir: &Path, to_tick: Option<u64>, verify: bool) -> Result<ReplayReport, ReplayError> {
    let manifest = Manifest::read(dir)?;
    let (entries, _) = read_entries(&dir.join(manifest::AUDIT_FILE), u64::MAX)?;
    let recorded: BTreeMap<u64, u64> = read_digests(&dir.join(manifest::DIGESTS_FILE))?
        .into_iter()
        .collect();
    let mut by_tick: BTreeMap<u64, Vec<GodResponse>> = BTreeMap::new();
    for entry in entries {
        // A command applied while paused took effect from the next tick.
        let tick = entry.applied_tick + u64::from(entry.applied_while_paused);
        by_tick.entry(tick).or_default().push(entry);
    }
    let last = recorded
        .keys()
        .next_back()
        .max(by_tick.keys().next_back())
        .copied()
        .unwrap_or(0);
    let end = to_tick.unwrap_or(last);
    let mut engine = SimulationEngine::new(manifest.registry()?, manifest.seed)?;
    let progress = progress_bar(end);
    let mut report = ReplayReport {
        tick: 0,
        digest: engine.world().digest,
        verified: 0,
        divergence: None,
    };
    for tick in 1..=end {
        let entries = by_tick.get(&tick).map_or(&[][..], Vec::as_slice);
        let digest = engine.replay_tick(entries)?;
        report.tick = tick;
        report.digest = digest;
        progress.inc(1);
        if let (true, Some(&want)) = (verify, recorded.get(&tick)) {
            report.verified += 1;
            if want != digest {
                report.divergence = Some(Divergence {
                    tick,
                    recorded: want,
                    replayed: digest,
                });
                break;
            }
        }
    }
    progress.finish_and_clear();
    Ok(report)
}

/// A bar on a terminal; nothing when stderr is a pipe or a file.
fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] tick {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
