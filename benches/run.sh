#!/usr/bin/env bash
# Builds the release binaries and runs every benchmark scenario against a
# fresh release server on this machine, rewriting docs/benchmarks.md and
# docs/benchmarks-fanout.svg. Extra arguments go to `watchtower-bench run-all`
# (for example `--quick` to try the runner, or `--subscribers 1000,5000`).
#
# Thousands of subscribers need thousands of sockets on both sides, so the
# open-files limit is raised first; the server inherits it.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 || true
echo "open files limit: $(ulimit -n); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cargo build --release --bins
exec target/release/watchtower-bench run-all "$@"
