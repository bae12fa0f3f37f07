#!/usr/bin/env python3
"""When the server's work for each tick ends, from its own CPU samples.

    perf record -F 1999 -p SERVER_PID -o server.data -- sleep 5   # during a fan-out
    perf script -i server.data -F comm,tid,time > samples.txt
    benches/tick_end.py samples.txt

A tick starts at the engine thread's first sample after TICK_GAP without
one (at `--tps 10`, each tick). Prints how long after that start the last
sample of any other server thread came, per tick, as percentiles: at the
end of it, the fan-out has written every stream of that tick. A cross-check
for `burst.py`, which reads the scheduler's trace of the whole box.
"""

import bisect
import re
import sys

TICK_GAP = 0.04
LINE = re.compile(r"^\s*(\S.*?)\s+(\d+)\s+([\d.]+):")


def read(path):
    """(time s, is the engine thread) per sample."""
    samples = []
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m:
                samples.append((float(m.group(3)), "engi" in m.group(1)))
    return sorted(samples)


def tick_starts(samples):
    starts = []
    for t, engine in samples:
        if engine and (not starts or t - starts[-1] > TICK_GAP):
            starts.append(t)
    return starts


def main():
    samples = read(sys.argv[1])
    starts = tick_starts(samples)
    last = {}
    for t, engine in samples:
        i = bisect.bisect_right(starts, t) - 1
        if not engine and 0 <= i < len(starts) - 1:
            last[i] = max(last.get(i, 0.0), t - starts[i])
    ends = sorted(v * 1000 for v in last.values())
    pick = lambda q: ends[min(len(ends) - 1, int(q * len(ends)))]
    print(
        f"{len(ends)} ticks; the server's last sample after the tick's start (ms): "
        f"p10 {pick(0.1):.1f}, p50 {pick(0.5):.1f}, p90 {pick(0.9):.1f}, max {ends[-1]:.1f}"
    )


if __name__ == "__main__":
    main()
