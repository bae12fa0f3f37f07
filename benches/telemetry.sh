#!/usr/bin/env bash
# Issue 11's targets (docs/benchmarks.md "Issue 11 targets"): each scenario
# against a fresh release server with the defaults a user gets (a data
# directory, every thread but the engine at --network-nice 19), the load
# generator at `nice -n 19` as well, standing for clients on other machines.
# Run it on a quiet machine and run it twice: figures from a busy box say
# nothing.
#
#   benches/telemetry.sh [SCENARIO ...]
#   scenarios: fanout10k fanout20k fanout10k-tps0 isolation apply1000 apply-c64
#   (run by default), and isolation-commands: the engine ratio under 1,000
#   cmd/s alone, which isolates what the durable command path costs the engine
#   WATCHTOWER_SERVER=PATH runs another server binary (an A/B comparison)
#   against this tree's load generator; WATCHTOWER_FLAGS adds server flags
#   (e.g. "--network-threads 1"); WATCHTOWER_BENCH_NICE sets the load
#   generator's niceness (default 19), WATCHTOWER_FLEET_NICE what its
#   subscribers add to it (default 0; `WATCHTOWER_BENCH_NICE=10
#   WATCHTOWER_FLEET_NICE=9` puts its command driver, an operator, ahead of
#   its subscribers).
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 || true
cargo build --release --locked --bin watchtower --bin watchtower-bench
bin=${CARGO_TARGET_DIR:-target}/release
server=${WATCHTOWER_SERVER:-$bin/watchtower}
work=$(mktemp -d)
pid=
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap 'stop; rm -rf "$work"' EXIT

# Starts a fresh server with the given flags; sets $pid and $addr.
serve() {
  stop
  rm -rf "$work/runs"
  "$server" --listen 127.0.0.1:0 --legacy-ws-listen off --data-dir "$work/runs" \
    --max-connections 60000 --max-subscribers 60000 "$@" ${WATCHTOWER_FLAGS:-} >"$work/log" 2>&1 &
  pid=$!
  addr=
  for _ in $(seq 100); do
    addr=$(sed -n 's/.*gRPC server listening.*local_addr=\([^ ]*\).*/\1/p' "$work/log" | head -1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { cat "$work/log"; exit 1; }
  sleep 2
}
bench() {
  nice -n "${WATCHTOWER_BENCH_NICE:-19}" "$bin/watchtower-bench" --fleet-nice "${WATCHTOWER_FLEET_NICE:-0}" \
    "$@" --addr "$addr" --server-pid "$pid"
}

run() {
  echo "== $1 (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  case $1 in
    fanout10k) serve --tps 10; bench fanout --subscribers 10000 --duration 10 ;;
    fanout20k) serve --tps 10; bench fanout --subscribers 20000 --duration 10 ;;
    fanout10k-tps0) serve --tps 0; bench fanout --subscribers 10000 --duration 10 ;;
    isolation) serve --tps 0; bench isolation --rate 1000 --subscribers 10000 --windows 3 --window 5 ;;
    isolation-commands) serve --tps 0; bench isolation --rate 1000 --subscribers 0 --windows 3 --window 5 ;;
    apply1000) serve --tps 0; bench apply --rate 1000 --duration 10 ;;
    apply-c64) serve --tps 0; bench apply --concurrency 64 --duration 10 ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

echo "cores: $(nproc); commit: $(git rev-parse --short HEAD); server: $server ${WATCHTOWER_FLAGS:-}; load generator at nice ${WATCHTOWER_BENCH_NICE:-19}, its subscribers ${WATCHTOWER_FLEET_NICE:-0} below"
for scenario in "${@:-fanout10k fanout20k fanout10k-tps0 isolation apply1000 apply-c64}"; do
  for s in $scenario; do run "$s"; done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
