// Watchtower dashboard entry point: the status bar, the live charts, the
// parameter controls (with the staging tray), the command feed and the
// scheduled commands, all but the last fed by one telemetry stream.
import "uplot/dist/uPlot.min.css";
import "./app.css";
import { Code, ConnectError } from "@connectrpc/connect";
import { client, setToken, token } from "./api.js";
import { ChartBoard } from "./charts.js";
import { codeNames, ControlPanel } from "./controls.js";
import { ScheduledList } from "./schedule.js";
import { StagingTray } from "./staging.js";
import {
  type GodResponse,
  Role,
  RunState,
  type WatchtowerSnapshot,
  type WhoAmIResponse,
} from "./gen/watchtower/v1/watchtower_pb.js";
import { el, fmtInt, fmtValue } from "./format.js";

/** Snapshots per second on the stream, and how many past ones fill the charts at once. */
const INTERVAL_MS = 100;
const HISTORY = 600;
const RETRY_MS = 1000;
const FEED_ROWS = 25;

const $ = (id: string) => document.querySelector<HTMLElement>(`[data-testid="${id}"]`)!;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setConnection(state: "connecting" | "live" | "disconnected", detail = ""): void {
  const conn = $("conn");
  conn.dataset.state = state;
  conn.textContent = state === "live" ? "connected" : state;
  conn.title = detail;
}

function renderStatus(s: WatchtowerSnapshot): void {
  $("tick").textContent = s.tick.toString();
  $("tps").textContent = (s.engine?.measuredTps ?? 0).toFixed(1);
  $("queue-depth").textContent = fmtInt(s.engine?.queueDepth ?? 0n);
  $("commands-applied").textContent = fmtInt(s.engine?.commandsApplied ?? 0n);
  $("commands-rejected").textContent = fmtInt(s.engine?.commandsRejected ?? 0n);
  const paused = s.engine?.runState === RunState.PAUSED;
  $("run-state").textContent = paused ? "paused" : "running";
  $("run-state").dataset.state = paused ? "paused" : "running";
  const speed = $("speed") as HTMLInputElement;
  if (document.activeElement !== speed) speed.value = String(s.engine?.targetTps ?? 0);
}

/** Pause, resume, step one tick and set the pace from the status bar (operators only). */
function wireRunControls(): void {
  const send = (action: Parameters<typeof client.controlEngine>[0]["action"]) => {
    client.controlEngine({ action }).catch((e) => {
      const err = ConnectError.from(e);
      $("run-state").title = `${codeNames(err.code)[0]}: ${err.rawMessage}`;
    });
  };
  $("pause").addEventListener("click", () => send({ case: "pause", value: {} }));
  $("resume").addEventListener("click", () => send({ case: "resume", value: {} }));
  $("step").addEventListener("click", () => send({ case: "step", value: { ticks: 1 } }));
  $("speed").addEventListener("change", (e) => {
    const tps = Number((e.target as HTMLInputElement).value);
    if (Number.isFinite(tps) && tps >= 0) send({ case: "setTps", value: { tps } });
  });
}

let feedTotal = -1n;
/** Operators get a Revert button on applied commands in the feed. */
let canRevert = false;

function renderFeed(s: WatchtowerSnapshot): void {
  const audit = s.audit;
  if (!audit || audit.total === feedTotal) return;
  feedTotal = audit.total;
  const rows = audit.recent.slice(-FEED_ROWS).reverse().map(feedRow);
  $("feed").replaceChildren(...(rows.length ? rows : [el("li", { class: "muted" }, "No commands yet.")]));
}

function feedRow(r: GodResponse): HTMLElement {
  const ok = r.success;
  return el(
    "li",
    { class: `feed-row ${ok ? "is-ok" : "is-err"}`, "data-testid": "feed-row", "data-key": r.key },
    el("span", { class: "feed-status" }, ok ? "OK" : "ERR"),
    el(
      "div",
      { class: "feed-body" },
      el(
        "div",
        { class: "feed-line" },
        el("code", { class: "feed-key" }, r.key || "(no key)"),
        ok ? el("span", { class: "feed-value" }, `${fmtValue(r.oldValue)} → ${fmtValue(r.newValue)}`) : "",
      ),
      ok ? "" : el("div", { class: "feed-error" }, r.error),
      el(
        "div",
        { class: "feed-meta" },
        el("span", {}, `tick ${r.appliedTick}`),
        el("span", { class: "feed-id", title: r.commandId }, r.commandId.slice(0, 8)),
        ok && canRevert && !r.key.startsWith("engine.") ? revertButton(r.commandId) : "",
      ),
    ),
  );
}

/** Entries per page of the audit log panel. */
const AUDIT_PAGE = 25;

/**
 * The audit log panel: pages through the run's durable log with
 * ListAuditEntries (oldest first), one "Load more" at a time.
 */
function auditLog(): void {
  const panel = $("audit-log") as HTMLDetailsElement;
  const list = $("audit-entries");
  const more = $("audit-more") as HTMLButtonElement;
  const status = $("audit-status");
  let token = "";
  let loaded = false;
  const load = async () => {
    more.disabled = true;
    try {
      const page = await client.listAuditEntries({ pageSize: AUDIT_PAGE, pageToken: token });
      list.append(...page.entries.map(feedRow));
      token = page.nextPageToken;
      more.hidden = !token;
      status.textContent = list.children.length ? "" : "No commands recorded yet.";
    } catch (e) {
      const err = ConnectError.from(e);
      status.textContent = `${codeNames(err.code)[0]}: ${err.rawMessage}`;
    } finally {
      more.disabled = false;
    }
  };
  panel.addEventListener("toggle", () => {
    if (panel.open && !loaded) {
      loaded = true;
      void load();
    }
  });
  more.addEventListener("click", () => void load());
}

