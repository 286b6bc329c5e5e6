/**
 * What the browser scenarios share: the stack's REST API, the push API's synthetic tokens, frame and
 * main-thread recording, screenshots (desktop and phone) and starting a generation from the form.
 */
import path from "node:path";
import { ROOT } from "./stack.mjs";

export const OUT = path.join(ROOT, "test-output", "e2e");
export const DESKTOP = { width: 1440, height: 900 };
export const PHONE = { width: 390, height: 844 };

export const log = (...a) => console.log("[e2e]", ...a);

export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

export async function api(base, p, init) {
  const res = await fetch(base + p, { ...init, headers: { "Content-Type": "application/json", ...(init?.headers ?? {}) } });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${init?.method ?? "GET"} ${p} → ${res.status} ${JSON.stringify(body)}`);
  return body;
}


/**
 * A synthetic token in OpenAI's logprobs format for the push API; every 7th is a long shot
 * (`variant` moves which ones, so that sessions to compare differ).
 */
export function pushToken(i, variant = 0) {
  const words = [" the", " model", " is", " not", " sure", " about", " this", ".", "\n", " quantum", " state"];
  const text = words[(i + variant) % words.length];
  const unsure = (i + variant) % 7 === 3;
  const chosen = unsure ? 0.08 : 0.7;
  const alts = [
    { token: text, logprob: Math.log(chosen) },
    { token: " alt1", logprob: Math.log(unsure ? 0.3 : 0.15) },
    { token: " alt2", logprob: Math.log(0.05) },
    { token: " alt3", logprob: Math.log(0.02) },
  ].sort((a, b) => b.logprob - a.logprob);
  return { token: text, logprob: Math.log(chosen), top_logprobs: alts };
}

export async function pushSession(base, prompt) {
  const s = await api(base, "/push/sessions", { method: "POST", body: JSON.stringify({ model: "synthetic", provider: "e2e", prompt }) });
  return s.session_id;
}

export async function pushTokens(base, sid, from, n, variant = 0) {
  const tokens = Array.from({ length: n }, (_, k) => pushToken(from + k, variant));
  await api(base, `/push/sessions/${encodeURIComponent(sid)}/tokens`, { method: "POST", body: JSON.stringify({ tokens }) });
}

/** Main-thread time the page used (CDP Performance metrics), seconds: total, script, layout, style. */
export async function mainThread(cdp) {
  const { metrics } = await cdp.send("Performance.getMetrics");
  const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
  return { task: m.TaskDuration, script: m.ScriptDuration, layout: m.LayoutDuration, style: m.RecalcStyleDuration, t: Date.now() };
}

export function busyShare(a, b) {
  const wall = (b.t - a.t) / 1000;
  const pct = (k) => ((100 * (b[k] - a[k])) / wall).toFixed(1);
  return { total: pct("task"), script: pct("script"), layout: pct("layout"), style: pct("style") };
}

/** Starts recording animation-frame intervals in the page; returns a function that stops and summarises. */
export async function recordFrames(page) {
  await page.evaluate(() => {
    const w = window;
    w.__frames = [];
    w.__longTasks = 0;
    let last = performance.now();
    const tick = (t) => {
      w.__frames.push(t - last);
      last = t;
      if (w.__recording) requestAnimationFrame(tick);
    };
    w.__recording = true;
    requestAnimationFrame(tick);
    try {
      new PerformanceObserver((l) => (w.__longTasks += l.getEntries().length)).observe({ type: "longtask" });
    } catch {
      /* not supported */
    }
  });
  return async () =>
    page.evaluate(() => {
      const w = window;
      w.__recording = false;
      const f = w.__frames.slice(1).sort((a, b) => a - b);
      const q = (p) => f[Math.min(f.length - 1, Math.floor(p * f.length))] ?? 0;
      return { frames: f.length, p50: q(0.5), p95: q(0.95), max: f[f.length - 1] ?? 0, over50: f.filter((x) => x > 50).length, longTasks: w.__longTasks };
    });
}

export const count = (page) => page.getByTestId("heatmap").getAttribute("data-count").then((v) => Number(v ?? 0));
export const sessionIdOf = (page) => decodeURIComponent(new URL(page.url()).hash.split("/")[2] ?? "");

/**
 * Everything the page logs (console messages of any level, uncaught errors), to check that no
 * message of the gateway was refused: the stack sends every type it has (`scores` included), and
 * a type the dashboard does not know must be ignored quietly (docs/api.md).
 */
export function watchConsole(page) {
  const lines = [];
  page.on("console", (m) => lines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => lines.push(`pageerror: ${e.message}`));
  return async () => {
    const refused = lines.filter((l) => /unknown message type|ParseError|expected a message type/i.test(l));
    assert(refused.length === 0, `no console error about a message type:\n  ${refused.join("\n  ")}`);
    const bad = Number(await page.getByTestId("connection").getAttribute("data-bad-frames"));
    assert(bad === 0, `every WebSocket frame parsed (${bad} dropped)`);
  };
}

export async function shot(page, name) {
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${path.relative(ROOT, file)}`);
}

/** Fill the form and start; `mode` is "chat" (the model's chat template, default) or "complete". */
export async function startGeneration(page, { prompt, maxTokens, temperature, seed = 7, mode = "chat" }) {
  const edit = page.getByTestId("edit-prompt"); // a session on screen: the form is one line until Edit
  if (await edit.isVisible()) await edit.click();
  await page.getByTestId("prompt").fill(prompt);
  await page.getByTestId(`mode-${mode}`).check();
  await page.getByTestId("max-tokens").fill(String(maxTokens));
  await page.getByTestId("seed").fill(String(seed));
  if (temperature !== undefined) {
    await page.getByTestId("temperature").evaluate((el, v) => {
      const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
      set.call(el, String(v));
      el.dispatchEvent(new Event("input", { bubbles: true }));
    }, temperature);
  }
  const before = page.url();
  await page.getByTestId("start").click();
  await page.waitForFunction((b) => location.href !== b && location.hash.startsWith("#/live/"), before, { timeout: 15_000 });
  return sessionIdOf(page);
}


/**
 * Start a generation (chat mode, fixed seed) and wait until it has at least `minTokens` tokens. In
 * chat mode the model answers instead of ending at once, and a seeded run is reproducible, so one
 * seed is enough; a run that ends short fails here with the count.
 */
export async function startLongGeneration(page, opts, minTokens) {
  const sid = await startGeneration(page, opts);
  await page.waitForFunction(
    (n) =>
      Number(document.querySelector('[data-testid="heatmap"]')?.getAttribute("data-count")) >= n ||
      /Finished|Cancelled|Failed/.test(document.querySelector('[data-testid="session-status"]')?.textContent ?? ""),
    minTokens,
    { timeout: 180_000 },
  );
  const n = await count(page);
  assert(n >= minTokens, `the generation (seed ${opts.seed ?? 7}) ended after ${n} of at least ${minTokens} tokens`);
  return sid;
}


/**
 * Screenshots of the page as it is at desktop size (1440×900) and at phone size (390×844):
 * `<name>-desktop.png` and `<name>-phone.png`; the viewport is put back afterwards.
 */
export async function shots(page, name) {
  const before = page.viewportSize();
  for (const [label, size] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(size);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await shot(page, `${name}-${label}`);
  }
  if (before) await page.setViewportSize(before);
}
