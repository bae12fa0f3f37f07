// One control per GlobalRegistry parameter, built from ListParameters. Every
// change goes through ApplyCommand (or, in stage mode, into the staging tray,
// which applies them together); its receipt (or the server's error) is shown
// next to the control. Current values follow telemetry, except while the
// operator works a control: then it holds still, and the value it started
// from goes as expected_value, so a change someone else made meanwhile is a
// conflict, not overwritten.
import { Code, ConnectError } from "@connectrpc/connect";
import { client } from "./api.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import {
  type GodResponse,
  type ParameterSpec,
  type ParameterValue,
  ValueType,
} from "./gen/watchtower/v1/watchtower_pb.js";
import { el, fmtValue, valueAsNumber } from "./format.js";

export type Kind = ParameterValue["kind"];

/** Where a control's changes go in stage mode (the staging tray). */
export interface Stage {
  /** True while changes are staged rather than sent. */
  readonly active: boolean;
  /** Stages `kind` for `control`'s key, expecting the parameter to hold `expected`. */
  add(control: ParamControl, kind: Kind, expected: ParameterValue | undefined): void;
}

/** "InvalidArgument" -> ["INVALID_ARGUMENT", "invalid_argument"]. */
export function codeNames(code: Code): [string, string] {
  const snake = (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
  return [snake.toUpperCase(), snake];
}

export class ParamControl {
  readonly root: HTMLElement;
  private readonly current: HTMLElement;
  private readonly receipt: HTMLElement;
  private readonly slider?: HTMLInputElement;
  private readonly input?: HTMLInputElement;
  private readonly toggle?: HTMLInputElement;
  /** The operator typed something not yet applied: telemetry must not overwrite it. */
  private dirty = false;
  private dragging = false;
  private pending = 0;
  private seq = 0;
  /** Snapshots older than the last applied command would undo it on screen. */
  private syncFromTick = 0n;
  /**
   * The value this page believes the parameter holds: sent as expected_value,
   * so a change someone else made first is refused (ABORTED), not overwritten.
   * While a command of ours is in flight, it is the value that one sets.
   */
  private expected?: ParameterValue;
  /**
   * The value the operator saw when they began working this control (focus
   * or pointer down): telemetry does not move the control while it is set,
   * and a change sends it as expected_value.
   */
  private editBase?: ParameterValue;
  /** A change of this control waits in the staging tray. */
  private staged = false;

  constructor(
    readonly spec: ParameterSpec,
    canWrite: boolean,
    private readonly stage: Stage,
  ) {
    const key = spec.key;
    const disabled = !spec.mutable || !canWrite;
    this.current = el("span", { class: "param-value", "data-testid": `current-${key}` }, fmtValue(spec.currentValue));
    this.receipt = el("div", { class: "receipt", "data-testid": `receipt-${key}`, "aria-live": "polite" });
    const inputs = el("div", { class: "param-inputs" });

    if (spec.valueType === ValueType.FLAG) {
      this.toggle = el("input", { type: "checkbox", role: "switch", "data-testid": `toggle-${key}`, "aria-label": key });
      this.toggle.checked = valueAsNumber(spec.currentValue) === 1;
      this.toggle.disabled = disabled;
      this.toggle.addEventListener("change", () => this.send({ case: "flag", value: this.toggle!.checked }));
      inputs.append(el("label", { class: "switch" }, this.toggle, el("span", { class: "switch-track" })));
    } else {
      const min = valueAsNumber(spec.min);
      const max = valueAsNumber(spec.max);
      const step = spec.step > 0 ? spec.step : spec.valueType === ValueType.INTEGER ? 1 : (max - min) / 100;
      const slider = el("input", {
        type: "range",
        min: String(min),
        max: String(max),
        step: String(step),
        "data-testid": `slider-${key}`,
        "aria-label": `${key} slider`,
      });
      // No min/max on the number input: an operator may type any value and
      // send it, and the server says what it allows.
      const input = el("input", {
        type: "number",
        step: "any",
        inputmode: "decimal",
        "data-testid": `input-${key}`,
        "aria-label": `${key} value`,
      });
      const apply = el("button", { type: "button", class: "btn", "data-testid": `apply-${key}` }, "Apply");
      slider.value = input.value = fmtValue(spec.currentValue);
      for (const x of [slider, input, apply]) x.disabled = disabled;
      slider.addEventListener("pointerdown", () => {
        this.dragging = true;
        this.beginEdit();
      });
      for (const x of [slider, input]) {
        x.addEventListener("focus", () => this.beginEdit());
        x.addEventListener("blur", () => this.endEdit());
      }
      window.addEventListener("pointerup", () => (this.dragging = false));
      slider.addEventListener("input", () => {
        input.value = slider.value;
        this.dirty = false;
      });
      slider.addEventListener("change", () => {
        this.dragging = false;
        this.sendTyped(slider.value);
      });
      input.addEventListener("input", () => (this.dirty = true));
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") this.sendTyped(input.value);
      });
      apply.addEventListener("click", () => this.sendTyped(input.value));
      this.slider = slider;
      this.input = input;
      inputs.append(slider, input, apply);
    }

    const meta: string[] = [];
    if (spec.valueType !== ValueType.FLAG) {
      meta.push(`range [${fmtValue(spec.min)}, ${fmtValue(spec.max)}]`, `step ${spec.step}`);
    }
    meta.push(`default ${fmtValue(spec.defaultValue)}`);
    this.root = el(
      "div",
      { class: `param${spec.mutable ? "" : " is-fixed"}`, "data-testid": `control-${key}` },
      el(
        "div",
        { class: "param-top" },
        el("code", { class: "param-key", title: key }, key),
        el("span", { class: "param-current" }, this.current, el("span", { class: "unit" }, spec.unit)),
      ),
      el("p", { class: "param-desc" }, spec.description),
      inputs,
      el(
        "div",
        { class: "param-meta" },
        meta.join(" · "),
        ...(spec.mutable ? [] : [el("span", { class: "badge" }, "fixed at start-up")]),
      ),
      this.receipt,
    );
  }

  /** The value now in force, from the latest snapshot. */
  update(value: ParameterValue, tick: bigint): void {
    this.current.textContent = fmtValue(value);
    this.current.dataset.tick = tick.toString();
    if (this.pending > 0 || tick < this.syncFromTick) return;
    this.expected = value;
    if (this.editBase || this.staged) return;
    if (this.toggle) {
      this.toggle.checked = valueAsNumber(value) === 1;
      return;
    }
    const text = fmtValue(value);
    if (this.slider && !this.dragging) this.slider.value = text;
    if (this.input && !this.dirty && document.activeElement !== this.input) this.input.value = text;
  }

  private beginEdit(): void {
    this.editBase ??= this.expected;
  }

  private endEdit(): void {
    if (this.pending === 0 && !this.dragging && !this.dirty) this.editBase = undefined;
  }

  /** The staged change was applied (in a batch) or dropped. */
  unstage(applied?: GodResponse): void {
    this.staged = false;
    this.dirty = false;
    if (applied) {
      this.syncFromTick = applied.appliedTick;
      this.showApplied(applied);
    } else {
      this.setReceipt("", []);
    }
  }

  /** The batch holding the staged change was refused; it stays staged. */
  showBatchError(message: string): void {
    this.setReceipt("error", [el("span", { class: "receipt-status" }, "Batch refused"), el("span", {}, message)]);
  }

  /** Sends what the operator entered; out-of-range values go to the server as typed. */
  private sendTyped(text: string): void {
    const trimmed = text.trim();
    const n = Number(trimmed);
    if (trimmed === "" || !Number.isFinite(n)) {
      this.showLocalError(`"${text}" is not a number`);
      return;
    }
    // An integer parameter gets an integer; anything else goes as a number,
    // so the server (not the page) decides what is accepted.
    if (this.spec.valueType === ValueType.INTEGER && Number.isInteger(n)) {
      this.send({ case: "integer", value: BigInt(trimmed.replace(/\.0*$/, "")) });
    } else {
      this.send({ case: "number", value: n });
    }
  }

  private async send(kind: Kind): Promise<void> {
    const expectedValue = this.editBase ?? this.expected;
    this.editBase = undefined;
    if (this.stage.active) {
      this.staged = true;
      this.stage.add(this, kind, expectedValue);
      this.setReceipt("staged", [
        el("span", { class: "receipt-status" }, "Staged"),
        el("span", {}, `${fmtKind(kind)}: apply it with the staged changes`),
      ]);
      return;
    }
    const mine = ++this.seq;
    this.pending++;
    this.setReceipt("pending", [el("span", { class: "receipt-status" }, "Sending…")]);
    this.expected = { $typeName: "watchtower.v1.ParameterValue", kind };
    try {
      const res = await client.applyCommand({
        command: { key: this.spec.key, value: { kind }, expectedValue, reason: "dashboard" },
      });
      if (mine !== this.seq) return;
      const r = res.response;
      if (r?.success) {
        this.dirty = false;
        this.syncFromTick = r.appliedTick;
        this.showApplied(r);
      } else {
        this.expected = undefined;
        this.setReceipt("error", [
          el("span", { class: "receipt-status" }, "Rejected"),
          el("span", {}, r?.error || "no response"),
        ]);
      }
    } catch (e) {
      if (mine !== this.seq) return;
      // Not applied: what the parameter holds comes with the next snapshot.
      this.expected = undefined;
      this.showError(ConnectError.from(e));
    } finally {
      this.pending--;
    }
  }

  private showApplied(r: GodResponse): void {
    this.setReceipt(
      "ok",
      [
        el("span", { class: "receipt-status" }, `Applied at tick ${r.appliedTick}`),
        el("span", { class: "receipt-change" }, `${fmtValue(r.oldValue)} → ${fmtValue(r.newValue)}`),
      ],
      { tick: r.appliedTick.toString() },
    );
  }

  private showError(err: ConnectError): void {
    this.setReceipt("error", errorParts(err), { code: codeNames(err.code)[1] });
  }

  private showLocalError(message: string): void {
    this.setReceipt("error", [el("span", { class: "receipt-status" }, "Not sent"), el("span", {}, message)]);
  }

  private setReceipt(state: string, children: Node[], data: Record<string, string> = {}): void {
    // Spaces between the parts keep textContent readable for tests and screen readers.
    this.receipt.replaceChildren(...children.flatMap((c, i) => (i ? [" ", c] : [c])));
    this.receipt.dataset.state = state;
    delete this.receipt.dataset.tick;
    delete this.receipt.dataset.code;
    Object.assign(this.receipt.dataset, data);
  }
}

