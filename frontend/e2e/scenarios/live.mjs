/**
 * The live page explains itself (issue 17): the text streams above the fold with the form folded to
 * one line, risk says why (reason, peak, calibration, its strip over the tokens), alerts read in words
 * with a severity filter and a next-alert key, numbers never in scientific notation, and an unknown
 * session id says so. Screenshots at desktop and phone sizes.
 */
import { api, assert, DESKTOP, PHONE, pushSession, pushTokens, shots, startGeneration } from "../lib.mjs";

/** The heatmap's top edge is inside the viewport (the streaming text is what the user sees). */
async function textInView(page) {
  const box = await page.getByTestId("heatmap").boundingBox();
  const { height } = page.viewportSize();
  return box !== null && box.y < height - 40;
}

export default {
  async "live view: the form folds to one line and the streaming text is above the fold"(page, base) {
    for (const [label, size] of [["desktop", DESKTOP], ["phone", PHONE]]) {
      await page.setViewportSize(size);
      await page.goto(base + "/#/live");
      await startGeneration(page, { prompt: "Tell me about the history of quantum physics.", maxTokens: 120 });
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="heatmap"]')?.getAttribute("data-count")) >= 5, null, { timeout: 120_000 });
      assert(await page.getByTestId("prompt-bar").isVisible(), `${label}: the form folded to one line`);
      assert((await page.getByTestId("prompt").count()) === 0, `${label}: the full form is gone while streaming`);
      assert(await textInView(page), `${label}: the streaming text starts inside the ${size.width}×${size.height} viewport`);
      assert(await page.getByTestId("card-risk").isVisible(), `${label}: the risk card is in view`);
      await shots(page, `live-streaming-${label}`);
      await page.getByTestId("stop").click();
      await page.getByTestId("session-status").filter({ hasText: /Cancelled|Finished/ }).waitFor({ timeout: 30_000 });
      // Edit brings the form back with what was typed
      await page.getByTestId("edit-prompt").click();
      const typed = await page.getByTestId("prompt").inputValue();
      assert(typed === "Tell me about the history of quantum physics.", `${label}: the form reopens as it was: ${typed}`);
    }
    await page.setViewportSize(DESKTOP);
  },

  async "live view: risk says why, with its peak and a strip over the tokens; alerts in words"(page, base) {
    // A pushed session whose every 7th token is a long shot: alerts, and a risk that rises.
    const sid = await pushSession(base, "risk and alerts, in words");
    await pushTokens(base, sid, 0, 120);
    await api(base, `/push/sessions/${encodeURIComponent(sid)}/finish`, { method: "POST", body: JSON.stringify({ status: "finished", reason: "eos" }) });
    await page.goto(`${base}/#/sessions/${encodeURIComponent(sid)}`);
    await page.waitForFunction(() => document.querySelector('[data-testid="card-risk"]')?.getAttribute("data-level") !== "waiting", null, { timeout: 30_000 });
    await page.getByTestId("risk-strip").waitFor({ timeout: 30_000 });
    const reason = (await page.getByTestId("risk-reason").innerText()).trim();
    assert(reason.length > 20 && /[a-z]/.test(reason), `the risk card gives its reason in a sentence: ${reason}`);
    assert(/peak /.test(await page.getByTestId("risk-peak").innerText()), "peak beside the level");
    assert(/^(calibrated · .+|uncalibrated)$/.test((await page.getByTestId("calibration").first().innerText()).trim()), "calibration said");
    const strip = page.getByTestId("risk-strip");
    assert(await strip.isVisible(), "a risk strip under the chart");
    const bands = await strip.locator(".risk-band").evaluateAll((els) => els.map((e) => e.getAttribute("data-level")));
    assert(bands.length >= 1, `risk bands: ${bands}`);
    const levels = await page.getByTestId("risk-level").innerText();
    assert(!/Warning|Critical/.test(levels), `risk levels do not use the alert severities' words: ${levels}`);

    // Alerts: readable rule names, explanations, a filter, counts that say what they count, next-alert.
    const chips = await page.getByTestId("rule-chip").allInnerTexts();
    assert(chips.length > 0 && chips.every((c) => /^[A-Z][a-z]/.test(c) && !/_/.test(c)), `rule names in words: ${chips.slice(0, 5)}`);
    assert(/\bsent$/.test((await page.getByTestId("alert-count").innerText()).trim()), "the badge says it counts alerts sent");
    assert(/alerts on \d+ tokens/.test(await page.getByTestId("alert-scope").innerText()), "the scope line says what it counts");
    const cardTokens = await page.getByTestId("alert").evaluateAll((els) => els.map((e) => e.getAttribute("data-token-seq")));
    assert(new Set(cardTokens).size === cardTokens.length, "one card per token");
    await page.keyboard.press("n");
    const first = [...cardTokens].map(Number).sort((a, b) => a - b)[0];
    await page.locator(`[data-testid="heatmap"] [data-seq="${first}"].selected`).waitFor({ timeout: 5_000 });
    await page.getByTestId("next-alert").click();
    const second = [...cardTokens].map(Number).sort((a, b) => a - b)[1];
    if (second !== undefined) await page.locator(`[data-testid="heatmap"] [data-seq="${second}"].selected`).waitFor({ timeout: 5_000 });
    await page.getByTestId("alert-severity-filter").selectOption("critical");
    const scope = await page.getByTestId("alert-scope").innerText();
    assert(/of \d+ alerts shown|alerts on/.test(scope), `the filter says how many are shown: ${scope}`);
    await page.getByTestId("alert-severity-filter").selectOption("info");

    // Numbers: no scientific notation anywhere; the chart's legend and units are there.
    const body = await page.locator("body").innerText();
    assert(!/\d(\.\d+)?e[+-]\d/.test(body), "no number in scientific notation on the page");
    assert(/alert at that token/.test(await page.getByTestId("chart-legend").innerText()), "the chart's markers have a legend");
    assert(/higher = more uncertain/.test(await page.getByTestId("card-current").innerText()), "ℏₛ's direction on its card");
    await shots(page, "live-risk-and-alerts");
  },

  async "live view: the chart's hover readout names the token"(page, base) {
    const sid = await pushSession(base, "hover readout");
    await pushTokens(base, sid, 0, 40);
    await page.goto(`${base}/#/sessions/${encodeURIComponent(sid)}`);
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart"]')?.getAttribute("data-points")) >= 40, null, { timeout: 30_000 });
    const over = page.locator('[data-testid="chart"] .u-over');
    const box = await over.boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    const readout = await page.locator('[data-testid="chart"] .u-legend .u-series').first().innerText();
    assert(/#\d+ \S/.test(readout), `the readout gives the token's position and text: ${readout}`);
  },

  async "live view: an unknown session id says it is unknown"(page, base) {
    await page.goto(`${base}/#/sessions/no-such-session-${Date.now()}`);
    await page.getByTestId("session-not-found").waitFor({ timeout: 15_000 });
    const text = await page.getByTestId("session-not-found").innerText();
    assert(/No session/.test(text) && !/Safe|Loading/.test(text), `not found, nothing else: ${text}`);
    await shots(page, "live-unknown-session");
  },
};
