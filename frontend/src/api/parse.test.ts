import { describe, expect, it } from "vitest";
import { token } from "../test/factories";
import { parseGenerateAccepted, parseHistory, ParseError, parseServerConfig, parseServerMessage } from "./parse";

describe("parseServerMessage", () => {
  it("reads a token and keeps its metrics and alternatives", () => {
    const t = token(3, " Paris", 1.25);
    expect(parseServerMessage(JSON.stringify(t))).toEqual(t);
  });

  it("accepts an audit entry as a token", () => {
    const t = token(0);
    const parsed = parseServerMessage(JSON.stringify({ ...t, type: "audit", schema_version: 1, model: "m" }));
    expect(parsed).toMatchObject({ type: "token", seq: 0, text: "t0" });
  });

  it("names the bad field", () => {
    const bad = { ...token(0), seq: "zero" };
    expect(() => parseServerMessage(JSON.stringify(bad))).toThrow(/field: seq/);
    expect(() => parseServerMessage("{")).toThrow(ParseError);
    expect(() => parseServerMessage(JSON.stringify({ type: "alert", session_id: "s", seq: 0, rule: "R", severity: "loud" }))).toThrow(
      /severity/,
    );
    expect(() => parseServerMessage(JSON.stringify({ session_id: "s" }))).toThrow(/field: type/);
  });

  it("ignores a message type it does not know (returns null, no error): new ones come without a new protocol version", () => {
    expect(parseServerMessage(JSON.stringify({ type: "nonsense" }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ type: "forecast", session_id: "s", seq: 3, anything: { x: 1 } }))).toBeNull();
  });

  it("reads missed with null bounds (only alerts were dropped)", () => {
    expect(parseServerMessage('{"type":"missed","session_id":"s","from_seq":null,"to_seq":null,"dropped":2}')).toEqual({
      type: "missed",
      session_id: "s",
      from_seq: null,
      to_seq: null,
    });
  });

  it("reads done with a summary", () => {
    const msg = parseServerMessage(
      JSON.stringify({
        type: "done",
        session_id: "s",
        status: "finished",
        reason: "eos",
        tokens: 12,
        summary: {
          tokens: 12,
          firings_by_rule: { LOW_CONFIDENCE: 7 },
          alerts_sent_by_rule: { LOW_CONFIDENCE: 2 },
          alerts_by_rule: { LOW_CONFIDENCE: 7 },
          max_hbar_s: 3.1,
          final_risk: "warning",
          status: "finished",
        },
      }),
    );
    expect(msg).toMatchObject({
      type: "done",
      tokens: 12,
      summary: { max_hbar_s: 3.1, final_risk: "warning", firings_by_rule: { LOW_CONFIDENCE: 7 }, alerts_sent_by_rule: { LOW_CONFIDENCE: 2 } },
    });
  });

  it("reads a summary from an older alerter: firings under their deprecated name, alerts sent unknown", () => {
    const msg = parseServerMessage(
      JSON.stringify({
        type: "done",
        session_id: "s",
        status: "finished",
        reason: "eos",
        tokens: 3,
        summary: { tokens: 3, alerts_by_rule: { LOW_CONFIDENCE: 3 }, final_risk: "safe", status: "finished" },
      }),
    );
    expect(msg).toMatchObject({ summary: { firings_by_rule: { LOW_CONFIDENCE: 3 }, alerts_sent_by_rule: null } });
  });
});