/** A value as the operator would type it. */
export function fmtKind(kind: Kind): string {
  return fmtValue({ $typeName: "watchtower.v1.ParameterValue", kind });
}

/**
 * A value in canonical JSON (`{"number":0.24}`, as ErrorInfo's
 * `current_value` carries it), as the operator would type it.
 */
function fmtJsonValue(json: string): string {
  try {
    const v = JSON.parse(json) as { number?: number; integer?: string; flag?: boolean };
    if (v.number !== undefined) return String(v.number);
    if (v.integer !== undefined) return v.integer;
    if (v.flag !== undefined) return v.flag ? "on" : "off";
  } catch {
    // Not JSON: show it as sent.
  }
  return json;
}

/**
 * The parts of a receipt for a refused call: the gRPC code, a conflict's
 * current value, the ErrorInfo reasons, the server's message, the
 * BadRequest fields and the RetryInfo delay.
 */
export function errorParts(err: ConnectError): Node[] {
  const [upper, lower] = codeNames(err.code);
  const infos = err.findDetails(ErrorInfoSchema);
  const conflict = infos.find((i) => i.reason === "CONFLICT");
  const parts: Node[] = [
    el("span", { class: "receipt-status", title: lower }, upper),
    ...(conflict
      ? [
          el(
            "span",
            { class: "receipt-conflict", "data-testid": "conflict" },
            `Conflict: changed by someone else, now ${fmtJsonValue(conflict.metadata.current_value ?? "")}`,
          ),
        ]
      : []),
    ...infos.map((i) => el("span", { class: "receipt-reason" }, i.reason)),
    el("span", { class: "receipt-message" }, err.rawMessage),
  ];
  // google.rpc.BadRequest: the field at fault, and what it allows when
  // that is not already in the message.
  for (const bad of err.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) {
      // The description often repeats the message and adds what is allowed: show the addition.
      const rest = v.description.startsWith(err.rawMessage) ? v.description.slice(err.rawMessage.length) : ` ${v.description}`;
      const extra = rest.replace(/^[;:,]?\s*/, " ").trimEnd();
      parts.push(el("span", { class: "receipt-detail" }, "field ", el("code", {}, v.field), extra));
    }
  }
  // google.rpc.RetryInfo (a full queue): when trying again makes sense.
  for (const retry of err.findDetails(RetryInfoSchema)) {
    const delay = retry.retryDelay;
    if (delay) {
      const ms = Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6);
      parts.push(el("span", { class: "receipt-detail" }, `retry in ${ms} ms`));
    }
  }
  return parts;
}

