#!/usr/bin/env node
// Browser test of the dashboard's transactions against a running server,
// started by tests/dashboard.rs, which answers its `ASK` lines (see lib.mjs)
// with its own gRPC client:
//
//   node web/tests/transactions.mjs http://127.0.0.1:PORT SCREENSHOT_DIR
//
// Checks, in Debian's Chromium: two staged changes apply together in one
// tick with a receipt each, and a staged batch with a bad change is refused
// whole with the failing command named; a slider the operator is working,
// whose value someone else changes meanwhile (ASK set-behind), answers
// "changed by someone else" instead of overwriting it; a command scheduled
// by someone else (ASK schedule) appears in the scheduled list and Cancel
// drops it; the speed box in the status bar sets the engine's pace, which
// the next snapshots report as the target. Screenshots go to SCREENSHOT_DIR.
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ask, byTestId, fail, ok, oneLine, runInChromium, waitFor } from "./lib.mjs";

const TAX = "fiscal.income_tax_rate";
const VAT = "fiscal.vat_rate";
const SPENDING = "fiscal.government_spending_ratio";

const [url, shotDir] = process.argv.slice(2);
if (!url || !shotDir) {
  console.error("usage: node transactions.mjs DASHBOARD_URL SCREENSHOT_DIR (run by tests/dashboard.rs)");
  process.exit(2);
}
await mkdir(shotDir, { recursive: true });

const current = async (page, key) => Number((await byTestId(page, `current-${key}`).textContent())?.trim());
const tickNow = async (page) => Number((await byTestId(page, "tick").textContent())?.trim());

/** Waits until telemetry shows `key` = `value`. */
async function shows(page, key, value) {
  await waitFor(`the page shows ${key} = ${value}`, async () => {
    const now = await current(page, key);
    return { done: now === value, seen: now };
  });
}

/** Types `value` into `key`'s number input and presses Enter (staged in stage mode). */
async function enter(page, key, value) {
  const input = byTestId(page, `input-${key}`);
  await input.fill(String(value));
  await input.press("Enter");
}

/** Two changes staged, applied together in one tick; a bad one refuses the whole batch. */
async function staging(page) {
  const tax = await current(page, TAX);
  const vat = await current(page, VAT);
  const newTax = tax === 0.3 ? 0.31 : 0.3;
  const newVat = vat === 0.15 ? 0.16 : 0.15;
  await byTestId(page, "stage-mode").check();
  await enter(page, TAX, newTax);
  await enter(page, VAT, newVat);
  const rows = byTestId(page, "staged-row");
  await waitFor("two staged rows", async () => ({ done: (await rows.count()) === 2, seen: await rows.count() }));
  const staged = await byTestId(page, `receipt-${TAX}`).innerText();
  if (!/staged/i.test(staged)) fail(`the control does not say it is staged: ${staged}`);
  const held = await tickNow(page);
  await waitFor("a later snapshot", async () => ({ done: (await tickNow(page)) > held + 2, seen: await tickNow(page) }));
  if ((await current(page, TAX)) !== tax) fail("a staged change was applied before Apply");
  ok(`two changes staged (${TAX} -> ${newTax}, ${VAT} -> ${newVat}); nothing applied yet`);
  await page.screenshot({ path: join(shotDir, "staged-1280x800.png") });

  await byTestId(page, "apply-staged").click();
  const receipt = byTestId(page, "staging-receipt");
  const tick = await waitFor("the batch receipt", async () => {
    const state = await receipt.getAttribute("data-state");
    if (state === "error") fail(`the batch was refused: ${await receipt.innerText()}`);
    return { done: state === "ok", value: await receipt.getAttribute("data-tick"), seen: state };
  });
  const ticks = await receipt.locator("li").evaluateAll((lis) => lis.map((li) => `${li.dataset.key}@${li.dataset.tick}`));
  if (ticks.join() !== `${TAX}@${tick},${VAT}@${tick}`) fail(`per-command receipts are not both at tick ${tick}: ${ticks}`);
  await shows(page, TAX, newTax);
  await shows(page, VAT, newVat);
  ok(`applied together: "${oneLine(await receipt.innerText())}"`);
  await page.screenshot({ path: join(shotDir, "staged-applied-1280x800.png") });

  await enter(page, TAX, tax);
  await enter(page, VAT, 7);
  await byTestId(page, "apply-staged").click();
  await waitFor("the batch refusal", async () => ({ done: (await receipt.getAttribute("data-state")) === "error", seen: await receipt.innerText() }));
  const text = await receipt.innerText();
  for (const want of [`command #1 (${VAT}) refused`, "INVALID_ARGUMENT", "commands[1].value"]) {
    if (!text.includes(want)) fail(`the refusal lacks "${want}": ${text}`);
  }
  const failedRow = byTestId(page, "staged-row").and(page.locator(`[data-key="${VAT}"]`));
  if ((await failedRow.getAttribute("data-state")) !== "error") fail("the failing staged row is not marked");
  const later = await tickNow(page);
  await waitFor("a later snapshot", async () => ({ done: (await tickNow(page)) > later + 1, seen: await tickNow(page) }));
  if ((await current(page, TAX)) !== newTax) fail("the good command of a refused batch was applied");
  ok(`a batch with ${VAT} = 7 is refused whole: "${oneLine(text)}"`);
  await page.screenshot({ path: join(shotDir, "staged-refused-1280x800.png") });
  await byTestId(page, "discard-staged").click();
  await waitFor("the tray is empty", async () => ({ done: (await rows.count()) === 0, seen: await rows.count() }));
  await waitFor(`the ${TAX} input shows the value in force again`, async () => {
    const typed = Number(await byTestId(page, `input-${TAX}`).inputValue());
    return { done: typed === newTax, seen: typed };
  });
  ok(`Discard empties the tray; the controls show the values in force again`);
  await byTestId(page, "stage-mode").uncheck();
}

