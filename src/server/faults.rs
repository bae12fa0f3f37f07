//! Injected server faults, for the reliability tests only: compiled with the
//! `fault-injection` cargo feature, never in a default build.
//!
//! `WATCHTOWER_FAULTS` lists faults as `KIND=N` or `KIND=NxM`: the fault
//! fires on the listener's Nth accepted connection (counted over the life of
//! the process) and on the M-1 accepts after it. Kinds:
//! - `accept-panic`: the main listener's accept loop panics;
//! - `accept-error`: the main listener's accept loop returns an I/O error;
//! - `ws-accept-error`: the legacy WebSocket listener's accept loop returns
//!   an I/O error;
//! - `disk-hang`: not an accept: the audit log's Nth commit (a command's
//!   outcome going to disk) and every write after it wait for good, as on a
//!   disk that stops answering (`xM` does not apply). Wired by the app to
//!   the store's [`FaultSwitch`](crate::store::FaultSwitch).
//!
//! The connection that triggered an accept fault is dropped. Runs on tokio
//! workers.

use std::{
    io,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

/// One configured fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    kind: Kind,
    first: u64,
    times: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AcceptPanic,
    AcceptError,
    WsAcceptError,
    DiskHang,
}

/// Accepts so far, per listener.
static ACCEPTED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

fn faults() -> &'static [Fault] {
    static FAULTS: OnceLock<Vec<Fault>> = OnceLock::new();
    FAULTS.get_or_init(|| {
        std::env::var("WATCHTOWER_FAULTS")
            .map(|spec| parse(&spec))
            .unwrap_or_default()
    })
}

fn parse(spec: &str) -> Vec<Fault> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let (kind, when) = item
                .trim()
                .split_once('=')
                .unwrap_or_else(|| panic!("WATCHTOWER_FAULTS: {item:?} is not KIND=N[xM]"));
            let kind = match kind {
                "accept-panic" => Kind::AcceptPanic,
                "accept-error" => Kind::AcceptError,
                "ws-accept-error" => Kind::WsAcceptError,
                "disk-hang" => Kind::DiskHang,
                other => panic!("WATCHTOWER_FAULTS: unknown fault {other:?}"),
            };
            let (first, times) = when.split_once('x').unwrap_or((when, "1"));
            let number = |s: &str| {
                s.parse().unwrap_or_else(|_| {
                    panic!("WATCHTOWER_FAULTS: {item:?}: {s:?} is not a number")
                })
            };
            Fault {
                kind,
                first: number(first),
                times: number(times),
            }
        })
        .collect()
}

/// The audit log's commit that hangs the disk, if `disk-hang` is set.
pub fn disk_hang_at() -> Option<u64> {
    faults()
        .iter()
        .find(|fault| fault.kind == Kind::DiskHang)
        .map(|fault| fault.first)
}

/// Called by the accept loop of `listener` ("gRPC" or "legacy WebSocket")
/// after each accepted connection: panics or fails if a fault is due.
pub fn on_accept(listener: &str) -> io::Result<()> {
    let legacy = listener != "gRPC";
    let n = ACCEPTED[usize::from(legacy)].fetch_add(1, Ordering::Relaxed) + 1;
    for fault in faults() {
        let due = (fault.first..fault.first + fault.times).contains(&n);
        match fault.kind {
            Kind::AcceptPanic if due && !legacy => {
                panic!("injected fault: accept-panic on accept {n}")
            }
            Kind::AcceptError if due && !legacy => {
                return Err(io::Error::other(format!(
                    "injected fault: accept-error on accept {n}"
                )));
            }
            Kind::WsAcceptError if due && legacy => {
                return Err(io::Error::other(format!(
                    "injected fault: ws-accept-error on accept {n}"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            parse("accept-panic=3x2, ws-accept-error=1, disk-hang=4"),
            [
                Fault {
                    kind: Kind::AcceptPanic,
                    first: 3,
                    times: 2
                },
                Fault {
                    kind: Kind::WsAcceptError,
                    first: 1,
                    times: 1
                },
                Fault {
                    kind: Kind::DiskHang,
                    first: 4,
                    times: 1
                },
            ]
        );
    }
}
