// Live telemetry charts: one uPlot per indicator group, x = engine tick.
// Every chart plots whatever numbers arrive; a field the model does not fill
// yet is simply a flat line at 0.
import uPlot from "uplot";
import type { WatchtowerSnapshot } from "./gen/watchtower/v1/watchtower_pb.js";
import { el, fmtNumber } from "./format.js";

/** Points kept per chart; matches the server's history cap. */
const CAPACITY = 600;
const HEIGHT = 150;

interface SeriesDef {
  label: string;
  color: string;
  get: (s: WatchtowerSnapshot) => number;
}

interface ChartDef {
  id: string;
  title: string;
  unit: string;
  series: SeriesDef[];
}

const pct = (n: number | undefined) => (n ?? 0) * 100;

const CHARTS: ChartDef[] = [
  {
    id: "gdp",
    title: "GDP",
    unit: "per tick",
    series: [
      { label: "Nominal", color: "#4cc9f0", get: (s) => s.macro?.nominalGdp ?? 0 },
      { label: "Real", color: "#f4a261", get: (s) => s.macro?.realGdp ?? 0 },
    ],
  },
  {
    id: "unemployment",
    title: "Unemployment rate",
    unit: "%",
    series: [{ label: "Unemployed", color: "#e76f51", get: (s) => pct(s.macro?.unemploymentRate) }],
  },
  {
    id: "inflation",
    title: "Inflation",
    unit: "%",
    series: [
      { label: "Per tick", color: "#f72585", get: (s) => pct(s.macro?.inflation) },
      { label: "12-tick ann.", color: "#b5179e", get: (s) => pct(s.macro?.inflation12Tick) },
    ],
  },
  {
    id: "gini",
    title: "Inequality (Gini)",
    unit: "0–1",
    series: [
      { label: "Wealth", color: "#90be6d", get: (s) => s.agents?.wealthGini ?? 0 },
      { label: "Income", color: "#43aa8b", get: (s) => s.agents?.incomeGini ?? 0 },
    ],
  },
  {
    id: "balance",
    title: "Government balance",
    unit: "per tick",
    series: [
      { label: "Tax revenue", color: "#57cc99", get: (s) => s.government?.taxRevenue ?? 0 },
      { label: "Spending", color: "#ffb703", get: (s) => s.government?.spending ?? 0 },
      { label: "Deficit", color: "#ef476f", get: (s) => s.government?.deficit ?? 0 },
    ],
  },
  {
    id: "debt",
    title: "Government debt",
    unit: "outstanding bonds",
    series: [{ label: "Debt", color: "#c77dff", get: (s) => s.government?.debt ?? 0 }],
  },
  {
    id: "tps",
    title: "Engine throughput",
    unit: "ticks/s",
    series: [
      { label: "Measured", color: "#4895ef", get: (s) => s.engine?.measuredTps ?? 0 },
      { label: "Target", color: "#6c7a89", get: (s) => s.engine?.targetTps ?? 0 },
    ],
  },
  {
    id: "tick-duration",
    title: "Tick duration",
    unit: "µs",
    series: [{ label: "Last tick", color: "#2ec4b6", get: (s) => s.engine?.lastTickDurationUs ?? 0 }],
  },
];

const AXIS = {
  stroke: "#8a96a8",
  grid: { stroke: "rgba(138,150,168,0.12)", width: 1 },
  ticks: { stroke: "rgba(138,150,168,0.25)", width: 1 },
  font: "11px ui-sans-serif, system-ui, sans-serif",
};

class LiveChart {
  private readonly xs: number[] = [];
  private readonly ys: number[][];
  private readonly latest: HTMLElement[];
  private readonly plot: uPlot;

  constructor(
    private readonly def: ChartDef,
    parent: HTMLElement,
  ) {
    this.ys = def.series.map(() => []);
    this.latest = def.series.map(() => el("span", { class: "legend-value" }, "–"));
    const legend = el(
      "ul",
      { class: "legend" },
      ...def.series.map((s, i) =>
        el(
          "li",
          {},
          el("span", { class: "swatch", style: `background:${s.color}` }),
          el("span", { class: "legend-label" }, s.label),
          this.latest[i]!,
        ),
      ),
    );
    const area = el("div", { class: "chart-plot" });
    parent.append(
      el(
        "article",
        { class: "card chart", "data-testid": `chart-${def.id}` },
        el(
          "header",
          { class: "chart-head" },
          el("h3", {}, def.title),
          el("span", { class: "chart-unit" }, def.unit),
        ),
        legend,
        area,
      ),
    );
    const opts: uPlot.Options = {
      width: Math.max(area.clientWidth, 200),
      height: HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false } },
      axes: [
        { ...AXIS, size: 28 },
        { ...AXIS, size: 52, values: (_u, ticks) => ticks.map(fmtNumber) },
      ],
      series: [
        { label: "tick" },
        ...def.series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, points: { show: false } })),
      ],
    };
    this.plot = new uPlot(opts, [this.xs, ...this.ys], area);
    new ResizeObserver(() => {
      const width = Math.floor(area.clientWidth);
      if (width > 0 && width !== this.plot.width) this.plot.setSize({ width, height: HEIGHT });
    }).observe(area);
  }

  push(snap: WatchtowerSnapshot): void {
    this.xs.push(Number(snap.tick));
    this.def.series.forEach((s, i) => this.ys[i]!.push(s.get(snap)));
    if (this.xs.length > CAPACITY) {
      this.xs.shift();
      for (const y of this.ys) y.shift();
    }
  }

  clear(): void {
    this.xs.length = 0;
    for (const y of this.ys) y.length = 0;
  }

  redraw(): void {
    this.plot.setData([this.xs, ...this.ys]);
    this.ys.forEach((y, i) => {
      this.latest[i]!.textContent = y.length ? fmtNumber(y[y.length - 1]!) : "–";
    });
  }
}

/** All charts; snapshots are buffered and drawn at most once per frame. */
export class ChartBoard {
  private readonly charts: LiveChart[];
  private frame = 0;

  constructor(parent: HTMLElement) {
    this.charts = CHARTS.map((def) => new LiveChart(def, parent));
  }

  push(snap: WatchtowerSnapshot): void {
    for (const c of this.charts) c.push(snap);
    this.schedule();
  }

  /** Forget everything, e.g. before a reconnect replays the history. */
  clear(): void {
    for (const c of this.charts) c.clear();
    this.schedule();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      for (const c of this.charts) c.redraw();
    });
  }
}
