import { describe, expect, it } from "vitest";
import { alert, history, risk, scores, sequenceScores, session, SID, summaryEvent, token } from "../../../test/factories";
import { SessionStore } from "./sessionStore";

const texts = (s: SessionStore) => s.tokens.map((t) => t?.text ?? "_").join("");

describe("SessionStore ordering", () => {
  it("keeps tokens by seq whatever the arrival order", () => {
    const inOrder = new SessionStore(SID);
    const shuffled = new SessionStore(SID);
    const order = [3, 0, 4, 1, 2];
    for (let i = 0; i < 5; i++) inOrder.apply(token(i, String.fromCharCode(97 + i)));
    for (const i of order) shuffled.apply(token(i, String.fromCharCode(97 + i)));
    expect(texts(inOrder)).toBe("abcde");
    expect(texts(shuffled)).toBe("abcde");
    expect(shuffled.contiguous).toBe(4);
    expect(shuffled.chart.column("seq")).toEqual([0, 1, 2, 3, 4]);
  });

  it("feeds the chart only with the contiguous prefix, in seq order", () => {
    const s = new SessionStore(SID);
    s.apply(token(0));
    s.apply(token(2));
    expect(s.contiguous).toBe(0);
    expect(s.chart.column("seq")).toEqual([0]);
    expect(s.missingRanges()).toEqual([[1, 1]]);
    s.apply(token(1));
    expect(s.chart.column("seq")).toEqual([0, 1, 2]);
    expect(s.chart.column("hbar_s")).toEqual([0, 0.1, 0.2]);
    expect(s.missingRanges()).toEqual([]);
  });

  it("keeps alerts and risks in seq order and reports the latest risk", () => {
    const s = new SessionStore(SID);
    s.apply(risk(5, "critical", "warning"));
    s.apply(risk(2, "warning", "safe"));
    s.apply(alert(4, 7, "critical"));
    s.apply(alert(1, 3));
    expect(s.alerts.map((a) => a.seq)).toEqual([1, 4]);
    expect(s.risks.map((r) => r.seq)).toEqual([2, 5]);
    expect(s.risk).toBe("critical");
    expect(s.alertByToken.get(7)).toBe("critical");
  });

  it("never moves the lifecycle backwards", () => {
    const s = new SessionStore(SID);
    s.apply({ type: "done", session_id: SID, status: "finished", reason: "eos", tokens: 0, summary: null });
    s.apply(session("started"));
    expect(s.status).toBe("finished");
    expect(s.complete).toBe(true);
  });

  it("ignores messages of other sessions", () => {
    const s = new SessionStore(SID);
    expect(s.apply(token(0, "x", 1, "other"))).toBe(false);
    expect(s.tokenCount).toBe(0);
  });
});

describe("SessionStore dedupe", () => {
  it("applies a repeated token, alert or risk once", () => {
    const s = new SessionStore(SID);
    let notified = 0;
    s.subscribe(() => notified++);
    expect(s.apply(token(0, "a"))).toBe(true);
    expect(s.apply(token(0, "changed"))).toBe(false);
    expect(s.apply(alert(0, 0))).toBe(true);
    expect(s.apply(alert(0, 0))).toBe(false);
    expect(s.apply(risk(1, "warning"))).toBe(true);
    expect(s.apply(risk(1, "warning"))).toBe(false);
    expect(s.tokenCount).toBe(1);
    expect(texts(s)).toBe("a");
    expect(s.alerts).toHaveLength(1);
    expect(s.risks).toHaveLength(1);
    expect(notified).toBe(3);
  });

  it("keys on type as well as seq: an alert and a risk may share a seq", () => {
    const s = new SessionStore(SID);
    s.apply(alert(3, 0));
    s.apply(risk(3, "warning"));
    expect(s.alerts).toHaveLength(1);
    expect(s.risks).toHaveLength(1);
  });

  it("merges a snapshot with live messages without duplicates", () => {
    const s = new SessionStore(SID);
    s.apply(token(0));
    s.apply(token(1));
    s.applyHistory(history([token(0), token(1), token(2), token(3)]));
    s.apply(token(3));
    s.apply(token(4));
    expect(s.tokenCount).toBe(5);
    expect(s.chart.column("seq")).toEqual([0, 1, 2, 3, 4]);
    expect(s.meanHbar).toBeCloseTo((0 + 0.1 + 0.2 + 0.3 + 0.4) / 5, 10);
  });
});

