#!/usr/bin/env node
// Browser test of the Streamlit example (examples/streamlit/app.py) as its
// users run it, started by tests/streamlit.rs, which runs `streamlit run`
// against the real binary and answers this script's `ASK` lines (lib.mjs):
//
//   node web/tests/streamlit.mjs http://127.0.0.1:STREAMLIT_PORT SCREENSHOT_DIR
//
// Checks, in Debian's Chromium: the policy-rate slider's label shows four
// decimals for its 0.0025 step; one arrow-key step is applied and its receipt
// replaces "waiting"; five quick steps send fewer than five commands (the
// slider is debounced) and end on the fifth step's value; Pause pauses the
// engine (asked of the server over gRPC) and the page says so; a stopped
// server turns into a "reconnecting" warning.
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ask, fail, ok, oneLine, runInChromium, waitFor } from "./lib.mjs";

const KEY = "monetary.policy_rate";
const STEP = 0.0025;
const WAIT_MS = 30_000; // Streamlit reruns the script on each interaction

const [url, shotDir] = process.argv.slice(2);
if (!url || !shotDir) {
  console.error("usage: node streamlit.mjs STREAMLIT_URL SCREENSHOT_DIR (run by tests/streamlit.rs)");
  process.exit(2);
}
await mkdir(shotDir, { recursive: true });

const slider = (page) => page.locator('[data-testid="stSlider"]').filter({ hasText: KEY });
// A visually hidden range input (react-aria) under the drawn thumb; it takes the keys.
const thumb = (page) => slider(page).locator('input[type="range"]');
const label = async (page) => (await slider(page).locator('[data-testid="stSliderThumbValue"]').innerText()).trim();
const sidebarAlerts = (page) => page.locator('[data-testid="stSidebar"] [data-testid="stAlert"]');
const metric = async (page, name) =>
  (await page.locator('[data-testid="stMetric"]').filter({ hasText: name }).locator('[data-testid="stMetricValue"]').innerText()).trim();

/** The sidebar's receipt once it says the command was applied, with its value. */
async function receiptFor(page, value) {
  return waitFor(`the receipt for ${KEY} = ${value}`, async () => {
    const texts = await sidebarAlerts(page).allInnerTexts();
    const text = texts.map(oneLine).find((t) => t.startsWith("Applied:"));
    return { done: !!text && text.includes(`→ ${value} at tick`), value: text, seen: texts };
  }, WAIT_MS);
}

await runInChromium(async (page, pageErrors) => {
  await page.goto(url, { waitUntil: "load" });
  await thumb(page).waitFor({ state: "attached", timeout: WAIT_MS });
  const shown = await label(page);
  if (!/^-?\d+\.\d{4}$/.test(shown)) fail(`the ${KEY} label shows "${shown}", not four decimals for its ${STEP} step`);
  ok(`the ${KEY} slider's label shows "${shown}" (four decimals for a ${STEP} step)`);
  const start = Number(shown);
  await page.screenshot({ path: join(shotDir, "streamlit-1280x800.png") });

  // One step: applied, the receipt replaces "waiting", the label moved by the step.
  await thumb(page).focus();
  await page.keyboard.press("ArrowRight");
  const one = Number((start + STEP).toFixed(4));
  const receipt = await receiptFor(page, one);
  if ((await label(page)) !== one.toFixed(4)) fail(`the label shows ${await label(page)} after one step, not ${one.toFixed(4)}`);
  const [logged] = await ask(`count-updates ${KEY}`);
  if (logged !== "1") fail(`the server logged ${logged} updates of ${KEY} for one step`);
  ok(`one step: "${receipt}"; the server logged Registry updated once`);

  // Five quick steps: debounced into fewer commands, ending on the last value.
  await thumb(page).focus();
  for (let i = 0; i < 5; i++) await page.keyboard.press("ArrowRight");
  const five = Number((one + 5 * STEP).toFixed(4));
  await receiptFor(page, five);
  const [total] = await ask(`count-updates ${KEY}`);
  const burst = Number(total) - 1;
  if (!(burst >= 1 && burst < 5)) fail(`five quick steps sent ${burst} commands; the slider should rest first`);
  ok(`five quick steps sent ${burst} command(s), ending at ${five}`);
  await page.screenshot({ path: join(shotDir, "streamlit-receipt-1280x800.png") });

  // Pause: the engine reports paused over gRPC, and the page shows it.
  await page.getByRole("button", { name: "Pause" }).click();
  await waitFor("the page says paused", async () => {
    const run = await metric(page, "Run").catch(() => "");
    return { done: run === "paused", seen: run };
  }, WAIT_MS);
  const [state, tick] = await ask("run-state");
  if (state !== "RUN_STATE_PAUSED") fail(`the server says ${state} after Pause`);
  const pageTick = await metric(page, "Tick");
  if (pageTick !== tick) fail(`the page shows tick ${pageTick}, the paused engine is at ${tick}`);
  ok(`Pause pauses the engine (${state} at tick ${tick}; the page shows tick ${pageTick}, paused)`);
  await page.screenshot({ path: join(shotDir, "streamlit-paused-1280x800.png") });

  // A stopped server: the page says it is reconnecting instead of freezing.
  await ask("stop-server");
  const warning = await waitFor("the reconnecting warning", async () => {
    const texts = (await page.locator('[data-testid="stAlert"]').allInnerTexts()).map(oneLine);
    const text = texts.find((t) => t.includes("reconnecting"));
    return { done: !!text, value: text, seen: texts };
  }, WAIT_MS);
  ok(`with the server stopped the page says: "${warning}"`);
  await page.screenshot({ path: join(shotDir, "streamlit-reconnecting-1280x800.png") });
  ok(`screenshots saved in ${resolve(shotDir)}`);
  if (pageErrors.length) fail(`the page logged errors:\n  ${pageErrors.join("\n  ")}`);
  ok("no errors in the page's console");
}, join(shotDir, "failure.png"));