/** The operator works a slider; someone else changes the value meanwhile; the move is a conflict. */
async function conflict(page) {
  const slider = byTestId(page, `slider-${SPENDING}`);
  const receipt = byTestId(page, `receipt-${SPENDING}`);
  await slider.focus();
  const seen = Number(await slider.inputValue());
  const [theirs] = await ask(`set-behind ${SPENDING} ${seen}`);
  await shows(page, SPENDING, Number(theirs));
  if (Number(await slider.inputValue()) !== seen) fail("the slider moved under the operator's hand");
  await page.keyboard.press(seen >= 0.6 ? "ArrowLeft" : "ArrowRight");
  await waitFor("the conflict receipt", async () => ({ done: (await receipt.getAttribute("data-code")) === "aborted", seen: await receipt.innerText() }));
  const text = await receipt.innerText();
  if (!text.includes(`changed by someone else, now ${theirs}`)) fail(`the receipt does not show the conflict: ${text}`);
  await shows(page, SPENDING, Number(theirs));
  ok(`moving ${SPENDING} from ${seen} after someone set ${theirs}: "${oneLine(text)}"; the value stays ${theirs}`);
  await page.screenshot({ path: join(shotDir, "conflict-1280x800.png") });
}

/** Someone schedules a command; it shows in the list; Cancel drops it. */
async function scheduled(page) {
  const [id, at] = await ask("schedule");
  const row = byTestId(page, "scheduled-row").and(page.locator(`[data-id="${id}"]`));
  await waitFor(`the scheduled list shows ${id}`, async () => ({ done: (await row.count()) === 1, seen: await row.count() }));
  const text = await row.innerText();
  if (!text.includes(`at tick ${at}`)) fail(`the row does not say "at tick ${at}": ${text}`);
  ok(`the scheduled list shows: ${oneLine(text)}`);
  await row.scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(shotDir, "scheduled-1280x800.png") });
  await row.locator('[data-testid="cancel-scheduled"]').click();
  await waitFor(`${id} leaves the list`, async () => ({ done: (await row.count()) === 0, seen: await row.count() }));
  const [outcome] = await ask(`outcome ${id}`);
  if (outcome !== "CANCELLED") fail(`the scheduled command's own call ended ${outcome}, not CANCELLED`);
  ok(`Cancel drops ${id}; its sender's call ended ${outcome}`);
}

/** The speed box sets the pace (ControlEngine set_tps); telemetry reports the new target. */
async function pace(page) {
  const target = page.locator('[data-testid="chart-tps"] li').filter({ hasText: "Target" }).locator(".legend-value");
  for (const tps of [15, 20]) {
    const speed = byTestId(page, "speed");
    await speed.fill(String(tps));
    await speed.press("Tab");
    await waitFor(`the target pace shows ${tps}`, async () => {
      const shown = Number(await target.innerText());
      return { done: shown === tps, seen: shown };
    });
  }
  ok("the speed box sets the pace: the target shown by telemetry went 20 -> 15 -> 20");
}

await runInChromium(async (page, pageErrors) => {
  await page.goto(url, { waitUntil: "load" });
  await waitFor("the status bar says connected", async () => {
    const state = await byTestId(page, "conn").getAttribute("data-state");
    return { done: state === "live", seen: state };
  });
  await byTestId(page, `control-${TAX}`).waitFor();
  ok(`dashboard at ${url} is connected`);
  await staging(page);
  await conflict(page);
  await scheduled(page);
  await pace(page);
  await page.screenshot({ path: join(shotDir, "transactions-1280x800-full.png"), fullPage: true });
  ok(`screenshots saved in ${resolve(shotDir)}`);
  if (pageErrors.length) fail(`the page logged errors:\n  ${pageErrors.join("\n  ")}`);
  ok("no errors in the page's console");
}, join(shotDir, "failure.png"));