describe("scores messages", () => {
  const wire = {
    type: "scores",
    schema_version: 1,
    session_id: "s",
    seq: 4,
    ts_ns: 1700000000000000000,
    token_seq: 15,
    tokens: 16,
    answer_complete: true,
    answer_scores: {
      tokens: 3,
      gnll: 12.25,
      msp: 0.9998,
      mean_nll: 4.08,
      max_nll: 7.5,
      first_nll: 3.25,
      mean_entropy: 2.1,
      max_entropy: 3.4,
      first_entropy: 1.9,
      mean_hbar_s: 1.4,
      max_hbar_s: 1.9,
      min_margin_gap: 0.95,
      first_margin_gap: 0.6,
    },
    scores: { tokens: 16, gnll: 40.5, mean_nll: 2.53 },
    p_wrong: 0.62,
    profile: "SmolLM2-135M-Instruct/2026-12-02",
  };

  it("reads a scores message: the answer's and the whole generation's scores, P(wrong) and profile", () => {
    const msg = parseServerMessage(JSON.stringify(wire));
    const { type: _t, schema_version: _v, ...rest } = wire;
    expect(msg).toEqual({ ...rest, type: "scores", scores: { ...scores(16, 40.5), mean_nll: 2.53 } });
  });

  it("reads nulls: no answer yet, no scores, uncalibrated; a missing score is null, not zero", () => {
    const msg = parseServerMessage(
      JSON.stringify({ ...wire, answer_complete: false, answer_scores: null, scores: { tokens: 2, gnll: null }, p_wrong: null, profile: null }),
    );
    expect(msg).toMatchObject({ type: "scores", answer_complete: false, answer_scores: null, p_wrong: null, profile: null });
    expect(msg).toMatchObject({ scores: scores(2, null) });
    // Absent optional fields read as null too (an alerter that sent only what it had).
    expect(
      parseServerMessage(JSON.stringify({ type: "scores", session_id: "s", seq: 0, token_seq: 0, tokens: 1, answer_complete: false })),
    ).toMatchObject({ answer_scores: null, scores: null, p_wrong: null, profile: null, ts_ns: 0 });
  });

  it("rejects a scores message without its session or seq, and reads an out-of-range P(wrong) as unknown", () => {
    expect(() => parseServerMessage(JSON.stringify({ ...wire, seq: "4" }))).toThrow(/field: seq/);
    expect(() => parseServerMessage(JSON.stringify({ ...wire, session_id: undefined }))).toThrow(/field: session_id/);
    expect(parseServerMessage(JSON.stringify({ ...wire, p_wrong: 1.5 }))).toMatchObject({ p_wrong: null });
  });

  it("reads live_scores in a session detail (null once the summary exists, absent from an older gateway)", () => {
    const base = { session: { session_id: "s", status: "started", tokens: 16, risk: "safe" }, tokens: [], alerts: [], risks: [], summary: null };
    expect(parseHistory({ ...base, live_scores: wire }).live_scores).toMatchObject({ type: "scores", seq: 4, p_wrong: 0.62 });
    expect(parseHistory({ ...base, live_scores: wire }).live_scores?.answer_scores?.gnll).toBe(12.25);
    expect(parseHistory({ ...base, live_scores: null }).live_scores).toBeNull();
    expect(parseHistory(base).live_scores).toBeNull();
  });

  it("reads a summary's final answer and session scores", () => {
    const msg = parseServerMessage(
      JSON.stringify({
        type: "done",
        session_id: "s",
        status: "finished",
        reason: "eos",
        tokens: 16,
        summary: { tokens: 16, final_risk: "safe", status: "finished", answer_scores: wire.answer_scores, scores: null },
      }),
    );
    expect(msg).toMatchObject({ summary: { answer_scores: { gnll: 12.25, tokens: 3 }, scores: null } });
  });
});

/** The full SequenceScores the parser makes of `{tokens, gnll}`: every other score null. */
function scores(tokens: number, gnll: number | null) {
  return {
    tokens,
    gnll,
    msp: null,
    mean_nll: null,
    max_nll: null,
    first_nll: null,
    mean_entropy: null,
    max_entropy: null,
    first_entropy: null,
    mean_hbar_s: null,
    max_hbar_s: null,
    min_margin_gap: null,
    first_margin_gap: null,
  };
}

