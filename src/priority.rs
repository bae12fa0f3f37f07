//! The engine comes first on the CPU too: every other thread of the process
//! runs below it, the command lane `--command-nice` below, the rest (the
//! telemetry lane's, the store's writers, the log's) `--network-nice`. Raising a
//! thread's niceness needs no privilege; the engine thread keeps the
//! priority the process started with. `--engine-cpu` pins the engine thread
//! to one CPU, away from the ones that take the devices' interrupts: by
//! default (`auto`) the one that has served the fewest. The threads the
//! engine wakes then run on the other CPUs ([`Placement`]).

use std::{collections::BTreeMap, fmt, str::FromStr};

use tracing::{info, warn};

/// Where the engine thread runs (`--engine-cpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineCpu {
    /// On the CPU, of those the process may use, that has served the
    /// fewest device interrupts, when it may use more than one.
    #[default]
    Auto,
    /// Wherever the kernel places it.
    Off,
    /// On this CPU (numbered as in /proc/cpuinfo).
    Cpu(usize),
}

impl FromStr for EngineCpu {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            _ => text
                .parse()
                .map(Self::Cpu)
                .map_err(|_| format!("{text:?} is not a CPU number, `auto` or `off`")),
        }
    }
}

impl fmt::Display for EngineCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Off => f.write_str("off"),
            Self::Cpu(cpu) => write!(f, "{cpu}"),
        }
    }
}

impl EngineCpu {
    /// The CPU to pin the engine thread to, if any, decided before the
    /// engine starts: a CPU asked for by number is checked, `auto` reads
    /// /proc/interrupts.
    pub fn resolve(self) -> Result<Option<usize>, EngineCpuError> {
        match self {
            Self::Off => Ok(None),
            Self::Cpu(cpu) => check_engine_cpu(cpu).map(|()| Some(cpu)),
            Self::Auto => Ok(least_interrupted_cpu()),
        }
    }
}

/// Adds `nice` to the calling thread's niceness (Linux niceness is per
/// thread, and threads it starts inherit it); elsewhere, or if refused, the
/// thread keeps its priority.
pub fn lower_this_thread(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let result = rustix::process::getpriority_process(Some(tid)).and_then(|current| {
            rustix::process::setpriority_process(Some(tid), (current + nice).min(19))
        });
        if let Err(err) = result {
            warn!(%err, nice, "cannot lower this thread's priority below the engine's");
        }
    }
}

/// Where a thread the engine wakes (the store's writers, the log's) runs: `nice` below
/// the engine, and, when the engine has a CPU of its own, on the others.
/// Woken by the engine, such a thread tends to be put on the engine's CPU,
/// where it either takes the engine's time or, below it, waits for it; a
/// command waits on the audit writer (docs/benchmarks.md, "Issue 11: the
/// engine's CPU by default").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    /// Niceness added to the thread's own.
    pub nice: i32,
    /// The engine's CPU, which the thread keeps off if it may use another.
    pub off_cpu: Option<usize>,
}

impl Placement {
    /// Applies to the calling thread; if refused, it keeps what it had.
    pub fn apply(self) {
        lower_this_thread(self.nice);
        if let Some(cpu) = self.off_cpu {
            keep_off_cpu(cpu);
        }
    }
}

