// The staging tray: in stage mode, parameter changes wait here and go to the
// server together as one ApplyCommands (one Phase 0, all or nothing), each
// with the expected_value its control started from. The tray shows the
// per-command receipts, or the refusal with the failing command by index.
import { ConnectError } from "@connectrpc/connect";
import { client } from "./api.js";
import { type Kind, type ParamControl, type Stage, errorParts, fmtKind } from "./controls.js";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";
import type { GodResponse, ParameterValue } from "./gen/watchtower/v1/watchtower_pb.js";
import { el, fmtValue } from "./format.js";

interface Staged {
  control: ParamControl;
  kind: Kind;
  expected?: ParameterValue;
}

/** `commands[2].value` -> 2. */
function failingIndex(err: ConnectError): number | undefined {
  for (const bad of err.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) {
      const m = /^commands\[(\d+)\]/.exec(v.field);
      if (m) return Number(m[1]);
    }
  }
  return undefined;
}

export class StagingTray implements Stage {
  /** In staging order; staging a key again replaces its value, keeps its place and expected value. */
  private readonly items: Staged[] = [];
  private readonly mode: HTMLInputElement;
  private readonly list: HTMLElement;
  private readonly actions: HTMLElement;
  private readonly apply: HTMLButtonElement;
  private readonly receipt: HTMLElement;

  constructor(root: HTMLElement) {
    const $ = (id: string) => root.querySelector<HTMLElement>(`[data-testid="${id}"]`)!;
    this.mode = $("stage-mode") as HTMLInputElement;
    this.list = $("staged");
    this.actions = $("staging-actions");
    this.apply = $("apply-staged") as HTMLButtonElement;
    this.receipt = $("staging-receipt");
    this.apply.addEventListener("click", () => void this.applyAll());
    $("discard-staged").addEventListener("click", () => this.discard());
    this.render();
  }

  get active(): boolean {
    return this.mode.checked;
  }

  add(control: ParamControl, kind: Kind, expected: ParameterValue | undefined): void {
    const existing = this.items.find((i) => i.control === control);
    if (existing) existing.kind = kind;
    else this.items.push({ control, kind, expected });
    this.render();
  }

  private render(failed?: number): void {
    this.list.replaceChildren(
      ...this.items.map((item, i) =>
        el(
          "li",
          {
            class: `staged-row${i === failed ? " is-err" : ""}`,
            "data-testid": "staged-row",
            "data-key": item.control.spec.key,
            ...(i === failed ? { "data-state": "error" } : {}),
          },
          el("span", { class: "staged-index" }, `#${i}`),
          el("code", { class: "feed-key" }, item.control.spec.key),
          el("span", { class: "feed-value" }, `${fmtValue(item.expected)} → ${fmtKind(item.kind)}`),
        ),
      ),
    );
    this.actions.hidden = this.items.length === 0;
    this.apply.textContent = `Apply ${this.items.length} together`;
  }

  private discard(): void {
    for (const item of this.items.splice(0)) item.control.unstage();
    this.setReceipt("", []);
    this.render();
  }

  private async applyAll(): Promise<void> {
    if (!this.items.length) return;
    const batch = [...this.items];
    this.apply.disabled = true;
    this.setReceipt("pending", [el("span", { class: "receipt-status" }, `Sending ${batch.length} changes…`)]);
    try {
      const res = await client.applyCommands({
        commands: batch.map((i) => ({
          key: i.control.spec.key,
          value: { kind: i.kind },
          expectedValue: i.expected,
          reason: "dashboard batch",
        })),
      });
      this.items.splice(0, batch.length);
      batch.forEach((item, i) => item.control.unstage(res.responses[i]));
      this.showApplied(res.responses);
      this.render();
    } catch (e) {
      const err = ConnectError.from(e);
      const index = failingIndex(err);
      const failed = index === undefined ? undefined : batch[index];
      const which = failed ? `command #${index} (${failed.control.spec.key}) refused; nothing was applied` : "nothing was applied";
      this.setReceipt(
        "error",
        [el("span", { class: "receipt-failing", "data-testid": "staging-failing" }, which), ...errorParts(err)],
        { index: index === undefined ? "" : String(index) },
      );
      for (const item of batch) item.control.showBatchError(which);
      this.render(index);
    } finally {
      this.apply.disabled = false;
    }
  }

  private showApplied(responses: GodResponse[]): void {
    const tick = responses[0]?.appliedTick ?? 0n;
    this.setReceipt(
      "ok",
      [
        el("span", { class: "receipt-status" }, `Applied ${responses.length} together at tick ${tick}`),
        el(
          "ol",
          { class: "staged-receipts", "data-testid": "staged-receipts" },
          ...responses.map((r) =>
            el(
              "li",
              { "data-key": r.key, "data-tick": r.appliedTick.toString() },
              el("code", {}, r.key),
              " ",
              el("span", { class: "receipt-change" }, `${fmtValue(r.oldValue)} → ${fmtValue(r.newValue)}`),
            ),
          ),
        ),
      ],
      { tick: tick.toString() },
    );
  }

  private setReceipt(state: string, children: Node[], data: Record<string, string> = {}): void {
    this.receipt.replaceChildren(...children.flatMap((c, i) => (i ? [" ", c] : [c])));
    this.receipt.dataset.state = state;
    delete this.receipt.dataset.tick;
    delete this.receipt.dataset.index;
    Object.assign(this.receipt.dataset, data);
  }
}
