#!/usr/bin/env bash
# The engine alone, side by side: each server binary given runs at --tps 0
# with a data directory and no clients, and its engine thread is measured
# for 8 s (ticks from /metrics, CPU time from `perf stat -e task-clock` on
# that thread). The binaries alternate, ROUNDS times (default 3), so a
# change that slows the tick itself shows as a ratio, apart from any load.
#
#   benches/engine-alone.sh SERVER_BINARY ...      (ROUNDS=N to repeat more)
#
# Prints one line per run: ticks per second, the engine's CPU in ms per
# second (1000 = a whole core) and its CPU time per tick in µs.
set -euo pipefail
[ $# -gt 0 ] || { sed -n '2,11p' "$0"; exit 2; }
command -v perf >/dev/null || { echo "engine-alone.sh needs perf" >&2; exit 1; }
work=$(mktemp -d)
pid=
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap 'stop; rm -rf "$work"' EXIT

ticks() { curl -s "http://$1/metrics" | awk '/^watchtower_ticks_total/ {print $2}'; }

# Runs one binary and prints its line.
measure() {
  local server=$1 port=$2
  rm -rf "$work/runs"
  "$server" --tps 0 --legacy-ws-listen off --data-dir "$work/runs" \
    --listen "127.0.0.1:$port" >"$work/log" 2>&1 &
  pid=$!
  sleep 4
  local tid
  tid=$(grep -l '^watchtower-engi$' /proc/"$pid"/task/*/comm | cut -d/ -f5)
  local before after
  before=$(ticks "127.0.0.1:$port")
  perf stat -t "$tid" -e task-clock -x, -o "$work/perf" sleep 8
  after=$(ticks "127.0.0.1:$port")
  stop
  local cpu_ms
  cpu_ms=$(grep task-clock "$work/perf" | cut -d, -f1)
  awk -v name="$server" -v n=$((after - before)) -v ms="$cpu_ms" 'BEGIN {
    printf "%s: %d ticks/s, engine CPU %.0f ms/s, %.1f us/tick\n", name, n / 8, ms / 8, ms * 1000 / n
  }'
}

port=20390
for round in $(seq "${ROUNDS:-3}"); do
  echo "== round $round"
  for server in "$@"; do
    measure "$server" "$port"
  done
done