/** The parameter panel, grouped by key namespace ("fiscal", "monetary", …). */
export class ControlPanel {
  private readonly controls = new Map<string, ParamControl>();

  constructor(
    private readonly parent: HTMLElement,
    private readonly stage: Stage,
  ) {}

  get built(): boolean {
    return this.controls.size > 0;
  }

  /** One control per spec; with `canWrite` false (an observer) every control is read-only. */
  build(specs: ParameterSpec[], canWrite: boolean): void {
    this.controls.clear();
    const groups = new Map<string, HTMLElement>();
    const nodes: HTMLElement[] = [];
    for (const spec of specs) {
      const ns = spec.key.split(".")[0] ?? "";
      let group = groups.get(ns);
      if (!group) {
        group = el("div", { class: "param-group" }, el("h3", { class: "group-title" }, ns));
        groups.set(ns, group);
        nodes.push(group);
      }
      const c = new ParamControl(spec, canWrite, this.stage);
      this.controls.set(spec.key, c);
      group.append(c.root);
    }
    const fixed = (g: HTMLElement) => g.querySelector(".param:not(.is-fixed)") === null;
    nodes.sort((a, b) => Number(fixed(a)) - Number(fixed(b)));
    if (!canWrite) {
      nodes.unshift(
        el("p", { class: "readonly-note", "data-testid": "readonly-note" }, "Observers see the parameters but cannot change them. Sign in as an operator to steer."),
      );
    }
    this.parent.replaceChildren(...nodes);
  }

  /** Current values from the snapshot taken at `tick`. */
  update(values: { [key: string]: ParameterValue }, tick: bigint): void {
    for (const [key, v] of Object.entries(values)) this.controls.get(key)?.update(v, tick);
  }
}
