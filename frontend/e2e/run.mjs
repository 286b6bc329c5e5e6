/**
 * Browser tests of the dashboard against the real running system (tests.stack: Redis streams,
 * generator with the embedded model, auditor, alerter, recorder, gateway serving frontend/dist),
 * driven by playwright-core on Debian's Chromium. Screenshots go to test-output/e2e/.
 *
 * Scenarios live in e2e/scenarios/*.mjs, each file's default export an object of named async
 * functions `(page, baseUrl)`; they run in file order, then key order. `npm run e2e -- NAME` runs those
 * whose name contains NAME.
 *
 *   npm run e2e                       # starts and stops the stack itself
 *   UQ_E2E_URL=http://127.0.0.1:8080 npm run e2e   # against a stack already running
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { log, OUT, shot } from "./lib.mjs";
import { startStack } from "./stack.mjs";

const CHROMIUM = process.env.UQ_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Every scenario file's scenarios, in file order. */
async function loadScenarios() {
  const dir = path.join(import.meta.dirname, "scenarios");
  const all = {};
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".mjs")).sort()) {
    const mod = await import(path.join(dir, file));
    for (const [name, fn] of Object.entries(mod.default)) {
      if (name in all) throw new Error(`scenario ${name} is defined twice (${file})`);
      all[name] = fn;
    }
  }
  return all;
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const scenarios = await loadScenarios();
  const only = process.argv[2];
  const stack = await startStack({ log });
  const profile = mkdtempSync(path.join(tmpdir(), "uq-e2e-chromium-"));
  let context;
  const results = [];
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1400, height: 1000 },
    });
    const consoleErrors = [];
    for (const [name, fn] of Object.entries(scenarios)) {
      if (only && !name.includes(only)) continue;
      const page = await context.newPage();
      page.on("pageerror", (e) => consoleErrors.push(`${name}: ${e.message}`));
      page.on("console", (m) => m.type() === "error" && consoleErrors.push(`${name}: ${m.text()}`));
      const t0 = Date.now();
      try {
        await fn(page, stack.url);
        results.push({ name, ok: true, s: (Date.now() - t0) / 1000 });
        log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (e) {
        results.push({ name, ok: false, error: String(e?.stack ?? e) });
        log(`FAIL ${name}: ${e?.stack ?? e}`);
        await shot(page, `FAIL-${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}`).catch(() => {});
      } finally {
        await page.close();
      }
    }
    if (consoleErrors.length) log(`browser errors:\n  ${consoleErrors.join("\n  ")}`);
  } finally {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    await stack.stop();
  }
  writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2));
  const failed = results.filter((r) => !r.ok);
  log(`${results.length - failed.length} passed, ${failed.length} failed`);
  if (failed.length) {
    if (!process.env.UQ_E2E_URL) log(`stack output (tail):\n${stack.output().slice(-3000)}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error("[e2e]", e?.stack ?? e);
  process.exit(1);
});
