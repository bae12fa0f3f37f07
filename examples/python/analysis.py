#!/usr/bin/env python3
"""Notebook-style analysis with the watchtower-client package: record the
economy, move a policy, record again, and plot the policy's effect.

    pip install ./clients/python matplotlib
    python examples/python/analysis.py --addr 127.0.0.1:50051 --out effect.png

It raises the income tax rate and plots tax revenue and household
consumption before and after, with the tick the engine applied the change
at, into a PNG. Each cell below would be one notebook cell.
"""

import argparse

import matplotlib

matplotlib.use("Agg")  # no display needed: the figure goes to a file
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from watchtower_client import Watchtower  # noqa: E402

POLICY = "fiscal.income_tax_rate"
SHOWN = {
    "government.tax_revenue": "tax revenue (currency/tick)",
    "macro.household_consumption": "household consumption (currency/tick)",
    f"param.{POLICY}": "income tax rate",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--out", default="policy_effect.png")
    parser.add_argument("--seconds", type=float, default=3.0, help="recorded before and after")
    parser.add_argument("--rate", type=float, default=0.35, help="the new income tax rate")
    args = parser.parse_args()

    with Watchtower(args.addr) as tower:
        # Cell 1: where the policy stands, and what it may be set to.
        spec = next(p for p in tower.parameters() if p.key == POLICY)
        print(f"{POLICY} = {spec.current} (allowed {spec.minimum} to {spec.maximum} {spec.unit})")

        # Cell 2: a baseline, then the change, then the response.
        before = tower.record(seconds=args.seconds)
        change = tower.set(POLICY, args.rate, reason="analysis.py: a tax rise")
        print(f"applied at tick {change.applied_tick}: {change.old} -> {change.new}")
        after = tower.record(seconds=args.seconds)

    # Cell 3: one table, the change marked, the means either side.
    df = pd.concat([before, after])
    df = df[~df.index.duplicated()].sort_index()
    regime = df.index >= change.applied_tick
    means = df.loc[:, list(SHOWN)].groupby(regime).mean()
    with pd.option_context("display.width", 120, "display.max_columns", None):
        print(means.rename(index={False: "before", True: "after"}))

    # Cell 4: the plot.
    fig, axes = plt.subplots(len(SHOWN), 1, sharex=True, figsize=(8, 7))
    for ax, (column, label) in zip(axes, SHOWN.items()):
        ax.plot(df.index, df[column])
        ax.axvline(change.applied_tick, color="tab:red", linestyle="--")
        ax.set_ylabel(label, fontsize=8)
    axes[0].set_title(f"{POLICY}: {change.old} -> {change.new} at tick {change.applied_tick}")
    axes[-1].set_xlabel("tick")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out} ({len(df)} ticks)")


if __name__ == "__main__":
    main()
