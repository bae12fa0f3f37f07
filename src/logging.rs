//! The process's log: lines on stdout, as text or JSON, at the level
//! `RUST_LOG` sets (default `info`).
//!
//! A server writes its lines from a thread of their own (`watchtower-log`,
//! at `--network-nice`, off a pinned engine's CPU). The engine logs each
//! applied command; writing to stdout itself would put a `write` on every
//! tick that applies one, and stop the engine outright whenever stdout is a
//! pipe nobody drains (a stuck log shipper, a paused terminal). The queue
//! to that thread holds [`QUEUED_LINES`]; when it is full, lines are
//! dropped, not waited for, and counted ([`dropped_lines`], the metric
//! `watchtower_log_lines_dropped_total`). At the end the queued lines get
//! [`FLUSH_PATIENCE`] to be written, so a stuck stdout does not keep the
//! process from exiting either. Short commands (`replay`, `export`,
//! `healthcheck`) write their lines themselves, in order with what they
//! print.

use std::{
    io::{IsTerminal, Write},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt::writer::BoxMakeWriter};

use crate::config::LogFormat;

/// Lines waiting for the log thread at most: about 5 MB at 300 bytes a
/// line, and 16 s of a stdout that takes nothing at 1,000 applied commands
/// a second.
pub const QUEUED_LINES: usize = 16_384;

/// Who writes the lines to stdout.
#[derive(Debug, Clone, Copy)]
pub enum Writer {
    /// The thread that logs, itself.
    Caller,
    /// A thread of their own at this niceness (a server).
    Thread {
        /// Niceness added to the log thread's own.
        nice: i32,
    },
}

/// Lines dropped so far because the log thread's queue was full.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// The CPU the log thread keeps off, plus one (0: none).
static OFF_CPU: AtomicUsize = AtomicUsize::new(0);

/// Keeps the log thread off `cpu` (a pinned engine's), from its next line
/// on. The engine wakes that thread with each line it logs, and a woken
/// thread tends to be put on its waker's CPU, where it takes the engine's
/// time (docs/benchmarks.md, "Issue 11: the log off the engine's thread").
pub fn keep_off_cpu(cpu: usize) {
    OFF_CPU.store(cpu + 1, Ordering::Relaxed);
}

/// Stdout, as the log thread writes it: before a write, the thread moves
/// off the CPU [`keep_off_cpu`] last named, if that changed.
struct Stdout {
    /// What `OFF_CPU` held when this thread last placed itself.
    placed: usize,
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let off = OFF_CPU.load(Ordering::Relaxed);
        if off != self.placed {
            self.placed = off;
            crate::priority::Placement {
                nice: 0,
                off_cpu: off.checked_sub(1),
            }
            .apply();
        }
        std::io::stdout().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// How long, at the end, the log thread may take to write out what is
/// queued before the process ends without it.
pub const FLUSH_PATIENCE: Duration = Duration::from_secs(2);

/// Held until the process ends: dropping it writes out the lines still
/// queued, for at most [`FLUSH_PATIENCE`].
#[derive(Debug)]
#[must_use = "dropping it ends the log thread"]
pub struct Flush(Option<WorkerGuard>);

impl Drop for Flush {
    fn drop(&mut self) {
        let Some(guard) = self.0.take() else {
            return;
        };
        // The guard waits for the log thread, and with a full queue prints
        // to stdout itself: with a stdout nobody drains, it would never
        // return, so it is dropped on a thread the process can leave behind.
        let (done, finished) = std::sync::mpsc::channel();
        let flush = std::thread::Builder::new()
            .name("watchtower-flush".into())
            .spawn(move || {
                drop(guard);
                let _ = done.send(());
            });
        if flush.is_ok() {
            let _ = finished.recv_timeout(FLUSH_PATIENCE);
        }
    }
}

/// Installs the log; keep what it returns until the process ends.
pub fn init(format: LogFormat, writer: Writer) -> Flush {
    let thread = match writer {
        Writer::Caller => None,
        // If the thread cannot be started, the callers write.
        Writer::Thread { nice } => log_thread(nice),
    };
    let (make_writer, guard) = match thread {
        None => (BoxMakeWriter::new(std::io::stdout), None),
        Some((lines, guard)) => {
            let _ = DROPPED.set(lines.error_counter());
            (BoxMakeWriter::new(lines), Some(guard))
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(make_writer);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).with_span_list(false).init(),
    }
    Flush(guard)
}

/// Starts the log thread at `nice`: it is started from a short-lived thread
/// that lowers itself first, since a thread inherits its starter's niceness.
fn log_thread(nice: i32) -> Option<(NonBlocking, WorkerGuard)> {
    std::thread::Builder::new()
        .spawn(move || {
            crate::priority::lower_this_thread(nice);
            NonBlockingBuilder::default()
                .lossy(true)
                .buffered_lines_limit(QUEUED_LINES)
                .thread_name("watchtower-log")
                .finish(Stdout { placed: 0 })
        })
        .ok()?
        .join()
        .ok()
}

/// Lines dropped so far because stdout took them too slowly (0 when lines
/// are not written by a thread of their own).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}
