// Number and value formatting shared by the status bar, charts and controls.
import type { ParameterValue } from "./gen/watchtower/v1/watchtower_pb.js";

const compact = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4, notation: "compact" });
const plain = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });
const whole = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** A chart or status figure: compact for large magnitudes, plain otherwise. */
export function fmtNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.abs(n) >= 10_000 ? compact.format(n) : plain.format(n);
}

export function fmtInt(n: number | bigint): string {
  return whole.format(n);
}

/** A parameter value as an operator types it: no grouping, full precision. */
export function fmtValue(v: ParameterValue | undefined): string {
  if (!v) return "–";
  switch (v.kind.case) {
    case "number":
      return String(v.kind.value);
    case "integer":
      return v.kind.value.toString();
    case "flag":
      return v.kind.value ? "on" : "off";
    default:
      return "–";
  }
}

/** The value as a JS number, for sliders; flags are 0 or 1. */
export function valueAsNumber(v: ParameterValue | undefined): number {
  if (!v) return NaN;
  switch (v.kind.case) {
    case "number":
      return v.kind.value;
    case "integer":
      return Number(v.kind.value);
    case "flag":
      return v.kind.value ? 1 : 0;
    default:
      return NaN;
  }
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}
