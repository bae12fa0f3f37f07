// What the browser tests share: Debian's Chromium driven headless by
// playwright-core (never a downloaded browser), numbered checks, waiting on
// what the page shows (never a fixed sleep), and a page that records its own
// errors.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const WAIT_MS = 15_000;

const checks = [];
/** Records and prints a passed check. */
export function ok(what) {
  checks.push(what);
  console.log(`ok ${checks.length} - ${what}`);
}
export class Failure extends Error {}
export function fail(what) {
  throw new Failure(what);
}
export const oneLine = (s) => s.replace(/\s+/g, " ").trim();
export const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** Polls `fn` until it returns `{done: true, value}`; fails with what it last saw. */
export async function waitFor(what, fn, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last.done) return last.value;
    if (Date.now() > deadline) fail(`${what} (waited ${timeout} ms; last seen: ${JSON.stringify(last.seen)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Runs `body(page, pageErrors)` in a fresh headless Chromium profile at
 * 1280x800 and exits: 0 when it passes, 1 (with the failure, and a
 * screenshot at `failureShot` if given) otherwise.
 */
export async function runInChromium(body, failureShot) {
  if (!existsSync(CHROMIUM)) {
    console.error(`FAIL: ${CHROMIUM} is missing; install it with: apt-get update && apt-get install -y chromium`);
    process.exit(1);
  }
  const profile = await mkdtemp(join(tmpdir(), "watchtower-chromium-"));
  let context;
  let page;
  let status = 0;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 800 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && pageErrors.push(m.text()));
    page.on("response", (r) => r.status() >= 400 && pageErrors.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`));
    await body(page, pageErrors);
    console.log(`PASS: ${checks.length} checks`);
  } catch (e) {
    status = 1;
    console.error(`FAIL: ${e instanceof Failure ? e.message : e?.stack ?? e}`);
    console.error(`(${checks.length} checks passed before the failure)`);
    if (failureShot && page) {
      await page.screenshot({ path: failureShot, fullPage: true }).catch(() => {});
      console.error(`the page at the failure: ${failureShot}`);
    }
  } finally {
    await context?.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  }
  process.exit(status);
}

let stdinLines;
/**
 * Asks the Rust test that started this script to do something behind the
 * page's back (through its own gRPC client): prints `ASK <what>` and
 * resolves with the words of the `DONE …` line it answers on stdin.
 */
export async function ask(what) {
  if (!stdinLines) {
    const { createInterface } = await import("node:readline");
    stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  }
  console.log(`ASK ${what}`);
  const { value, done } = await stdinLines.next();
  if (done || !value.startsWith("DONE")) fail(`the test runner did not answer "ASK ${what}" (got ${JSON.stringify(value)})`);
  return value.split(/\s+/).slice(1);
}