describe("parseHistory and parseServerConfig", () => {
  it("reads a session history", () => {
    const h = parseHistory({
      session: { session_id: "s", status: "started", created_ns: 1, updated_ns: 2, tokens: 1, alerts: 0, risk: "warning" },
      tokens: [{ ...token(0), session_id: "s", type: "audit" }],
      alerts: [],
      risks: [],
      summary: null,
    });
    expect(h.session).toMatchObject({ session_id: "s", status: "started", risk: "warning", prompt: null });
    expect(h.tokens.map((t) => t.seq)).toEqual([0]);
  });

  it("falls back to the documented defaults", () => {
    const c = parseServerConfig({ models: ["a", "b"] });
    expect(c.thresholds).toEqual({ hbar_s: 2.5, prob: 0.3 });
    expect(c.default_model).toBe("a");
    expect(parseServerConfig({ models: [], thresholds: { hbar_s: 3 } }).thresholds.hbar_s).toBe(3);
  });
});

const REASON =
  "P(wrong) = 0.88 for the answer (2 tokens; calibrated on labelled QA, profile SmolLM2-135M-Instruct/2026-12-02): in the critical band (≥ 0.80)";
const PROFILE = "SmolLM2-135M-Instruct/2026-12-02";

describe("calibrated risk, one alert per token, /config calibration (contract of a47edbd)", () => {
  it("reads a risk change with its evidence, P(wrong) and profile", () => {
    const msg = parseServerMessage(
      JSON.stringify({
        type: "risk",
        schema_version: 1,
        session_id: "s",
        seq: 2,
        level: "critical",
        previous: "warning",
        reason: REASON,
        token_seq: 7,
        evidence: "answer",
        p_wrong: 0.88,
        profile: PROFILE,
      }),
    );
    expect(msg).toMatchObject({ type: "risk", level: "critical", reason: REASON, evidence: "answer", p_wrong: 0.88, profile: PROFILE });
  });

  it("reads a risk change without the new fields (older alerter) or with them null", () => {
    const base = { type: "risk", session_id: "s", seq: 0, level: "warning", previous: "safe", reason: "r", token_seq: 1 };
    for (const extra of [{}, { evidence: null, p_wrong: null, profile: null }]) {
      expect(parseServerMessage(JSON.stringify({ ...base, ...extra }))).toMatchObject({
        level: "warning",
        evidence: null,
        p_wrong: null,
        profile: null,
      });
    }
  });

  it("does not reject a risk change whose extras it does not know", () => {
    const msg = parseServerMessage(
      JSON.stringify({ type: "risk", session_id: "s", seq: 0, level: "warning", previous: "safe", reason: "r", token_seq: 1, evidence: "oracle", p_wrong: 7 }),
    );
    expect(msg).toMatchObject({ level: "warning", evidence: null, p_wrong: null });
  });

  it("reads an alert listing every rule that fired on its token, with each finding", () => {
    const msg = parseServerMessage(
      JSON.stringify({
        type: "alert",
        session_id: "s",
        seq: 4,
        rule: "REPETITION",
        severity: "critical",
        message: "the text loops; p = 0.04 below 0.3",
        token_seq: 9,
        token_text: " the",
        values: { repeats: 3 },
        rules: ["REPETITION", "LOW_CONFIDENCE"],
        findings: [
          { rule: "REPETITION", severity: "critical", message: "the text loops", values: { repeats: 3 } },
          { rule: "LOW_CONFIDENCE", severity: "warning", message: "p = 0.04 below 0.3", values: { prob: 0.04, missing: null } },
        ],
      }),
    );
    expect(msg).toMatchObject({
      type: "alert",
      rule: "REPETITION",
      rules: ["REPETITION", "LOW_CONFIDENCE"],
      findings: [
        { rule: "REPETITION", severity: "critical", message: "the text loops", values: { repeats: 3 } },
        { rule: "LOW_CONFIDENCE", severity: "warning", message: "p = 0.04 below 0.3", values: { prob: 0.04, missing: null } },
      ],
    });
  });

  it("reads an old alert (one rule, no rules/findings) as rules = [rule]", () => {
    const old = { type: "alert", session_id: "s", seq: 0, rule: "HIGH_UNCERTAINTY", severity: "warning", message: "m", token_seq: 1, token_text: "x" };
    expect(parseServerMessage(JSON.stringify(old))).toMatchObject({ rule: "HIGH_UNCERTAINTY", rules: ["HIGH_UNCERTAINTY"], findings: [] });
    expect(parseServerMessage(JSON.stringify({ ...old, rules: [], findings: [] }))).toMatchObject({ rules: ["HIGH_UNCERTAINTY"] });
  });

  it("reads a summary's peak risk, P(wrong) and profile, and an older one's peak as its final level", () => {
    const done = (summary: object) =>
      parseServerMessage(JSON.stringify({ type: "done", session_id: "s", status: "finished", reason: "eos", tokens: 3, summary }));
    expect(
      done({ tokens: 3, final_risk: "safe", peak_risk: "warning", p_wrong: 0.125, profile: PROFILE, status: "finished" }),
    ).toMatchObject({ summary: { final_risk: "safe", peak_risk: "warning", p_wrong: 0.125, profile: PROFILE } });
    expect(done({ tokens: 3, final_risk: "critical", status: "finished" })).toMatchObject({
      summary: { final_risk: "critical", peak_risk: "critical", p_wrong: null, profile: null },
    });
  });

  it("reads the history's risks with their new fields", () => {
    const h = parseHistory({
      session: { session_id: "s", status: "finished", tokens: 1, risk: "critical" },
      tokens: [],
      alerts: [{ session_id: "s", seq: 0, rule: "R", severity: "info", message: "m", token_seq: 0, token_text: "x", rules: ["R", "Q"] }],
      risks: [
        { session_id: "s", seq: 0, level: "critical", previous: "safe", reason: REASON, token_seq: 0, evidence: "answer", p_wrong: 0.88, profile: PROFILE },
      ],
      summary: null,
    });
    expect(h.risks[0]).toMatchObject({ p_wrong: 0.88, profile: PROFILE, evidence: "answer" });
    expect(h.alerts[0]!.rules).toEqual(["R", "Q"]);
  });

  it("reads /config calibration per model, and none from an older gateway", () => {
    const c = parseServerConfig({
      models: ["a", "b"],
      calibration: {
        a: { calibrated: true, profile: PROFILE, p_wrong: true, risk_rates: { safe: 0.9, warning: 0.08, critical: 0.02, emergency: 0 } },
        b: { calibrated: false, profile: null, p_wrong: false, risk_rates: {} },
      },
    });
    expect(c.calibration).toEqual({
      a: { calibrated: true, profile: PROFILE, p_wrong: true, risk_rates: { safe: 0.9, warning: 0.08, critical: 0.02, emergency: 0 } },
      b: { calibrated: false, profile: null, p_wrong: false, risk_rates: {} },
    });
    expect(parseServerConfig({ models: ["a"] }).calibration).toEqual({});
  });
});

describe("parseGenerateAccepted (POST /generate is checked, not cast)", () => {
  const urls = { session: "/sessions/s1", cancel: "/sessions/s1/cancel", ws: "/ws" };
  it("reads the queued session and its URLs", () => {
    expect(parseGenerateAccepted({ session_id: "s1", status: "queued", urls })).toEqual({ session_id: "s1", status: "queued", urls });
  });
  it("rejects an answer without a session id, or with an unknown status", () => {
    expect(() => parseGenerateAccepted({ status: "queued", urls })).toThrow(ParseError);
    expect(() => parseGenerateAccepted({ session_id: "s1", status: "running", urls })).toThrow(/status/);
  });
});
