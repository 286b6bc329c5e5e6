/**
 * The token history table (issue 17): sortable, copyable, virtualised, linked both ways with the
 * heatmap; a 5,000-token pushed session scrolls in it. Screenshots at desktop and phone sizes.
 */
import { assert, pushSession, pushTokens, recordFrames, shots } from "../lib.mjs";

export default {
  async "token history: sorts, copies, links both ways and scrolls a 5,000-token session"(page, base) {
    const sid = await pushSession(base, "token history");
    for (let from = 0; from < 5000; from += 1000) await pushTokens(base, sid, from, 1000);
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    await page.goto(`${base}/#/sessions/${encodeURIComponent(sid)}`);
    const table = page.getByTestId("token-history");
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="token-history"]')?.getAttribute("data-rows")) >= 5000, null, { timeout: 60_000 });
    const rendered = await page.getByTestId("history-row").count();
    assert(rendered < 200, `virtualised: ${rendered} rows in the DOM for 5,000 tokens`);

    // sort by ℏₛ, highest first: the first row's ℏₛ is the largest
    await page.getByTestId("sort-hbar_s").click();
    const sortState = await page.getByTestId("sort-hbar_s").evaluate((b) => b.closest("th").getAttribute("aria-sort"));
    assert(sortState === "descending", `aria-sort ${sortState}`);
    const firstTwo = await page.getByTestId("history-row").evaluateAll((rows) => rows.slice(0, 2).map((r) => Number(r.children[3].textContent)));
    assert(firstTwo[0] >= firstTwo[1], `sorted by ℏₛ: ${firstTwo}`);

    // copy: the clipboard holds a header and 5,000 rows
    await page.getByTestId("copy-history").click();
    await page.getByTestId("copy-status").waitFor({ timeout: 5_000 });
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    assert(clip.trimEnd().split("\n").length === 5001 && clip.startsWith("seq\ttoken\tp"), `copied ${clip.split("\n").length} lines`);

    // row → heatmap: clicking a row selects its token there
    const row = page.getByTestId("history-row").first();
    const seq = await row.getAttribute("data-seq");
    await row.click();
    await page.locator(`[data-testid="heatmap"] [data-seq="${seq}"].selected`).waitFor({ timeout: 5_000 });
    // heatmap → row: back in position order, clicking a heatmap token selects its row
    await page.getByTestId("sort-seq").click();
    await page.locator('[data-testid="heatmap"] [data-seq="12"]').click();
    await table.locator('[data-testid="history-row"][data-seq="12"].selected').waitFor({ timeout: 5_000 });

    // scrolling the 5,000 rows stays smooth
    const stop = await recordFrames(page);
    for (let i = 0; i < 20; i++) {
      await page.locator(".th-scroll").evaluate((el, k) => el.scrollTo(0, k * 7000), i);
      await page.waitForTimeout(30);
    }
    const frames = await stop();
    assert(frames.p95 < 100, `scrolling: frame p95 ${frames.p95.toFixed(1)} ms`);
    await page.locator(".th-scroll").evaluate((el) => el.scrollTo(0, 0));
    await table.scrollIntoViewIfNeeded();
    await shots(page, "token-history");
  },
};