/// Takes `cpu` out of the calling thread's CPUs, unless it is the only one.
fn keep_off_cpu(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
        let Ok(mut allowed) = sched_getaffinity(None) else {
            return;
        };
        if cpu >= CpuSet::MAX_CPU || !allowed.is_set(cpu) || allowed.count() < 2 {
            return;
        }
        allowed.unset(cpu);
        if let Err(err) = sched_setaffinity(None, &allowed) {
            warn!(%err, cpu, "cannot keep this thread off the engine's CPU");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// `--engine-cpu` names a CPU this process may not run on.
#[derive(Debug, thiserror::Error)]
#[error("--engine-cpu {cpu}: this process may run only on CPUs {allowed}")]
pub struct EngineCpuError {
    /// The CPU asked for.
    pub cpu: usize,
    /// The CPUs the process may run on, as ranges the way
    /// `/proc/PID/status` writes them ("0-3,6").
    pub allowed: String,
}

/// The CPUs the calling thread may run on, in order; `None` if unknown.
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Option<Vec<usize>> {
    use rustix::thread::{CpuSet, sched_getaffinity};
    let allowed = sched_getaffinity(None).ok()?;
    Some(
        (0..CpuSet::MAX_CPU)
            .filter(|&c| allowed.is_set(c))
            .collect(),
    )
}

/// Checks, before the engine starts, that the calling thread (and so the
/// process's threads it starts) may run on `cpu`.
#[cfg(target_os = "linux")]
fn check_engine_cpu(cpu: usize) -> Result<(), EngineCpuError> {
    let Some(allowed) = allowed_cpus() else {
        // Unknown: the pinning itself will say if it is refused.
        return Ok(());
    };
    if allowed.contains(&cpu) {
        Ok(())
    } else {
        Err(EngineCpuError {
            cpu,
            allowed: ranges(&allowed),
        })
    }
}

/// Elsewhere the flag is accepted and the engine thread is left unpinned.
#[cfg(not(target_os = "linux"))]
fn check_engine_cpu(_cpu: usize) -> Result<(), EngineCpuError> {
    Ok(())
}

/// Pins the calling thread (the engine's) to `cpu`, checked by
/// [`check_engine_cpu`]; if refused, the thread keeps running anywhere.
pub fn pin_this_thread(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{CpuSet, sched_setaffinity};
        if cpu >= CpuSet::MAX_CPU {
            warn!(cpu, "no such CPU; the engine thread is not pinned");
            return;
        }
        let mut set = CpuSet::new();
        set.set(cpu);
        if let Err(err) = sched_setaffinity(None, &set) {
            warn!(%err, cpu, "cannot pin the engine thread to its CPU");
        }
    }
    #[cfg(not(target_os = "linux"))]
    warn!(
        cpu,
        "--engine-cpu is supported on Linux only; the engine thread is not pinned"
    );
}

/// `auto`: the allowed CPU with the fewest device interrupts since boot, or
/// none when the process may use only one CPU, /proc/interrupts cannot be
/// read, or no CPU has served fewer than another (nothing to avoid).
#[cfg(target_os = "linux")]
fn least_interrupted_cpu() -> Option<usize> {
    let allowed = allowed_cpus()?;
    let chosen = match std::fs::read_to_string("/proc/interrupts") {
        Ok(text) => least_interrupted(&device_interrupts(&text), &allowed),
        Err(err) => {
            warn!(%err, "cannot read /proc/interrupts; the engine thread is not pinned");
            return None;
        }
    };
    match chosen {
        Some((cpu, count)) => info!(
            cpu,
            device_interrupts = count,
            allowed = %ranges(&allowed),
            "engine thread pinned to the CPU that has served the fewest device interrupts (--engine-cpu auto)"
        ),
        None => info!(
            allowed = %ranges(&allowed),
            "engine thread not pinned: no CPU of ours is freer of device interrupts than another (--engine-cpu auto)"
        ),
    }
    chosen.map(|(cpu, _)| cpu)
}

/// Elsewhere `auto` leaves the engine thread unpinned.
#[cfg(not(target_os = "linux"))]
fn least_interrupted_cpu() -> Option<usize> {
    None
}

/// Device interrupts served per CPU, from the text of /proc/interrupts: the
/// numbered lines (devices), not the architecture's own (timer, IPIs).
pub fn device_interrupts(text: &str) -> BTreeMap<usize, u64> {
    let mut lines = text.lines();
    let columns: Vec<usize> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|name| name.strip_prefix("CPU")?.parse().ok())
        .collect();
    let mut counts: BTreeMap<usize, u64> = columns.iter().map(|&cpu| (cpu, 0)).collect();
    for line in lines {
        let mut fields = line.split_whitespace();
        let is_device = fields
            .next()
            .and_then(|irq| irq.strip_suffix(':'))
            .is_some_and(|irq| irq.bytes().all(|b| b.is_ascii_digit()));
        if !is_device {
            continue;
        }
        for (cpu, field) in columns.iter().zip(fields) {
            let Ok(n) = field.parse::<u64>() else { break };
            *counts.entry(*cpu).or_default() += n;
        }
    }
    counts
}

