#!/usr/bin/env node
// Browser test of the Watchtower dashboard against a running server.
//
//   node web/tests/dashboard.mjs http://127.0.0.1:PORT SCREENSHOT_DIR
//
// Drives Debian's Chromium (/usr/bin/chromium) with playwright-core: the tick
// rises, a slider move is applied with a receipt naming the tick, the next
// snapshot carries the new value, an out-of-range value shows the server's
// INVALID_ARGUMENT error, and screenshots are saved at 1280x800 and 390x844.
// Exits non-zero with a message on the first failure.
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { WAIT_MS, byTestId, fail, ok, oneLine, runInChromium, waitFor } from "./lib.mjs";

const KEY = "fiscal.income_tax_rate";
const OUT_OF_RANGE = "5";

const [url, shotDir, ...options] = process.argv.slice(2);
const tokensAt = options.indexOf("--tokens");
const tokenList = tokensAt >= 0 ? options[tokensAt + 1] : undefined;
// --audit: the server records its run, so the audit log panel has entries.
const checkAudit = options.includes("--audit");
if (!url || !shotDir || (tokensAt >= 0 && !tokenList)) {
  console.error("usage: node dashboard.mjs DASHBOARD_URL SCREENSHOT_DIR [--tokens OPERATOR,OBSERVER] [--audit]");
  process.exit(2);
}
const [operatorToken, observerToken] = tokenList ? tokenList.split(",") : [];

/** Sign in: a wrong token is refused, an observer cannot steer, an operator can. */
async function signIn(page, shotDir) {
  const form = byTestId(page, "auth-form");
  const message = byTestId(page, "auth-message");
  const role = byTestId(page, "role");
  await form.waitFor({ state: "visible", timeout: WAIT_MS });
  ok(`the page asks for a token: "${oneLine(await message.innerText())}"`);
  await page.screenshot({ path: join(shotDir, "sign-in-1280x800.png") });
  const submit = async (token) => {
    await byTestId(page, "auth-token").fill(token);
    await byTestId(page, "auth-submit").click();
  };
  await submit("not-the-token");
  await waitFor("the wrong token is refused", async () => {
    const state = await message.getAttribute("data-state");
    const text = await message.innerText();
    return { done: (await form.isVisible()) && state === "error" && /not accepted/i.test(text), seen: { state, text } };
  });
  ok(`a wrong token is refused: "${oneLine(await message.innerText())}"`);
  await submit(observerToken);
  await waitFor("the observer role is shown", async () => {
    const text = await role.innerText();
    return { done: text.startsWith("observer") && !(await form.isVisible()), seen: text };
  });
  const slider = byTestId(page, `slider-${KEY}`);
  await slider.waitFor({ timeout: WAIT_MS });
  if (!(await slider.isDisabled())) fail("an observer's slider is enabled");
  await byTestId(page, "readonly-note").waitFor({ timeout: WAIT_MS });
  ok(`signed in as "${await role.innerText()}": the controls are read-only`);
  await page.screenshot({ path: join(shotDir, "observer-1280x800.png") });
  await byTestId(page, "sign-in").click();
  await submit(operatorToken);
  await waitFor("the operator role is shown", async () => {
    const text = await role.innerText();
    return { done: text.startsWith("operator"), seen: text };
  });
  await waitFor("the slider is enabled", async () => ({ done: !(await byTestId(page, `slider-${KEY}`).isDisabled()), seen: "disabled" }));
  ok(`signed in as "${await role.innerText()}": the controls are enabled`);
}

