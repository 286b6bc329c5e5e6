/**
 * The sessions list and the compare view (issue 17, items 4 and 5) on the real stack: search,
 * filters and sort kept in the URL (a reload keeps them), export, copy link (to a session and to a
 * token), delete with confirmation, the phone layout, and three 2,000-token sessions compared.
 */
import { api, assert, log, pushSession, pushTokens, recordFrames, shots } from "../lib.mjs";

const TOKENS = 2000;

async function pushFinished(base, prompt, n, variant) {
  const sid = await pushSession(base, prompt);
  for (let from = 0; from < n; from += 1000) await pushTokens(base, sid, from, Math.min(1000, n - from), variant);
  await api(base, `/push/sessions/${encodeURIComponent(sid)}/finish`, { method: "POST", body: JSON.stringify({ status: "finished", reason: "eos" }) });
  return sid;
}

/** The session ids the list shows, in order. */
const listed = (page) => page.locator('[data-testid="sessions"] tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.session));

async function waitListed(page, predicate, what) {
  for (let i = 0; i < 150; i++) {
    const ids = await listed(page).catch(() => []);
    if (predicate(ids)) return ids;
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out waiting for the list: ${what} (shows ${JSON.stringify(await listed(page).catch(() => []))})`);
}

/** Wait until the recorder has every session, finished with its summary (the list reads the store). */
async function waitRecorded(base, ids) {
  for (let i = 0; i < 300; i++) {
    const states = await Promise.all(ids.map((id) => api(base, `/sessions/${encodeURIComponent(id)}`).catch(() => null)));
    if (states.every((d) => d && d.session.status === "finished" && d.summary && d.session.created_ns > 0)) return states;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("the sessions were not recorded in time");
}

export default {
  async "sessions: search, filters and sort live in the URL; export, links and delete work"(page, base) {
    const tag = `e2e${Date.now().toString(36)}`;
    const short = await pushFinished(base, `${tag} short answer`, 30, 1);
    const long = await pushFinished(base, `${tag} longer answer`, 120, 2);
    const other = await pushFinished(base, `${tag} doomed answer`, 60, 3);
    await waitRecorded(base, [short, long, other]);
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });

    await page.goto(`${base}/#/sessions`);
    await page.getByTestId("session-search").fill(tag);
    await page.waitForFunction((t) => location.hash.includes(`q=${t}`), tag, { timeout: 5_000 });
    await waitListed(page, (ids) => ids.length === 3, "the three tagged sessions");

    // sort by tokens, fewest first, from the column header; then reload: the URL keeps it all
    await page.getByTestId("session-sort-tokens").click(); // most first
    await page.getByTestId("session-sort-tokens").click(); // fewest first
    await waitListed(page, (ids) => ids.join() === [short, other, long].join(), "sorted by tokens ascending");
    const sortState = await page.getByTestId("session-sort-tokens").evaluate((b) => b.closest("th").getAttribute("aria-sort"));
    assert(sortState === "ascending", `aria-sort ${sortState}`);
    assert(page.url().includes("sort=tokens") && page.url().includes("order=asc"), `URL ${page.url()}`);
    await page.reload();
    await waitListed(page, (ids) => ids.join() === [short, other, long].join(), "the same list after a reload");
    assert((await page.getByTestId("session-search").inputValue()) === tag, "the search box shows the URL's text");

    // dates: from today keeps them; up to yesterday leaves none
    const today = await page.evaluate(() => {
      const d = new Date();
      return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    });
    await page.getByTestId("session-since").fill(today);
    await waitListed(page, (ids) => ids.length === 3, "created today");
    const yesterday = await page.evaluate(() => {
      const d = new Date(Date.now() - 86_400_000);
      return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    });
    await page.getByTestId("session-since").fill("");
    await page.getByTestId("session-until").fill(yesterday);
    await page.getByText("No session matches these filters.").waitFor({ timeout: 10_000 });
    await page.getByTestId("session-until").fill("");
    await waitListed(page, (ids) => ids.length === 3, "the date filter cleared");

    // peak risk: every row shown reached at least the chosen level
    await page.getByTestId("session-peak").selectOption("warning");
    await page.waitForFunction(() => location.hash.includes("peak=warning"), null, { timeout: 5_000 });
    await page.waitForTimeout(500);
    const peaks = await page.locator('[data-testid="sessions"] tbody tr td[data-label="Risk (peak)"] .risk-text').evaluateAll((els) => els.map((e) => e.className));
    assert(peaks.every((c) => !c.includes("risk-safe")), `peak filter shows only risky sessions: ${peaks}`);
    log(`peak ≥ Elevated: ${peaks.length} of 3 tagged sessions`);
    await page.getByTestId("session-peak").selectOption("");

    // status filter and its URL
    await page.getByTestId("session-status-filter").selectOption("failed");
    await page.getByText("No session matches these filters.").waitFor({ timeout: 10_000 });
    await page.getByTestId("session-status-filter").selectOption("");
    await waitListed(page, (ids) => ids.length === 3, "status filter cleared");

    // export JSONL and CSV: files named after the session, the trail inside
    const row = page.locator(`tr[data-session="${long}"]`);
    for (const format of ["jsonl", "csv"]) {
      await row.getByTestId("session-actions").click();
      const [download] = await Promise.all([page.waitForEvent("download", { timeout: 15_000 }), row.getByTestId(`export-${format}`).click()]);
      assert(download.suggestedFilename() === `${long}.${format}`, `download named ${download.suggestedFilename()}`);
      const file = await download.path();
      const { readFileSync } = await import("node:fs");
      const text = readFileSync(file, "utf8");
      const lines = text.trimEnd().split("\n");
      if (format === "jsonl") assert(JSON.parse(lines[0]).type === "session_record" && lines.length > 120, `JSONL: ${lines.length} lines`);
      else assert(lines[0].startsWith("session_id") || lines[0].includes("seq"), `CSV header: ${lines[0].slice(0, 80)}`);
    }

    // copy link: the clipboard holds a link that opens the session
    await row.getByTestId("session-actions").click();
    await row.getByTestId("copy-session-link").click();
    await page.getByTestId("session-notice").filter({ hasText: "copied" }).waitFor({ timeout: 5_000 });
    const link = await page.evaluate(() => navigator.clipboard.readText());
    assert(link.endsWith(`#/sessions/${encodeURIComponent(long)}`), `copied ${link}`);

    await page.setViewportSize({ width: 1440, height: 900 });
    await shots(page, "sessions-list");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    // (shots restored the viewport; measure the phone layout explicitly)
    await page.setViewportSize({ width: 390, height: 844 });
    const phoneWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert(phoneWidth <= 390, `phone: the sessions page is ${phoneWidth} px wide (no sideways scrolling)`);
    await page.setViewportSize({ width: 1400, height: 1000 });
    log(`sessions page width: desktop ${overflow} px, phone ${phoneWidth} px`);

    // delete: cancel keeps it, confirm removes it (list and API)
    const doomed = page.locator(`tr[data-session="${other}"]`);
    await doomed.getByTestId("session-actions").click();
    await doomed.getByTestId("delete-session").click();
    await page.getByTestId("delete-dialog").waitFor({ timeout: 5_000 });
    await shots(page, "sessions-delete-confirm");
    await page.getByTestId("delete-cancel").click();
    assert((await listed(page)).includes(other), "cancel keeps the session");
    await doomed.getByTestId("session-actions").click();
    await doomed.getByTestId("delete-session").click();
    await page.getByTestId("delete-confirm").click();
    await page.getByTestId("session-notice").filter({ hasText: `Deleted session ${other}` }).waitFor({ timeout: 10_000 });
    await waitListed(page, (ids) => ids.length === 2 && !ids.includes(other), "the deleted session gone");
    const gone = await fetch(`${base}/sessions/${encodeURIComponent(other)}`);
    assert(gone.status === 404, `GET the deleted session → ${gone.status}`);

    // a link to a token: it opens the session with that token selected, and the view copies it
    await page.goto(`${base}/#/sessions/${encodeURIComponent(long)}?token=42`);
    await page.locator('[data-testid="heatmap"] .tok.selected[data-seq="42"]').waitFor({ timeout: 15_000 });
    await page.getByTestId("copy-token-link").click();
    await page.getByTestId("token-link-status").waitFor({ timeout: 5_000 });
    const tokenLink = await page.evaluate(() => navigator.clipboard.readText());
    assert(tokenLink.endsWith(`#/sessions/${encodeURIComponent(long)}?token=42`), `token link ${tokenLink}`);
    // the session's own page exports it too
    const [own] = await Promise.all([page.waitForEvent("download", { timeout: 15_000 }), page.getByTestId("session-export-csv").click()]);
    assert(own.suggestedFilename() === `${long}.csv`, `download named ${own.suggestedFilename()}`);
  },

  async "compare: three 2,000-token sessions overlaid and side by side, responsive"(page, base) {
    const tag = `cmp${Date.now().toString(36)}`;
    const ids = [];
    for (let v = 0; v < 3; v++) ids.push(await pushFinished(base, `${tag} seed ${v}`, TOKENS, v * 2));
    await waitRecorded(base, ids);

    // pick them in the list, then Compare
    await page.goto(`${base}/#/sessions?q=${tag}`);
    await waitListed(page, (l) => l.length === 3, "the three sessions to compare");
    for (const id of ids) await page.locator(`tr[data-session="${id}"]`).getByTestId("compare-pick").check();
    await page.getByTestId("compare-bar").filter({ hasText: "3 selected" }).waitFor();
    const t0 = Date.now();
    await page.getByTestId("compare-open").click();
    await page.waitForFunction(
      (n) => {
        const c = document.querySelector('[data-testid="compare-chart"]');
        const loaded = document.querySelector('[data-testid="compare"]')?.getAttribute("data-loaded");
        return c && loaded === "3" && Number(c.getAttribute("data-series")) === 3 && Number(c.getAttribute("data-points")) === n;
      },
      TOKENS,
      { timeout: 30_000 },
    );
    const shownMs = Date.now() - t0;
    const url = new URL(page.url());
    assert(url.hash.startsWith("#/compare?ids="), `URL ${url.hash}`);
    assert((await page.getByTestId("compare-row").count()) === 3, "a summary row per session");
    const rows = Number(await page.getByTestId("compare-heatmaps").getAttribute("data-rows"));
    assert(rows === TOKENS / 16, `heatmap rows: ${rows}`);
    // aligned: a row holds the same positions of every session
    const firstRow = await page.locator(".cmp-row").first().evaluate((r) => ({ pos: r.querySelector(".cmp-pos").textContent, cells: r.querySelectorAll(".cmp-cell").length, toks: [...r.querySelectorAll(".cmp-cell")].map((c) => c.querySelectorAll(".tok").length) }));
    assert(firstRow.pos === "#0" && firstRow.cells === 3 && firstRow.toks.every((n) => n === 16), `first row ${JSON.stringify(firstRow)}`);
    const inDom = await page.locator(".cmp-row").count();
    assert(inDom < 60, `virtualised: ${inDom} rows in the DOM for ${rows}`);

    // responsive: scrolling the heatmaps, zooming and hovering the chart keep frames coming
    const stop = await recordFrames(page);
    for (let i = 0; i < 20; i++) {
      await page.locator(".cmp-scroll").evaluate((el, k) => el.scrollTo(0, k * 400), i);
      await page.waitForTimeout(30);
    }
    const chart = page.getByTestId("compare-chart").locator(".u-over");
    const box = await chart.boundingBox();
    for (let i = 0; i < 20; i++) await page.mouse.move(box.x + (box.width * i) / 20, box.y + box.height / 2);
    await page.getByTestId("compare-metric").selectOption("entropy");
    await page.waitForFunction(() => document.querySelector('[data-testid="compare-chart"]')?.getAttribute("data-series") === "3");
    const frames = await stop();
    log(`compare: shown in ${shownMs} ms; frames p50 ${frames.p50.toFixed(1)} p95 ${frames.p95.toFixed(1)} max ${frames.max.toFixed(0)} ms, long tasks ${frames.longTasks}`);
    assert(shownMs < 10_000, `compare view drawn in ${shownMs} ms`);
    assert(frames.p95 < 100, `compare: frame p95 ${frames.p95.toFixed(1)} ms`);
    await page.getByTestId("compare-metric").selectOption("hbar_s");
    await page.locator(".cmp-scroll").evaluate((el) => el.scrollTo(0, 0));
    await shots(page, "compare");
  },
};