describe("SessionStore reconnect", () => {
  it("resumes after a reconnect from the contiguous seq with no duplicate and no hole", () => {
    const s = new SessionStore(SID);
    for (let i = 0; i < 10; i++) s.apply(token(i));
    // The socket dropped after token 9; tokens 10..14 were published meanwhile.
    const after = s.contiguous;
    expect(after).toBe(9);
    // The server replays seq > after_seq, overlapping what a late frame already delivered.
    s.apply(token(11));
    for (let i = after + 1; i < 15; i++) s.apply(token(i));
    s.apply({ type: "replayed", session_id: SID, last_seq: 14 });
    s.apply(token(15));
    expect(s.tokenCount).toBe(16);
    expect(s.contiguous).toBe(15);
    expect(s.chart.column("seq")).toEqual(Array.from({ length: 16 }, (_, i) => i));
  });

  it("knows which tokens a finished session still misses", () => {
    const s = new SessionStore(SID);
    s.apply(token(0));
    s.apply(token(3));
    s.apply({ type: "done", session_id: SID, status: "finished", reason: "max_tokens", tokens: 6, summary: null });
    expect(s.complete).toBe(false);
    expect(s.missingRanges()).toEqual([
      [1, 2],
      [4, 5],
    ]);
    s.applyHistory(history([0, 1, 2, 3, 4, 5].map((i) => token(i)), "finished"));
    expect(s.complete).toBe(true);
    expect(s.missingRanges()).toEqual([]);
  });
});

describe("SessionStore buffer bounds", () => {
  it("keeps at most chartPoints points, the newest", () => {
    const s = new SessionStore(SID, 100);
    for (let i = 0; i < 1000; i++) s.apply(token(i, "x", i % 7));
    expect(s.chart.length).toBe(100);
    expect(s.chart.column("seq")[0]).toBe(900);
    expect(s.chart.column("seq")[99]).toBe(999);
    // Every token is still there for the heatmap, and the average covers them all.
    expect(s.tokenCount).toBe(1000);
    const mean = Array.from({ length: 1000 }, (_, i) => i % 7).reduce((a, b) => a + b, 0) / 1000;
    expect(s.meanHbar).toBeCloseTo(mean, 10);
  });

  it("reports tokens per second from the producer's timestamps", () => {
    const s = new SessionStore(SID);
    for (let i = 0; i < 50; i++) s.apply(token(i)); // 100 ms apart
    expect(s.tokensPerSecond).toBeCloseTo(10, 6);
    // Faster at the end: the live rate follows the last 32 tokens...
    for (let i = 50; i < 100; i++) s.apply({ ...token(i), token_ts_ns: 1e18 + 49 * 1e8 + (i - 49) * 2e7 });
    expect(s.tokensPerSecond).toBeCloseTo(50, 6);
    // ...and once ended, the whole session counts: 99 gaps over 4.9 s + 1 s.
    s.apply({ type: "done", session_id: SID, status: "finished", reason: "eos", tokens: 100, summary: null });
    expect(s.tokensPerSecond).toBeCloseTo(99 / 5.9, 6);
  });

  it("leaves a null metric out of the chart as NaN, not zero", () => {
    const s = new SessionStore(SID);
    const t = token(0);
    s.apply({ ...t, metrics: { ...t.metrics, hbar_s: null } });
    expect(Number.isNaN(s.chart.get("hbar_s", 0))).toBe(true);
    expect(s.meanHbar).toBeNull();
  });
});

describe("SessionStore risk", () => {
  it("has no risk level before the first token, then Safe until a change", () => {
    const s = new SessionStore(SID);
    expect(s.riskLevel).toBeNull();
    expect(s.peakRisk).toBeNull();
    s.apply(token(0));
    expect(s.riskLevel).toBe("safe");
  });

  it("keeps the peak and the latest known P(wrong) as the level comes down", () => {
    const s = new SessionStore(SID);
    s.apply(token(0));
    s.apply({ ...risk(0, "critical"), evidence: "answer", p_wrong: 0.9, profile: "p" });
    s.apply({ ...risk(1, "warning", "critical"), evidence: "loop", p_wrong: null, profile: "p" });
    expect(s.riskLevel).toBe("warning");
    expect(s.peakRisk).toBe("critical");
    expect(s.latestRisk?.evidence).toBe("loop");
    expect(s.pWrong).toBe(0.9);
  });

  it("prefers the summary's P(wrong) and peak once the session ended", () => {
    const s = new SessionStore(SID);
    s.apply(token(0));
    s.apply({ ...risk(0, "warning"), p_wrong: 0.4 });
    s.apply({
      type: "done",
      session_id: SID,
      status: "finished",
      reason: "eos",
      tokens: 1,
      summary: summaryEvent({
        tokens: 1,
        firings_by_rule: {},
        alerts_sent_by_rule: null,
        max_hbar_s: null,
        mean_hbar_s: null,
        mean_entropy: null,
        perplexity: null,
        nll_bits: null,
        low_confidence_share: null,
        final_risk: "warning",
        peak_risk: "emergency",
        p_wrong: 0.35,
        profile: "p",
        status: "finished",
      }),
    });
    expect(s.pWrong).toBe(0.35);
    expect(s.peakRisk).toBe("emergency");
  });
});