await mkdir(shotDir, { recursive: true });
await runInChromium(async (page, pageErrors) => {
  // 1. The page loads, connects, and the tick rises.
  await page.goto(url, { waitUntil: "load" });
  if (operatorToken) await signIn(page, shotDir);
  const conn = byTestId(page, "conn");
  await waitFor("the status bar says connected", async () => {
    const state = await conn.getAttribute("data-state");
    return { done: state === "live", seen: state };
  });
  const tick = byTestId(page, "tick");
  const first = await waitFor("a tick is shown", async () => {
    const n = Number(await tick.textContent());
    return { done: Number.isFinite(n) && n > 0, value: n, seen: await tick.textContent() };
  });
  const later = await waitFor(`the tick rises past ${first}`, async () => {
    const n = Number(await tick.textContent());
    return { done: n > first, value: n, seen: n };
  });
  ok(`dashboard at ${url} is connected and the tick rises (${first} -> ${later})`);
  const charts = await page.locator('[data-testid^="chart-"] canvas').count();
  if (charts < 8) fail(`expected 8 charts with a canvas, found ${charts}`);
  ok(`${charts} live charts are drawn`);

  // 2. Move the slider by one step: the command is applied, with its tick.
  const control = byTestId(page, `control-${KEY}`);
  await control.waitFor({ timeout: WAIT_MS });
  const slider = byTestId(page, `slider-${KEY}`);
  const receipt = byTestId(page, `receipt-${KEY}`);
  const current = byTestId(page, `current-${KEY}`);
  const before = Number(await slider.inputValue());
  await slider.focus();
  await page.keyboard.press(before >= 0.9 ? "ArrowLeft" : "ArrowRight");
  const moved = Number(await slider.inputValue());
  if (moved === before) fail(`the slider did not move from ${before}`);
  const appliedTick = await waitFor("the success receipt", async () => {
    const state = await receipt.getAttribute("data-state");
    const text = await receipt.innerText();
    const m = /applied at tick (\d+)/i.exec(text);
    if (state === "error") fail(`the slider command was rejected: ${text}`);
    const ok = state === "ok" && !!m && m[1] === (await receipt.getAttribute("data-tick"));
    return { done: ok, value: m && Number(m[1]), seen: text };
  });
  const receiptText = await receipt.innerText();
  if (!receiptText.includes(`→ ${moved}`)) fail(`the receipt does not show the new value ${moved}: ${receiptText}`);
  ok(`slider ${KEY} ${before} -> ${moved}: receipt "${oneLine(receiptText)}"`);

  // 3. The next snapshot carries the new value.
  const seenAt = await waitFor(`the control shows ${moved} from telemetry`, async () => {
    const text = (await current.textContent())?.trim();
    const at = Number(await current.getAttribute("data-tick"));
    return { done: Number(text) === moved && at >= appliedTick, value: at, seen: { text, at } };
  });
  ok(`the snapshot of tick ${seenAt} shows ${KEY} = ${moved} (applied at tick ${appliedTick})`);
  const feedRow = byTestId(page, "feed").locator(`[data-testid="feed-row"][data-key="${KEY}"]`).first();
  await waitFor("the command feed lists the command", async () => {
    const n = await feedRow.count();
    const text = n ? await feedRow.innerText() : "";
    return { done: n > 0 && text.includes("OK") && text.includes(`tick ${appliedTick}`), seen: text };
  });
  ok(`the command feed shows: ${oneLine(await feedRow.innerText())}`);
  if (checkAudit) {
    await byTestId(page, "audit-log").locator("summary").click();
    const entry = byTestId(page, "audit-entries").locator(`[data-testid="feed-row"][data-key="${KEY}"]`).first();
    await waitFor("the audit log panel lists the command from the log on disk", async () => {
      const n = await entry.count();
      const text = n ? await entry.innerText() : await byTestId(page, "audit-status").innerText();
      return { done: n > 0 && text.includes(`tick ${appliedTick}`), seen: text };
    });
    ok(`the audit log panel (ListAuditEntries) shows: ${oneLine(await entry.innerText())}`);
  }

  // 4. An out-of-range value typed into the number input reaches the server and its error is shown.
  await byTestId(page, `input-${KEY}`).fill(OUT_OF_RANGE);
  await byTestId(page, `apply-${KEY}`).click();
  const errorText = await waitFor("the error receipt", async () => {
    const state = await receipt.getAttribute("data-state");
    const text = await receipt.innerText();
    return { done: state === "error", value: text, seen: text };
  });
  for (const want of ["INVALID_ARGUMENT", "[0, 0.9]"]) {
    if (!errorText.includes(want)) fail(`the error receipt lacks "${want}": ${errorText}`);
  }
  if ((await receipt.getAttribute("data-code")) !== "invalid_argument") fail("data-code is not invalid_argument");
  ok(`${KEY} = ${OUT_OF_RANGE} is refused: "${oneLine(errorText)}"`);
  await waitFor(`the value stays ${moved}`, async () => {
    const text = (await current.textContent())?.trim();
    return { done: Number(text) === moved, seen: text };
  });
  ok(`${KEY} stays ${moved} after the rejection`);

  // 4a. Revert from the feed: the applied command's old value comes back.
  const appliedRow = byTestId(page, "feed")
    .locator(`[data-testid="feed-row"][data-key="${KEY}"]`)
    .filter({ hasText: `tick ${appliedTick}` })
    .first();
  await appliedRow.locator('[data-testid="revert"]').click();
  await waitFor(`the control shows ${before} again`, async () => {
    const text = (await current.textContent())?.trim();
    return { done: Number(text) === before, seen: text };
  });
  ok(`revert from the feed restores ${KEY} = ${before}`);

  // 4b. Run control from the status bar: pause holds the tick, step advances one, resume runs.
  const runState = byTestId(page, "run-state");
  const tickNow = async () => Number((await byTestId(page, "tick").textContent())?.trim());
  await byTestId(page, "pause").click();
  await waitFor("the status bar says paused", async () => {
    const text = (await runState.textContent())?.trim();
    return { done: text === "paused", seen: text };
  });
  const held = await tickNow();
  await page.waitForTimeout(500);
  if ((await tickNow()) !== held) fail(`the tick moved while paused (${held} -> ${await tickNow()})`);
  ok(`pause holds the tick at ${held}`);
  await byTestId(page, "step").click();
  await waitFor(`step shows tick ${held + 1}`, async () => {
    const tick = await tickNow();
    return { done: tick === held + 1, seen: tick };
  });
  ok(`step advances exactly one tick to ${held + 1}`);
  await byTestId(page, "resume").click();
  await waitFor("ticks rise again after resume", async () => {
    const tick = await tickNow();
    return { done: tick > held + 3 && (await runState.textContent())?.trim() === "running", seen: tick };
  });
  ok("resume runs the engine again");

  // 5. Screenshots at desktop and phone sizes.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(shotDir, "dashboard-1280x800.png") });
  await page.screenshot({ path: join(shotDir, "dashboard-1280x800-full.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(500);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) fail(`at 390 px the page is ${overflow} px wider than the screen`);
  await page.screenshot({ path: join(shotDir, "dashboard-390x844.png") });
  await page.screenshot({ path: join(shotDir, "dashboard-390x844-full.png"), fullPage: true });
  ok(`screenshots at 1280x800 and 390x844 (no horizontal overflow) saved in ${resolve(shotDir)}`);

  if (pageErrors.length) fail(`the page logged errors:\n  ${pageErrors.join("\n  ")}`);
  ok("no errors in the page's console");
});
