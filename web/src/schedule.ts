// The scheduled commands panel: what the engine holds for a later tick
// (ListScheduledCommands, refreshed every few seconds and after a cancel),
// with a Cancel button per command for operators (CancelScheduledCommand).
import { ConnectError } from "@connectrpc/connect";
import { client } from "./api.js";
import { codeNames } from "./controls.js";
import type { ScheduledCommand } from "./gen/watchtower/v1/watchtower_pb.js";
import { el, fmtValue } from "./format.js";

/** How often the list is asked for; each ask takes a slot of the engine's queue. */
const REFRESH_MS = 2000;

export class ScheduledList {
  private canCancel = false;
  private timer = 0;

  constructor(
    private readonly list: HTMLElement,
    private readonly status: HTMLElement,
  ) {}

  /** Starts refreshing; `canCancel` (operators) adds the Cancel buttons. */
  start(canCancel: boolean): void {
    this.canCancel = canCancel;
    window.clearInterval(this.timer);
    this.timer = window.setInterval(() => void this.refresh(), REFRESH_MS);
    void this.refresh();
  }

  async refresh(): Promise<void> {
    try {
      const res = await client.listScheduledCommands({});
      const rows = res.commands.map((c) => this.row(c));
      this.list.replaceChildren(...(rows.length ? rows : [el("li", { class: "muted" }, "No scheduled commands.")]));
      this.status.textContent = "";
    } catch (e) {
      const err = ConnectError.from(e);
      this.status.textContent = `${codeNames(err.code)[0]}: ${err.rawMessage}`;
    }
  }

  private row(s: ScheduledCommand): HTMLElement {
    const c = s.command;
    const id = c?.id ?? "";
    return el(
      "li",
      { class: "feed-row", "data-testid": "scheduled-row", "data-id": id, "data-key": c?.key ?? "" },
      el("span", { class: "feed-status" }, "AT"),
      el(
        "div",
        { class: "feed-body" },
        el(
          "div",
          { class: "feed-line" },
          el("code", { class: "feed-key" }, c?.key ?? ""),
          el("span", { class: "feed-value" }, `→ ${fmtValue(c?.value)}`),
        ),
        el(
          "div",
          { class: "feed-meta" },
          el("span", {}, `at tick ${c?.applyAtTick ?? 0n}`),
          el("span", {}, s.principal),
          el("span", { class: "feed-id", title: id }, id.slice(0, 12)),
          this.canCancel ? this.cancelButton(id) : "",
        ),
      ),
    );
  }

  private cancelButton(commandId: string): HTMLElement {
    const button = el("button", { type: "button", class: "link", "data-testid": "cancel-scheduled" }, "Cancel");
    button.addEventListener("click", () => {
      button.textContent = "Cancelling…";
      client.cancelScheduledCommand({ commandId }).then(
        () => void this.refresh(),
        (e) => {
          const err = ConnectError.from(e);
          button.textContent = codeNames(err.code)[0];
          button.title = err.rawMessage;
        },
      );
    });
    return button;
  }
}
