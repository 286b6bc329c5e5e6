/**
 * The dashboard's first scenarios: live generation, the token popup, summary and calibration,
 * reconnects, complete mode, the push API, replay, performance and keyboard use.
 */
import {
  api, assert, busyShare, count, log, mainThread, pushSession, pushTokens, recordFrames, sessionIdOf, shot,
  startLongGeneration, watchConsole,
} from "../lib.mjs";

export default {
  async "live generation: prompt, start, tokens and chart update, alerts, token details"(page, base) {
    const checkConsole = watchConsole(page);
    await page.goto(base + "/");
    await page.getByTestId("connection").filter({ hasText: "Live" }).waitFor({ timeout: 15_000 });
    // The original README's example prompts are one click away, and set how the prompt is sent.
    await page.getByRole("button", { name: /The capital of France is/ }).click();
    assert(await page.getByRole("radio", { name: "Complete text" }).isChecked(), "the factual example is a completion");
    await page.getByRole("button", { name: /What will technology look like in 2090\?/ }).click();
    assert((await page.getByTestId("prompt").inputValue()) === "What will technology look like in 2090?", "example prompt filled");
    assert(await page.getByRole("radio", { name: "Chat (model's chat template)" }).isChecked(), "the speculative example is a chat");
    await shot(page, "01-empty-light");

    const sid = await startLongGeneration(
      page,
      { prompt: "What will technology look like in 2090? Describe a day in the life of a person then.", maxTokens: 60, temperature: 0.9, seed: 99 },
      5,
    );
    log(`session ${sid}`);
    const n1 = await count(page);
    const p1 = Number(await page.getByTestId("chart").getAttribute("data-points"));
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="heatmap"]')?.getAttribute("data-count")) >= n + 5, n1, {
      timeout: 30_000,
    });
    const p2 = Number(await page.getByTestId("chart").getAttribute("data-points"));
    assert(p2 > p1 && p1 > 0, `chart points grow (${p1} → ${p2})`);
    const cardTokens = Number((await page.getByTestId("token-count").innerText()).split("/")[0].trim());
    assert(cardTokens >= n1 + 5, `tokens card counts (${cardTokens})`);

    // An alert appears (LOW_CONFIDENCE fires readily at temperature 1.2), newest first.
    await page.getByTestId("alerts").locator("li").first().waitFor({ timeout: 90_000 });
    // The alerter's live scores (a `scores` message when the answer is complete and every 16
    // tokens) give the risk card the answer's G-NLL while it runs (from the summary, if it ended first).
    await page.getByTestId("answer-gnll").waitFor({ timeout: 90_000 });
    const liveGnll = await page.getByTestId("answer-gnll").innerText();
    assert(/^answer −log₂p = \d+\.\d bits( so far)?$/.test(liveGnll), `the answer's G-NLL: ${liveGnll}`);
    await shot(page, "02-live-streaming");

    // Hovering a token shows its top alternatives with probabilities and the tail mass.
    const tok = page.locator('.tok[data-seq="2"]');
    await tok.hover();
    const details = page.getByTestId("token-details");
    await details.waitFor({ timeout: 5_000 });
    const alts = details.getByTestId("alternatives");
    assert((await alts.locator("tbody tr").count()) >= 3, "alternatives listed");
    const text = await alts.innerText();
    assert(/%/.test(text) && /rest of the vocabulary/.test(text), `probabilities and tail shown: ${text.slice(0, 200)}`);
    await shot(page, "03-token-hover");
    await page.mouse.move(0, 0);

    // Clicking an alert scrolls to and highlights its token.
    const first = page.getByTestId("alerts").locator("button").first();
    const label = await first.getAttribute("aria-label");
    const seq = Number(/at token (\d+)/.exec(label ?? "")?.[1]);
    await first.click();
    await page.locator(`.tok.selected[data-seq="${seq}"]`).waitFor({ timeout: 5_000 });
    await shot(page, "04-alert-selected");

    // Wait for the end; the view then matches the recorded session exactly.
    await page.getByTestId("session-status").filter({ hasText: /Finished|Cancelled|Failed/ }).waitFor({ timeout: 300_000 });
    await page.getByTestId("summary").waitFor({ timeout: 30_000 });
    const h = await api(base, `/sessions/${encodeURIComponent(sid)}`);
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="heatmap"]')?.getAttribute("data-count")) === n, h.tokens.length, {
      timeout: 15_000,
    });
    const contiguous = Number(await page.getByTestId("heatmap").getAttribute("data-contiguous"));
    assert(contiguous === h.tokens.length - 1, `no holes (${contiguous} vs ${h.tokens.length})`);
    // One alert per token, each card listing every rule that fired there as chips.
    const alertTokens = h.alerts.map((a) => a.token_seq);
    assert(new Set(alertTokens).size === alertTokens.length, `one alert per token (${alertTokens.join(", ")})`);
    const cards = page.getByTestId("alert");
    assert((await cards.count()) === h.alerts.length, `one card per alert (${await cards.count()} vs ${h.alerts.length})`);
    if (h.alerts.length) {
      const newest = h.alerts[h.alerts.length - 1];
      // chips show readable names; their data-rule is the rule id
      const chips = await cards.first().getByTestId("rule-chip").evaluateAll((els) => els.map((e) => e.getAttribute("data-rule")));
      const rules = newest.rules?.length ? newest.rules : [newest.rule];
      assert(JSON.stringify(chips) === JSON.stringify(rules), `rule chips ${JSON.stringify(chips)} = ${JSON.stringify(rules)}`);
    }
    // The summary gives the peak beside the final level; the risk card names its calibration.
    const summaryRisk = await page.getByTestId("summary-risk").innerText();
    assert(/final .+ · peak /.test(summaryRisk), `final and peak risk shown: ${summaryRisk}`);
    const calib = await page.getByTestId("card-risk").getByTestId("calibration").innerText();
    assert(/^(calibrated · .+|uncalibrated)$/.test(calib), `calibration label: ${calib}`);
    const lastRisk = h.risks[h.risks.length - 1];
    if (lastRisk?.reason) {
      const shown = await page.getByTestId("risk-reason").innerText();
      assert(shown === lastRisk.reason, `the latest risk reason in full: ${shown}`);
    }
    if (h.summary?.p_wrong != null) {
      const shown = await page.getByTestId("p-wrong").innerText();
      assert(shown.includes(`${(h.summary.p_wrong * 100).toFixed(1)}%`), `P(wrong) ${shown} vs ${h.summary.p_wrong}`);
    }
    // Once ended, the summary's answer scores win over the live ones.
    assert(h.live_scores == null, `no live_scores once the summary exists: ${JSON.stringify(h.live_scores)}`);
    if (h.summary?.answer_scores?.gnll != null) {
      const shown = await page.getByTestId("answer-gnll").innerText();
      assert(shown === `answer −log₂p = ${h.summary.answer_scores.gnll.toFixed(1)} bits`, `G-NLL ${shown} vs ${h.summary.answer_scores.gnll}`);
    }
    await checkConsole();
    await shot(page, "05-finished");
  },

  async "reload mid-generation resumes the session with no duplicate or missing token"(page, base) {
    await page.goto(base + "/#/live");
    const sid = await startLongGeneration(page, { prompt: "Explain quantum computing in simple terms", maxTokens: 48 }, 10);
    const record = (await api(base, `/sessions/${encodeURIComponent(sid)}`)).session;
    assert(record.prompt === "user: Explain quantum computing in simple terms", `sent as a chat message: ${JSON.stringify(record.prompt)}`);
    const before = await count(page);
    const checkConsole = watchConsole(page);
    await page.reload();
    assert(sessionIdOf(page) === sid, "the URL keeps the session");
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="heatmap"]')?.getAttribute("data-count")) > n, before, {
      timeout: 60_000,
    });
    await shot(page, "06-after-reload");
    await page.getByTestId("session-status").filter({ hasText: /Finished|Cancelled|Failed/ }).waitFor({ timeout: 300_000 });
    const h = await api(base, `/sessions/${encodeURIComponent(sid)}`);
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="heatmap"]')?.getAttribute("data-count")) === n, h.tokens.length, {
      timeout: 15_000,
    });
    const contiguous = Number(await page.getByTestId("heatmap").getAttribute("data-contiguous"));
    assert(contiguous === h.tokens.length - 1, `every token once, in order (${contiguous + 1} of ${h.tokens.length})`);
    const shown = (await page.getByTestId("token-count").innerText()).trim();
    assert(shown === String(h.tokens.length), `tokens card ${shown} = ${h.tokens.length}`);
    // Reloaded mid-run: the snapshot's live_scores and the replay's latest `scores` parse too.
    await checkConsole();
  },


  async "resilience: a lost WebSocket shows its state, reconnects, resubscribes, and no token is lost or doubled"(page, base) {
    // The page's WebSocket goes through a route we can cut, refuse, and make drop frames.
    let outage = false;
    let dropTokens = 0;
    const live = [];
    const fromPage = [];
    await page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
      if (outage) {
        ws.close({ code: 4000, reason: "e2e: network down" });
        return;
      }
      const server = ws.connectToServer();
      live.push(ws);
      ws.onMessage((m) => {
        fromPage.push(JSON.parse(String(m)));
        server.send(m);
      });
      server.onMessage((m) => {
        if (dropTokens > 0 && String(m).startsWith('{"') && JSON.parse(String(m)).type === "token") {
          dropTokens--;
          return;
        }
        ws.send(m);
      });
    });
    await page.goto(base + "/#/live");
    await page.getByTestId("connection").filter({ hasText: "Live" }).waitFor({ timeout: 15_000 });
    const sid = await startLongGeneration(page, { prompt: "Explain quantum computing in simple terms", maxTokens: 40 }, 4);
    // Three token frames vanish on the way (the page must notice the hole and fill it).
    dropTokens = 3;
    while (dropTokens > 0) await new Promise((r) => setTimeout(r, 100));
    const afterDrop = await count(page);
    await page.waitForFunction(
      (n) => {
        const el = document.querySelector('[data-testid="heatmap"]');
        const c = Number(el?.getAttribute("data-count"));
        return c > n && Number(el?.getAttribute("data-contiguous")) === c - 1;
      },
      afterDrop,
      { timeout: 120_000 },
    );
    log(`the 3 dropped token frames were filled from GET /sessions/{id} (${await count(page)} tokens, no hole)`);
    // Then the network goes down: the open socket is cut and new ones are refused for a while.
    outage = true;
    for (const ws of live.splice(0)) await ws.close({ code: 4000, reason: "e2e: network down" }).catch(() => {});
    await page.locator('[data-testid="connection"][data-state="reconnecting"]').waitFor({ timeout: 10_000 });
    const stateText = await page.getByTestId("connection").innerText();
    assert(/Disconnected|Reconnecting/.test(stateText), `the state is shown in words: ${stateText}`);
    await shot(page, "12-disconnected");
    await page.waitForTimeout(4000);
    const attempts = Number(/attempt (\d+)/.exec(await page.getByTestId("connection").innerText())?.[1] ?? 0);
    outage = false;
    await page.locator('[data-testid="connection"][data-state="open"]').waitFor({ timeout: 30_000 });
    const subs = fromPage.filter((m) => m.type === "subscribe" && m.session_id === sid);
    assert(subs.length >= 2, `resubscribed after the reconnect (${subs.length} subscribes)`);
    const resub = subs[subs.length - 1];
    assert(resub.after_seq >= 3, `resubscribed after what it had (after_seq ${resub.after_seq})`);
    log(`reconnected after ${attempts} failed attempts; resubscribed with after_seq ${resub.after_seq}`);
    await page.getByTestId("session-status").filter({ hasText: /Finished|Cancelled|Failed/ }).waitFor({ timeout: 300_000 });
    const h = await api(base, `/sessions/${encodeURIComponent(sid)}`);
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="heatmap"]')?.getAttribute("data-count")) === n, h.tokens.length, {
      timeout: 30_000,
    });
    const contiguous = Number(await page.getByTestId("heatmap").getAttribute("data-contiguous"));
    assert(contiguous === h.tokens.length - 1, `every token once, in order (${contiguous + 1} of ${h.tokens.length})`);
    await shot(page, "13-after-reconnect");
  },

  async "Stop cancels a running generation"(page, base) {
    await page.goto(base + "/#/live");
    const sid = await startLongGeneration(page, { prompt: "Explain quantum computing in simple terms", maxTokens: 400 }, 3);
    await page.getByTestId("stop").click();
    await page.getByTestId("session-status").filter({ hasText: "Cancelled" }).waitFor({ timeout: 30_000 });
    const h = await api(base, `/sessions/${encodeURIComponent(sid)}`);
    assert(h.session.status === "cancelled", `status ${h.session.status}`);
  },

  async "modes reach the generator; a 0-token ending and a failure are said plainly"(page, base) {
    // "The capital of France is" goes as text to complete (typed prompts go as chat: see the reload scenario).
    await page.goto(base + "/#/live");
    await page.getByRole("button", { name: /The capital of France is/ }).click();
    await page.getByTestId("max-tokens").fill("6");
    await page.getByTestId("start").click();
    await page.waitForFunction(() => location.hash.startsWith("#/live/"), null, { timeout: 15_000 });
    const sid = sessionIdOf(page);
    await page.getByTestId("session-status").filter({ hasText: /Finished|Cancelled|Failed/ }).waitFor({ timeout: 180_000 });
    const h = await api(base, `/sessions/${encodeURIComponent(sid)}`);
    assert(h.session.prompt === "The capital of France is", `sent as a plain prompt: ${JSON.stringify(h.session.prompt)}`);

    // A session that ends before its first token (pushed, so it does not depend on sampling);
    // before it ends, its risk card waits instead of claiming "Safe".
    const empty = await pushSession(base, "ends at once");
    await page.goto(`${base}/#/live/${encodeURIComponent(empty)}`);
    const waiting = page.getByTestId("card-risk");
    await waiting.filter({ hasText: "waiting for the first token" }).waitFor({ timeout: 15_000 });
    assert(!/Safe/.test(await waiting.innerText()), `no "Safe" before the first token: ${await waiting.innerText()}`);
    await api(base, `/push/sessions/${encodeURIComponent(empty)}/finish`, { method: "POST", body: JSON.stringify({ status: "finished", reason: "eos" }) });
    await page.goto(`${base}/#/live/${encodeURIComponent(empty)}`);
    const notice = page.getByTestId("session-outcome");
    await notice.filter({ hasText: "end of sequence before any token" }).waitFor({ timeout: 15_000 });
    assert((await notice.getAttribute("data-kind")) === "empty", "0-token notice");
    await shot(page, "14-ended-at-once-light");

    // A failed session shows its reason as an alert, in both themes.
    const failed = await pushSession(base, "fails");
    await pushTokens(base, failed, 0, 3);
    const reason = "the upstream model returned HTTP 503";
    await api(base, `/push/sessions/${encodeURIComponent(failed)}/finish`, { method: "POST", body: JSON.stringify({ status: "failed", reason }) });
    await page.goto(`${base}/#/live/${encodeURIComponent(failed)}`);
    await page.getByRole("alert").filter({ hasText: reason }).waitFor({ timeout: 15_000 });
    await page.getByTestId("theme-toggle").click();
    await shot(page, "15-failed-dark");
    await page.goto(base + "/#/live");
    await page.getByRole("button", { name: /Explain quantum computing/ }).click();
    await shot(page, "16-form-dark");
    await page.getByTestId("theme-toggle").click();
  },

  async "sessions page lists sessions and replays one; dark theme"(page, base) {
    await page.goto(base + "/#/sessions");
    const rows = page.getByTestId("sessions").locator("tbody tr");
    await rows.first().waitFor({ timeout: 15_000 });
    assert((await rows.count()) >= 2, "at least the sessions of this run");
    await shot(page, "07-sessions-light");
    await rows.first().locator("a").click();
    await page.getByTestId("session-status").filter({ hasText: /Finished|Cancelled|Failed/ }).waitFor({ timeout: 15_000 });
    const total = await count(page);
    assert(total > 0, "the session shows its tokens");
    // Replay it in the same views, fast.
    await page.getByRole("combobox", { name: "speed" }).selectOption("64");
    await page.getByTestId("replay").click();
    await page.getByText("replay finished").waitFor({ timeout: 60_000 });
    assert((await count(page)) === total, "the replay shows every token");
    await page.getByTestId("theme-toggle").click();
    assert((await page.evaluate(() => document.documentElement.dataset.theme)) === "dark", "dark theme");
    await page.locator('.tok[data-seq="1"]').hover();
    await page.getByTestId("token-details").waitFor();
    await shot(page, "08-replay-dark");
    await page.getByTestId("theme-toggle").click();
  },


  async "performance: 50 tokens/s stay smooth; a 5,000-token session stays responsive"(page, base) {
    // 1) 500 tokens pushed at 50 tokens/s through the real pipeline, watched live.
    const sid = await pushSession(base, "synthetic stream at 50 tokens/s");
    await page.goto(`${base}/#/live/${encodeURIComponent(sid)}`);
    await page.getByTestId("connection").filter({ hasText: "Live" }).waitFor({ timeout: 15_000 });
    await page.waitForTimeout(500);
    // Baseline, side by side: the same page idle for 3 s on this (shared) machine.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Performance.enable");
    const stopIdle = await recordFrames(page);
    const idle0 = await mainThread(cdp);
    await page.waitForTimeout(3000);
    const idleBusy = busyShare(idle0, await mainThread(cdp));
    const idle = await stopIdle();
    const stopFrames = await recordFrames(page);
    const live0 = await mainThread(cdp);
    const t0 = Date.now();
    for (let i = 0; i < 500; i += 5) {
      await pushTokens(base, sid, i, 5);
      const due = t0 + ((i + 5) / 50) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    }
    const pushS = (Date.now() - t0) / 1000;
    await api(base, `/push/sessions/${encodeURIComponent(sid)}/finish`, { method: "POST", body: JSON.stringify({ status: "finished", reason: "stop" }) });
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="heatmap"]')?.getAttribute("data-count")) === 500, null, { timeout: 60_000 });
    const liveBusy = busyShare(live0, await mainThread(cdp));
    const f = await stopFrames();
    const chartFrames = Number(await page.getByTestId("chart").getAttribute("data-frames"));
    log(
      `50 tok/s: 500 tokens pushed in ${pushS.toFixed(1)} s; ${f.frames} frames, p50 ${f.p50.toFixed(1)} ms, p95 ${f.p95.toFixed(1)} ms, ` +
        `max ${f.max.toFixed(0)} ms, frames over 50 ms ${f.over50} (${((100 * f.over50) / Math.max(1, f.frames)).toFixed(1)}%), ` +
        `long tasks ${f.longTasks}; chart redraws ${chartFrames} for 500 tokens (${(chartFrames / 500).toFixed(2)} per token)`,
    );
    log(
      `50 tok/s vs idle page: p95 frame ${f.p95.toFixed(1)} vs ${idle.p95.toFixed(1)} ms (ratio ${(f.p95 / Math.max(1, idle.p95)).toFixed(2)}), ` +
        `frames over 50 ms ${((100 * f.over50) / Math.max(1, f.frames)).toFixed(1)}% vs ${((100 * idle.over50) / Math.max(1, idle.frames)).toFixed(1)}%; ` +
        `page main thread busy ${liveBusy.total}% (script ${liveBusy.script}%, layout ${liveBusy.layout}%, style ${liveBusy.style}%) vs idle ${idleBusy.total}%`,
    );
    assert(Number(await page.getByTestId("heatmap").getAttribute("data-contiguous")) === 499, "all 500 tokens, in order");
    assert(chartFrames < 500, `chart redrawn per frame, not per token (${chartFrames})`);
    await shot(page, "10-push-50-per-s");

    // 2) A 5,000-token session: pushed fast, then opened; only what is on screen is rendered.
    const big = await pushSession(base, "synthetic 5,000-token session");
    for (let i = 0; i < 5000; i += 1000) await pushTokens(base, big, i, 1000);
    await api(base, `/push/sessions/${encodeURIComponent(big)}/finish`, { method: "POST", body: JSON.stringify({ status: "finished", reason: "length" }) });
    const deadline = Date.now() + 120_000;
    while ((await api(base, `/sessions/${encodeURIComponent(big)}`)).tokens.length < 5000) {
      assert(Date.now() < deadline, "the pipeline audits 5,000 pushed tokens within 120 s");
      await new Promise((r) => setTimeout(r, 500));
    }
    const tRest = Date.now();
    await api(base, `/sessions/${encodeURIComponent(big)}`);
    const restS = (Date.now() - tRest) / 1000;
    const t1 = Date.now();
    await page.goto(`${base}/#/sessions/${encodeURIComponent(big)}`);
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="heatmap"]')?.getAttribute("data-count")) === 5000, null, { timeout: 60_000 });
    const openS = (Date.now() - t1) / 1000;
    const rendered = await page.locator(".tok[data-seq]").count();
    assert(rendered < 1500, `virtualised: ${rendered} token nodes for 5,000 tokens`);
    const stop2 = await recordFrames(page);
    const t2 = Date.now();
    await page.locator('.tok[data-seq="0"]').focus();
    await page.keyboard.press("End");
    await page.locator('.tok[data-seq="4999"]').waitFor({ timeout: 10_000 });
    const endMs = Date.now() - t2;
    await page.locator('.tok[data-seq="4999"]').hover();
    await page.getByTestId("token-details").waitFor({ timeout: 5_000 });
    for (let k = 0; k < 10; k++) await page.getByTestId("heatmap").evaluate((el) => (el.scrollTop -= 400));
    const f2 = await stop2();
    log(
      `5,000 tokens: opened in ${openS.toFixed(2)} s (the bare GET /sessions/{id} alone: ${restS.toFixed(2)} s, ratio ${(openS / restS).toFixed(2)}) with ${rendered} token nodes in the DOM (${((100 * rendered) / 5000).toFixed(1)}%); ` +
        `End key to last token ${endMs} ms; frames while jumping/scrolling p95 ${f2.p95.toFixed(1)} ms, max ${f2.max.toFixed(0)} ms`,
    );
    await shot(page, "11-5000-tokens");
  },

  async "keyboard: tokens are reachable and show their details on focus"(page, base) {
    const list = await api(base, "/sessions?limit=1");
    await page.goto(`${base}/#/sessions/${encodeURIComponent(list.items[0].session_id)}`);
    await page.locator('.tok[data-seq="0"]').waitFor({ timeout: 15_000 });
    await page.locator('.tok[data-seq="0"]').focus();
    await page.keyboard.press("ArrowRight");
    await page.keyboard.press("ArrowRight");
    // The focus moves once the list has rendered the next token (a frame later on a busy machine).
    const moved = await page
      .waitForFunction(() => document.activeElement?.getAttribute("data-seq") === "2", null, { timeout: 5_000 })
      .then(() => true, () => false);
    const focused = await page.evaluate(() => document.activeElement?.getAttribute("data-seq"));
    assert(moved, `arrow keys move the focus (${focused})`);
    await page.getByTestId("token-details").waitFor({ timeout: 5_000 });
    await shot(page, "09-keyboard-focus");
  },
};

