//! The engine comes first on the CPU too: every other thread of the process
//! runs below it, the command lane `--command-nice` below, the rest (the
//! telemetry lane's, the store's writers) `--network-nice`. Raising a
//! thread's niceness needs no privilege; the engine thread keeps the
//! priority the process started with.

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