/** Reverts a command; a refusal (the value moved on since) shows on the button. */
function revertButton(commandId: string): HTMLElement {
  const button = el("button", { type: "button", class: "link", "data-testid": "revert" }, "Revert");
  button.addEventListener("click", () => {
    button.textContent = "Reverting…";
    client.revertCommand({ commandId }).then(
      () => (button.textContent = "Reverted"),
      (e) => {
        const err = ConnectError.from(e);
        button.textContent = `${codeNames(err.code)[0]}`;
        button.title = err.rawMessage;
      },
    );
  });
  return button;
}

async function loadParameters(panel: ControlPanel, canWrite: boolean): Promise<void> {
  const res = await client.listParameters({});
  panel.build(res.parameters, canWrite);
}

/**
 * Shows the sign-in form and resolves with the token the user enters;
 * `cancellable` offers to stay as the current (observer) role instead.
 */
function askForToken(message: string, isError: boolean, cancellable: boolean): Promise<string | null> {
  const form = $("auth-form") as HTMLFormElement;
  const input = $("auth-token") as HTMLInputElement;
  const cancel = $("auth-cancel");
  const note = $("auth-message");
  note.textContent = message;
  note.dataset.state = isError ? "error" : "";
  cancel.hidden = !cancellable;
  input.value = "";
  form.hidden = false;
  input.focus();
  return new Promise((resolve) => {
    const done = (value: string | null) => {
      form.hidden = true;
      form.onsubmit = null;
      cancel.onclick = null;
      resolve(value);
    };
    form.onsubmit = (e) => {
      e.preventDefault();
      done(input.value.trim() || null);
    };
    cancel.onclick = () => done(null);
  });
}

/** Who the server says we are, asking the user for a token until it accepts one. */
async function identify(): Promise<WhoAmIResponse> {
  let message = "This server requires a token.";
  let isError = false;
  for (;;) {
    try {
      return await client.whoAmI({});
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code !== Code.Unauthenticated) throw e;
      if (token()) {
        message = `The token was not accepted: ${err.rawMessage}`;
        isError = true;
      }
      // Cancelling a token that failed goes back to calling without one.
      setToken(await askForToken(message, isError, token() !== null));
    }
  }
}

function renderRole(me: WhoAmIResponse, scheduled: ScheduledList): void {
  const role = $("role");
  const name = me.role === Role.OPERATOR ? "operator" : "observer";
  const named = me.principal !== "anonymous" && me.principal !== name;
  role.textContent = named ? `${name} (${me.principal})` : name;
  role.dataset.role = name;
  const signIn = $("sign-in");
  signIn.hidden = me.role === Role.OPERATOR;
  canRevert = me.role === Role.OPERATOR;
  feedTotal = -1n;
  $("run-controls").hidden = me.role !== Role.OPERATOR;
  $("staging").hidden = me.role !== Role.OPERATOR;
  scheduled.start(me.role === Role.OPERATOR);
}

async function main(): Promise<void> {
  auditLog();
  const board = new ChartBoard($("charts"));
  const panel = new ControlPanel($("controls"), new StagingTray($("staging")));
  const scheduled = new ScheduledList($("scheduled"), $("scheduled-status"));
  wireRunControls();
  let latest: WatchtowerSnapshot | undefined;
  let frame = 0;
  const render = () => {
    frame = 0;
    if (!latest) return;
    renderStatus(latest);
    renderFeed(latest);
    panel.update(latest.parameters, latest.tick);
  };

  let me: WhoAmIResponse | undefined;
  let stream: AbortController | undefined;
  $("sign-in").addEventListener("click", async () => {
    const t = await askForToken("Sign in with an operator token to change parameters.", false, true);
    if (!t) return;
    setToken(t);
    me = undefined;
    stream?.abort();
  });

  for (;;) {
    setConnection("connecting");
    try {
      if (!me) {
        me = await identify();
        renderRole(me, scheduled);
        await loadParameters(panel, me.role === Role.OPERATOR);
      } else if (!panel.built) {
        await loadParameters(panel, me.role === Role.OPERATOR);
      }
      // A reconnect replays the history, so start the charts afresh.
      board.clear();
      stream = new AbortController();
      const messages = client.subscribeTelemetry(
        { intervalMs: INTERVAL_MS, history: HISTORY },
        { signal: stream.signal },
      );
      for await (const msg of messages) {
        const snap = msg.snapshot;
        if (!snap) continue;
        setConnection("live");
        board.push(snap);
        latest = snap;
        if (!frame) frame = requestAnimationFrame(render);
      }
      setConnection("disconnected", "the server ended the stream");
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code === Code.Canceled && !me) continue; // a new sign-in restarted the stream
      if (err.code === Code.Unauthenticated) me = undefined; // the token stopped working
      setConnection("disconnected", `${codeNames(err.code)[0]}: ${err.rawMessage}`);
    }
    await sleep(RETRY_MS);
  }
}

void main();
