#!/usr/bin/env python3
"""Who runs during a fan-out burst, from `perf sched timehist`.

    perf sched record -a -o sched.data -- sleep 5     # during `watchtower-bench fanout`
    perf sched timehist -i sched.data > timehist.txt
    benches/burst.py timehist.txt SERVER_PID [--from-tick]

A burst starts when a server thread wakes after BURST_GAP of quiet (at
`--tps 10`, a publish). With `--from-tick` it starts when the engine thread
wakes after that quiet instead (at `--tps 10`, the tick that publishes), and
the table covers the whole 100 ms to the next one: for fan-outs whose bursts
leave no quiet gap. Prints, per 2.5 ms after the start, the share of a
core the server's threads, the load generator's (`tokio-rt-worker` and
`bench-*` threads of other processes) and the idle task had, averaged over
the bursts; then when each side's work in a burst ended (98% of it done).
"""

import sys
from collections import Counter

BIN = 0.0025
BINS = 12
BURST_GAP = 0.04
SPAN = 0.08
TICK = 0.1


def read(path):
    """(end time s, thread name, run time s) per line of timehist output,
    without each thread's first line, which counts from the start of the
    recording rather than from when the thread was switched in, and without
    runs longer than BURST_GAP."""
    rows, seen = [], set()
    with open(path) as f:
        for line in f:
            fields = line.split()
            try:
                end, run = float(fields[0]), float(fields[-1]) / 1000
            except (ValueError, IndexError):
                continue
            name = " ".join(fields[2:-3])
            if name not in seen:
                seen.add(name)
            elif run <= BURST_GAP:
                rows.append((end, name, run))
    return rows


def side(name, pid):
    if name.startswith("<idle>"):
        return "idle"
    if f"/{pid}]" in name:
        return "engine" if "engi" in name else "server"
    if "tokio-rt" in name or "bench" in name:
        return "load generator"
    return "other"


def bursts(rows, pid, who):
    starts, quiet_from = [], -1.0
    for end, name, run in sorted(rows, key=lambda r: r[0] - r[2]):
        if side(name, pid) != who or run <= 0:
            continue
        if end - run - quiet_from > BURST_GAP:
            starts.append(end - run)
        quiet_from = max(quiet_from, end)
    return starts


def overlap(start, end, lo, hi):
    return max(0.0, min(end, hi) - max(start, lo))


def shares(rows, pid, starts, n):
    bins = [Counter() for _ in range(n)]
    for end, name, run in rows:
        for t in starts:
            for b in range(n):
                lo = t + b * BIN
                bins[b][side(name, pid)] += overlap(end - run, end, lo, lo + BIN)
    return bins


def ended(rows, pid, start, who, span):
    """ms after `start` when 98% of `who`'s work in the burst was done."""
    spans = sorted(
        (max(end - run, start), min(end, start + span))
        for end, name, run in rows
        if side(name, pid) == who and end > start and end - run < start + span
    )
    total = sum(e - s for s, e in spans)
    done = 0.0
    for s, e in spans:
        done += e - s
        if done >= 0.98 * total:
            return (e - start) * 1000
    return 0.0


def main():
    path, pid = sys.argv[1], sys.argv[2]
    from_tick = "--from-tick" in sys.argv[3:]
    span, n = (TICK, round(TICK / BIN)) if from_tick else (SPAN, BINS)
    rows = read(path)
    # The first and last bursts are cut by the recording's edges.
    starts = bursts(rows, pid, "engine" if from_tick else "server")[1:-1]
    print(f"{len(starts)} bursts; share of a core per {BIN * 1000} ms after the start")
    for b, counts in enumerate(shares(rows, pid, starts, n)):
        cells = " ".join(
            f"{who}={counts[who] / len(starts) / BIN * 100:3.0f}%"
            for who in ("server", "load generator", "idle")
        )
        print(f"{b * BIN * 1000:5.1f} ms  {cells}")
    for who in ("server", "load generator"):
        ends = sorted(ended(rows, pid, t, who, span) for t in starts)
        pick = lambda q: ends[min(len(ends) - 1, int(q * len(ends)))]
        print(
            f"{who} done after (ms): p10 {pick(0.1):.1f}, p50 {pick(0.5):.1f}, "
            f"p90 {pick(0.9):.1f}, max {ends[-1]:.1f}"
        )


if __name__ == "__main__":
    main()
