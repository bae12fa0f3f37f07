//! CPU time and resident memory of a process, read from `/proc` (Linux,
//! same machine only). The engine thread is found by its name
//! (`watchtower-engine`, truncated by the kernel to 15 bytes), so the report
//! can split the server's CPU into engine and everything else.

use std::{
    fs,
    sync::OnceLock,
    time::{Duration, Instant},
};

/// Name of the engine thread as `/proc/PID/task/TID/comm` shows it.
const ENGINE_COMM: &str = "watchtower-engi";

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// When it was read.
    pub at: Instant,
    /// utime + stime of the whole process, in clock ticks.
    pub cpu_ticks: u64,
    /// utime + stime of the engine thread, if one was found.
    pub engine_ticks: Option<u64>,
    /// VmRSS, KiB.
    pub rss_kib: u64,
}

/// CPU use between two samples, in percent of one core.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// The whole process.
    pub total: f64,
    /// The engine thread.
    pub engine: Option<f64>,
}

impl CpuUse {
    /// Everything but the engine thread (the server's tokio threads).
    pub fn server(&self) -> Option<f64> {
        self.engine.map(|e| self.total - e)
    }
}

fn clock_ticks_per_second() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime from a `stat` file; fields 14 and 15, counted after the
/// command name, which may itself hold spaces and parentheses.
fn stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn engine_ticks(pid: u32) -> Option<u64> {
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == ENGINE_COMM {
            return stat_ticks(&fs::read_to_string(task.path().join("stat")).ok()?);
        }
    }
    None
}

/// VmRSS of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads a process; `None` if it is gone or /proc is not there.
pub fn sample(pid: u32) -> Option<ProcSample> {
    Some(ProcSample {
        at: Instant::now(),
        cpu_ticks: stat_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?,
        engine_ticks: engine_ticks(pid),
        rss_kib: rss_kib(pid)?,
    })
}

/// This process (the load generator).
pub fn sample_self() -> Option<ProcSample> {
    sample(std::process::id())
}

/// CPU use between two samples of the same process.
pub fn cpu_between(a: &ProcSample, b: &ProcSample) -> CpuUse {
    let wall = b.at.duration_since(a.at).max(Duration::from_millis(1));
    let pct = |ticks: u64| ticks as f64 / clock_ticks_per_second() / wall.as_secs_f64() * 100.0;
    CpuUse {
        total: pct(b.cpu_ticks.saturating_sub(a.cpu_ticks)),
        engine: match (a.engine_ticks, b.engine_ticks) {
            (Some(x), Some(y)) => Some(pct(y.saturating_sub(x))),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_a_strange_name() {
        let line = "42 (a) b (c)) S 1 1 1 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 100";
        assert_eq!(stat_ticks(line), Some(12));
    }
}
