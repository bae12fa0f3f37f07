#!/usr/bin/env bash
# Scale-out figures (issue 13, docs/benchmarks.md "Scale-out through NATS"):
# a nats-server, a release engine node and two release relays on loopback,
# then watchtower-bench against them:
#   1. engine isolation: engine TPS and CPU, idle vs SUBSCRIBERS subscribers
#      spread over the two relays (commands and the TPS probe on the engine);
#   2. the relay hop: transit staleness p99 of one 10 ms stream, direct on the
#      engine node vs through a relay, and fan-out of FANOUT subscribers on
#      one relay;
#   3. commands: closed-loop ApplyCommand, direct vs through a relay.
# Every figure of one run comes from the same machine state, side by side.
# Usage: benches/scale-out.sh [SUBSCRIBERS] [FANOUT]   (defaults 10000, 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
subscribers=${1:-10000}
fanout=${2:-1000}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 || true
echo "open files: $(ulimit -n); load average: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)"
cargo build --release --bin watchtower --bin watchtower-bench
bin=target/release
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
nats-server -a 127.0.0.1 -p 14222 2>/dev/null & pids+=($!)
sleep 0.5
common=(--data-dir off --legacy-ws-listen off --max-connections 60000 --max-subscribers 60000)
"$bin/watchtower" "${common[@]}" --listen 127.0.0.1:15051 --broker nats://127.0.0.1:14222 >/tmp/scale-engine.log 2>&1 & engine=$!; pids+=($engine)
sleep 1
"$bin/watchtower" relay "${common[@]}" --listen 127.0.0.1:15061 --broker nats://127.0.0.1:14222 >/tmp/scale-relay1.log 2>&1 & relay1=$!; pids+=($relay1)
"$bin/watchtower" relay "${common[@]}" --listen 127.0.0.1:15062 --broker nats://127.0.0.1:14222 >/tmp/scale-relay2.log 2>&1 & pids+=($!)
sleep 2
bench="$bin/watchtower-bench"
echo "== 1. engine isolation, $subscribers subscribers over two relays"
"$bench" isolation --addr 127.0.0.1:15051 --server-pid "$engine" --rate 10 \
  --subscribers "$subscribers" --subscribe-addr 127.0.0.1:15061,127.0.0.1:15062 --windows 3 --window 5
echo "== 2a. fan-out of $fanout subscribers, direct on the engine node"
"$bench" fanout --addr 127.0.0.1:15051 --server-pid "$engine" --subscribers "$fanout" --duration 10
echo "== 2b. fan-out of $fanout subscribers on one relay"
"$bench" fanout --addr 127.0.0.1:15061 --server-pid "$relay1" --subscribers "$fanout" --duration 10
echo "== 3a. commands, closed loop, direct"
"$bench" apply --addr 127.0.0.1:15051 --concurrency 16 --duration 10
echo "== 3b. commands, closed loop, through a relay"
"$bench" apply --addr 127.0.0.1:15061 --concurrency 16 --duration 10
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