/// Of `allowed` (two or more), the CPU with the fewest interrupts in
/// `counts` and its count; the highest-numbered on a tie, since CPU 0
/// tends to carry the machine's housekeeping. `None` when fewer than two
/// are known or all have served as many.
fn least_interrupted(counts: &BTreeMap<usize, u64>, allowed: &[usize]) -> Option<(usize, u64)> {
    let known: Vec<(usize, u64)> = allowed
        .iter()
        .filter_map(|cpu| Some((*cpu, *counts.get(cpu)?)))
        .collect();
    let fewest = known
        .iter()
        .min_by_key(|(cpu, n)| (*n, std::cmp::Reverse(*cpu)))?;
    let most = known.iter().map(|(_, n)| *n).max()?;
    (known.len() >= 2 && fewest.1 < most).then_some(*fewest)
}

/// Sorted CPU numbers as ranges, as the kernel writes them: `[0, 1, 2, 5]`
/// is "0-2,5".
#[cfg(target_os = "linux")]
fn ranges(cpus: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &cpu in cpus {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == cpu => *end = cpu,
            _ => runs.push((cpu, cpu)),
        }
    }
    runs.iter()
        .map(|&(start, end)| {
            if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two CPUs, as on the benchmark box: the disk's queue on CPU 1.
    const TWO_CPUS: &str = "           CPU0       CPU1
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 36:          0    5807781 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 39:      38842          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0
NMI:          0          0   Non-maskable interrupts
LOC:    4132893    4740871   Local timer interrupts
ERR:          0
";

    #[test]
    fn device_interrupts_are_summed_per_cpu_and_the_timer_left_out() {
        let counts = device_interrupts(TWO_CPUS);
        assert_eq!(counts, BTreeMap::from([(0, 38843), (1, 5807781)]));
    }

    #[test]
    fn auto_chooses_the_allowed_cpu_with_the_fewest_device_interrupts() {
        let counts = device_interrupts(TWO_CPUS);
        assert_eq!(least_interrupted(&counts, &[0, 1]), Some((0, 38843)));
        // One CPU of ours, or none known: nothing to choose between.
        assert_eq!(least_interrupted(&counts, &[1]), None);
        assert_eq!(least_interrupted(&counts, &[4, 5]), None);
        // All alike: nothing to avoid.
        let even = BTreeMap::from([(0, 7), (1, 7), (2, 7)]);
        assert_eq!(least_interrupted(&even, &[0, 1, 2]), None);
        // A tie for the fewest goes to the highest-numbered.
        let tie = BTreeMap::from([(0, 3), (1, 9), (2, 3)]);
        assert_eq!(least_interrupted(&tie, &[0, 1, 2]), Some((2, 3)));
    }

    #[test]
    fn the_flag_reads_auto_off_or_a_cpu_number() {
        assert_eq!("auto".parse(), Ok(EngineCpu::Auto));
        assert_eq!("off".parse(), Ok(EngineCpu::Off));
        assert_eq!("3".parse(), Ok(EngineCpu::Cpu(3)));
        let err = "first".parse::<EngineCpu>().unwrap_err();
        assert!(err.contains("`auto` or `off`"), "{err}");
        for choice in [EngineCpu::Auto, EngineCpu::Off, EngineCpu::Cpu(12)] {
            assert_eq!(choice.to_string().parse(), Ok(choice));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_numbers_read_as_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(ranges(&[3]), "3");
        assert_eq!(ranges(&[]), "");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_cpu_beyond_the_machine_is_refused_naming_the_allowed_ones() {
        let err = check_engine_cpu(rustix::thread::CpuSet::MAX_CPU + 1).unwrap_err();
        assert!(!err.allowed.is_empty(), "{err}");
        assert!(err.to_string().contains("--engine-cpu"), "{err}");
    }
}
