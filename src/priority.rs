//! The engine comes first on the CPU too: every other thread of the process
//! runs below it, the command lane `--command-nice` below, the rest (the
//! telemetry lane's, the store's writers) `--network-nice`. Raising a
//! thread's niceness needs no privilege; the engine thread keeps the
//! priority the process started with. `--engine-cpu` pins the engine thread
//! to one CPU, away from the one that takes the disk's interrupts.

use tracing::warn;

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

/// Checks, before the engine starts, that the calling thread (and so the
/// process's threads it starts) may run on `cpu`.
#[cfg(target_os = "linux")]
pub fn check_engine_cpu(cpu: usize) -> Result<(), EngineCpuError> {
    use rustix::thread::{CpuSet, sched_getaffinity};
    let Ok(allowed) = sched_getaffinity(None) else {
        // Unknown: the pinning itself will say if it is refused.
        return Ok(());
    };
    let allowed: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| allowed.is_set(c))
        .collect();
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
pub fn check_engine_cpu(_cpu: usize) -> Result<(), EngineCpuError> {
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