describe("SessionStore live scores", () => {
  it("keeps the latest scores message (highest seq) whatever the arrival order, once each", () => {
    const s = new SessionStore(SID);
    expect(s.scores).toBeNull();
    expect(s.answerScores).toBeNull();
    const v0 = s.version;
    expect(s.apply(scores(1, 31, { p_wrong: 0.3 }))).toBe(true);
    expect(s.apply(scores(0, 15, { p_wrong: 0.9 }))).toBe(false); // older: a late or replayed frame
    expect(s.apply(scores(1, 31, { p_wrong: 0.3 }))).toBe(false); // the same again (replay)
    expect(s.scores?.seq).toBe(1);
    expect(s.pWrong).toBe(0.3);
    expect(s.version).toBe(v0 + 1);
    s.apply(scores(2, 47, { p_wrong: 0.25 }));
    expect(s.scores?.token_seq).toBe(47);
    expect(s.pWrong).toBe(0.25);
    expect(s.answerScores?.gnll).toBe(12.3);
    expect(s.apply({ ...scores(9, 60), session_id: "other" })).toBe(false);
  });

  it("takes live_scores from a session detail while there is no summary, unless it has newer ones", () => {
    const s = new SessionStore(SID);
    s.applyHistory({ ...history([token(0), token(1)]), live_scores: scores(3, 1, { p_wrong: 0.7 }) });
    expect(s.scores?.seq).toBe(3);
    expect(s.pWrong).toBe(0.7);
    s.apply(scores(4, 17, { p_wrong: 0.6 }));
    s.applyHistory({ ...history([token(0), token(1)]), live_scores: scores(3, 1, { p_wrong: 0.7 }) }); // REST lagging the socket
    expect(s.scores?.seq).toBe(4);
    expect(s.pWrong).toBe(0.6);
  });

  it("prefers live P(wrong) over an older risk change's while running, and the summary's values once it ended", () => {
    const s = new SessionStore(SID);
    s.apply(token(0));
    s.apply({ ...risk(0, "critical"), evidence: "answer", p_wrong: 0.9, profile: "p" });
    s.apply(scores(0, 15, { p_wrong: 0.55, answer_complete: false, answer_scores: sequenceScores(2, 5) }));
    expect(s.pWrong).toBe(0.55);
    expect(s.answerScores?.gnll).toBe(5);
    expect(s.answerComplete).toBe(false);
    s.apply(scores(1, 31, { p_wrong: null }));
    expect(s.pWrong).toBe(0.9); // not judged in these scores: the risk change's still holds
    s.apply({
      type: "done",
      session_id: SID,
      status: "finished",
      reason: "eos",
      tokens: 1,
      summary: summaryEvent({
        tokens: 1,
        firings_by_rule: {},
        alerts_sent_by_rule: null,
        max_hbar_s: null,
        mean_hbar_s: null,
        mean_entropy: null,
        perplexity: null,
        nll_bits: null,
        low_confidence_share: null,
        final_risk: "warning",
        peak_risk: "critical",
        p_wrong: 0.5,
        profile: "p",
        answer_scores: sequenceScores(3, 9.5),
        scores: null,
        status: "finished",
      }),
    });
    expect(s.pWrong).toBe(0.5);
    expect(s.answerScores?.gnll).toBe(9.5);
    expect(s.answerComplete).toBe(true);
  });

  it("does not take live_scores over a summary from the same snapshot", () => {
    const s = new SessionStore(SID);
    const h = history([token(0)], "finished");
    s.applyHistory({ ...h, summary: summaryEvent({ ...summaryOf(0.2), answer_scores: sequenceScores(1, 2) }), live_scores: scores(5, 0, { p_wrong: 0.8 }) });
    expect(s.scores).toBeNull();
    expect(s.pWrong).toBe(0.2);
    expect(s.answerScores?.gnll).toBe(2);
  });
});

function summaryOf(pWrong: number) {
  return summaryEvent({
    tokens: 1,
    firings_by_rule: {},
    alerts_sent_by_rule: null,
    max_hbar_s: null,
    mean_hbar_s: null,
    mean_entropy: null,
    perplexity: null,
    nll_bits: null,
    low_confidence_share: null,
    final_risk: "safe" as const,
    peak_risk: "safe" as const,
    p_wrong: pWrong,
    profile: "p",
    status: "finished" as const,
  });
}
