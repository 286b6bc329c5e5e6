import { describe, expect, it } from "vitest";
import { peakRisk } from "../lib/metrics";
import { alert, SID, summaryEvent, token } from "../test/factories";
import { checked, ParseError, parseServerMessage } from "./validate";
import { validateConfig, validateGenerateResponse, validateSessionDetail } from "./validators.gen";

/** A frame as the gateway would send it, through the generated validators. */
const frame = (msg: object) => parseServerMessage(JSON.stringify(msg));

describe("parseServerMessage", () => {
  it("reads a token and keeps its metrics and alternatives", () => {
    const t = token(3, " Paris", 1.25);
    expect(frame(t)).toEqual(t);
  });

  it("fills in the schema's defaults: an absent nullable field reads as null, never undefined", () => {
    const { schema_version: _v, token_id: _id, ...t } = token(0);
    const { probe: _p, coverage: _c, ...metrics } = t.metrics;
    expect(frame({ ...t, metrics })).toMatchObject({ schema_version: 1, token_id: null, metrics: { probe: null, coverage: null } });
  });

  it("names the bad field", () => {
    expect(() => frame({ ...token(0), seq: "zero" })).toThrow(/field: seq\)/);
    expect(() => frame({ ...token(0), metrics: { ...token(0).metrics, prob: "high" } })).toThrow(/field: metrics\.prob\)/);
    expect(() => parseServerMessage("{")).toThrow(ParseError);
    expect(() => parseServerMessage("[1]")).toThrow(/field: \(frame\)/);
    expect(() => frame({ ...alert(0, 1), severity: "loud" })).toThrow(/severity/);
    expect(() => frame({ ...alert(0, 1), token_seq: undefined })).toThrow(/field: token_seq\)/);
    expect(() => frame({ session_id: "s" })).toThrow(/field: type/);
    expect(() => frame({ type: "" })).toThrow(/field: type/);
  });

  it("ignores a message type it does not know (returns null, no error): new ones come without a new protocol version", () => {
    expect(frame({ type: "nonsense" })).toBeNull();
    expect(frame({ type: "forecast", session_id: "s", seq: 3, anything: { x: 1 } })).toBeNull();
    // A stream entry's own type is not a message: the gateway sends audit entries as `token`.
    expect(frame({ ...token(0), type: "audit" })).toBeNull();
    // Nothing on Object.prototype is a validator.
    expect(frame({ type: "constructor" })).toBeNull();
    expect(frame({ type: "__proto__" })).toBeNull();
  });

  it("accepts fields it does not know (they are kept, not checked)", () => {
    expect(frame({ ...token(0), novelty: { x: 1 } })).toMatchObject({ type: "token", seq: 0, novelty: { x: 1 } });
  });

  it("reads missed with null bounds (only alerts were dropped)", () => {
    expect(parseServerMessage('{"type":"missed","session_id":"s","from_seq":null,"to_seq":null,"dropped":2}')).toEqual({
      type: "missed",
      session_id: "s",
      from_seq: null,
      to_seq: null,
      dropped: 2,
    });
  });

  it("reads an error message: the REST error body under `error`", () => {
    const msg = frame({ type: "error", error: { message: "Unknown session s-9.", type: "not_found", param: "session_id" }, session_id: "s-9" });
    expect(msg).toEqual({
      type: "error",
      error: { message: "Unknown session s-9.", type: "not_found", param: "session_id" },
      session_id: "s-9",
    });
    expect(frame({ type: "error", error: { message: "not JSON", type: "invalid_json", param: null } })).toMatchObject({ session_id: null });
    // The old shape (message and code at the top level) is not an error message.
    expect(() => frame({ type: "error", message: "bad", code: "bad_request" })).toThrow(/field: error\)/);
  });

  it("reads session, replayed and pong", () => {
    expect(frame({ schema_version: 1, type: "session", session_id: SID, seq: 1, status: "started", model: "m", prompt: "p" })).toMatchObject({
      type: "session",
      status: "started",
      model: "m",
      prompt: "p",
      reason: null,
      provider: null,
      verification: null,
    });
    expect(() => frame({ type: "session", session_id: SID, seq: 1, status: "running" })).toThrow(/field: status\)/);
    expect(frame({ type: "replayed", session_id: SID, last_seq: -1 })).toEqual({ type: "replayed", session_id: SID, last_seq: -1 });
    expect(frame({ type: "pong" })).toEqual({ type: "pong" });
  });

  it("reads done with a summary", () => {
    const msg = frame({
      type: "done",
      session_id: "s",
      status: "finished",
      reason: "eos",
      tokens: 12,
      summary: {
        ...summaryEvent({ session_id: "s" }),
        tokens: 12,
        firings_by_rule: { LOW_CONFIDENCE: 7 },
        alerts_sent_by_rule: { LOW_CONFIDENCE: 2 },
        alerts_by_rule: { LOW_CONFIDENCE: 7 },
        max_hbar_s: 3.1,
        final_risk: "warning",
        status: "finished",
      },
    });
    expect(msg).toMatchObject({
      type: "done",
      tokens: 12,
      summary: { max_hbar_s: 3.1, final_risk: "warning", firings_by_rule: { LOW_CONFIDENCE: 7 }, alerts_sent_by_rule: { LOW_CONFIDENCE: 2 } },
    });
  });

  it("reads a summary from an older alerter: firings under their deprecated name, alerts sent unknown", () => {
    const msg = frame({
      type: "done",
      session_id: "s",
      status: "finished",
      reason: "eos",
      tokens: 3,
      summary: { session_id: "s", seq: 0, tokens: 3, alerts_by_rule: { LOW_CONFIDENCE: 3 }, final_risk: "safe", status: "finished" },
    });
    // SessionSummary shows alerts_by_rule as the firings (SessionSummary.test.tsx).
    expect(msg).toMatchObject({ summary: { alerts_by_rule: { LOW_CONFIDENCE: 3 }, alerts_sent_by_rule: null } });
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
    expect(frame(wire)).toEqual({
      ...wire,
      answer_scores: { ...wire.answer_scores, probe: null },
      scores: { ...scores(16, 40.5), mean_nll: 2.53 },
    });
  });

  it("reads nulls: no answer yet, no scores, uncalibrated; a missing score is null, not zero", () => {
    const msg = frame({ ...wire, answer_complete: false, answer_scores: null, scores: { tokens: 2, gnll: null }, p_wrong: null, profile: null });
    expect(msg).toMatchObject({ type: "scores", answer_complete: false, answer_scores: null, p_wrong: null, profile: null });
    expect(msg).toMatchObject({ scores: scores(2, null) });
    // Absent optional fields read as null too (an alerter that sent only what it had).
    const bare = frame({ type: "scores", session_id: "s", seq: 0, token_seq: 0, tokens: 1, answer_complete: false });
    expect(bare).toMatchObject({ answer_scores: null, scores: null, p_wrong: null, profile: null });
    expect(bare).not.toHaveProperty("ts_ns");
  });

  it("rejects a scores message without its session or seq, or with a P(wrong) that is not a probability", () => {
    expect(() => frame({ ...wire, seq: "4" })).toThrow(/field: seq\)/);
    expect(() => frame({ ...wire, session_id: undefined })).toThrow(/field: session_id\)/);
    expect(() => frame({ ...wire, p_wrong: 1.5 })).toThrow(/field: p_wrong\)/);
  });

  it("reads live_scores in a session detail (null once the summary exists, or absent)", () => {
    const base = {
      session: { session_id: "s", status: "started", created_ns: 1, updated_ns: 2, tokens: 16, risk: "safe" },
      tokens: [],
      alerts: [],
      risks: [],
      summary: null,
    };
    const detail = (v: object) => checked(validateSessionDetail, structuredClone(v), "GET /sessions/{id}");
    expect(detail({ ...base, live_scores: wire }).live_scores).toMatchObject({ type: "scores", seq: 4, p_wrong: 0.62 });
    expect(detail({ ...base, live_scores: wire }).live_scores?.answer_scores?.gnll).toBe(12.25);
    expect(detail({ ...base, live_scores: null }).live_scores).toBeNull();
    expect(detail(base).live_scores).toBeNull();
  });

  it("reads a summary's final answer and session scores", () => {
    const msg = frame({
      type: "done",
      session_id: "s",
      status: "finished",
      reason: "eos",
      tokens: 16,
      summary: { session_id: "s", seq: 0, tokens: 16, final_risk: "safe", status: "finished", answer_scores: wire.answer_scores, scores: null },
    });
    expect(msg).toMatchObject({ summary: { answer_scores: { gnll: 12.25, tokens: 3 }, scores: null } });
  });
});

/** The full SequenceScores of `{tokens, gnll}` once validated: every other score null. */
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
    probe: null,
  };
}

describe("REST answers: GET /sessions/{id}, GET /config", () => {
  it("reads a session history", () => {
    const { type: _t, ...audit } = token(0, "t0", 0, "s");
    const h = checked(
      validateSessionDetail,
      {
        session: { session_id: "s", status: "started", created_ns: 1, updated_ns: 2, tokens: 1, alerts: 0, risk: "warning" },
        tokens: [audit],
        alerts: [],
        risks: [],
        summary: null,
      },
      "GET /sessions/{id}",
    );
    expect(h.session).toMatchObject({ session_id: "s", status: "started", risk: "warning", prompt: null });
    expect(h.tokens.map((t) => [t.type, t.seq])).toEqual([["token", 0]]);
  });

  it("rejects a config without what the dashboard needs (the app then keeps DEFAULT_SERVER_CONFIG)", () => {
    expect(() => checked(validateConfig, { models: ["a", "b"] }, "GET /config")).toThrow(ParseError);
    expect(() => checked(validateConfig, { models: ["a", "b"] }, "GET /config")).toThrow(/GET \/config: must have required property/);
  });
});

const REASON =
  "P(wrong) = 0.88 for the answer (2 tokens; calibrated on labelled QA, profile SmolLM2-135M-Instruct/2026-12-02): in the critical band (≥ 0.80)";
const PROFILE = "SmolLM2-135M-Instruct/2026-12-02";

describe("calibrated risk, one alert per token, /config calibration (contract of a47edbd)", () => {
  it("reads a risk change with its evidence, P(wrong) and profile", () => {
    const msg = frame({
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
    });
    expect(msg).toMatchObject({ type: "risk", level: "critical", reason: REASON, evidence: "answer", p_wrong: 0.88, profile: PROFILE });
  });

  it("reads a risk change without the new fields (older alerter) or with them null", () => {
    const base = { type: "risk", session_id: "s", seq: 0, level: "warning", previous: "safe", reason: "r", token_seq: 1 };
    for (const extra of [{}, { evidence: null, p_wrong: null, profile: null }]) {
      expect(frame({ ...base, ...extra })).toMatchObject({ level: "warning", evidence: null, p_wrong: null, profile: null });
    }
  });

  it("rejects a risk change whose evidence is not one the schema names, or whose P(wrong) is not a probability", () => {
    const base = { type: "risk", session_id: "s", seq: 0, level: "warning", previous: "safe", reason: "r", token_seq: 1 };
    expect(() => frame({ ...base, evidence: "oracle" })).toThrow(/field: evidence\)/);
    expect(() => frame({ ...base, p_wrong: 7 })).toThrow(/field: p_wrong\)/);
  });

  it("reads an alert listing every rule that fired on its token, with each finding", () => {
    const msg = frame({
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
    });
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

  it("reads an old alert (one rule, no rules/findings); the alerts panel shows it as its one rule (AlertsPanel.test.tsx)", () => {
    const old = { type: "alert", session_id: "s", seq: 0, rule: "HIGH_UNCERTAINTY", severity: "warning", message: "m", token_seq: 1, token_text: "x" };
    expect(frame(old)).toMatchObject({ rule: "HIGH_UNCERTAINTY", severity: "warning" });
    expect(frame({ ...old, rules: [], findings: [] })).toMatchObject({ rules: [], findings: [] });
  });

  it("reads a summary's peak risk, P(wrong) and profile, and an older one's peak as its final level", () => {
    const done = (summary: object) => {
      const msg = frame({ type: "done", session_id: "s", status: "finished", reason: "eos", tokens: 3, summary: { session_id: "s", seq: 0, ...summary } });
      if (msg?.type !== "done" || !msg.summary) throw new Error("expected a done message with a summary");
      return msg.summary;
    };
    const judged = done({ tokens: 3, final_risk: "safe", peak_risk: "warning", p_wrong: 0.125, profile: PROFILE, status: "finished" });
    expect(judged).toMatchObject({ final_risk: "safe", peak_risk: "warning", p_wrong: 0.125, profile: PROFILE });
    expect(peakRisk(judged)).toBe("warning");
    const older = done({ tokens: 3, final_risk: "critical", status: "finished" });
    expect(older).toMatchObject({ final_risk: "critical", p_wrong: null, profile: null });
    expect(peakRisk(older)).toBe("critical");
  });

  it("reads the history's risks with their new fields", () => {
    const h = checked(
      validateSessionDetail,
      {
        session: { session_id: "s", status: "finished", created_ns: 1, updated_ns: 2, tokens: 1, risk: "critical" },
        tokens: [],
        alerts: [{ session_id: "s", seq: 0, rule: "R", severity: "info", message: "m", token_seq: 0, token_text: "x", rules: ["R", "Q"] }],
        risks: [
          { session_id: "s", seq: 0, level: "critical", previous: "safe", reason: REASON, token_seq: 0, evidence: "answer", p_wrong: 0.88, profile: PROFILE },
        ],
        summary: null,
      },
      "GET /sessions/{id}",
    );
    expect(h.risks[0]).toMatchObject({ p_wrong: 0.88, profile: PROFILE, evidence: "answer" });
    expect(h.alerts[0]!.rules).toEqual(["R", "Q"]);
  });

  it("reads /config calibration per model", () => {
    const calibration = {
      a: {
        calibrated: true,
        profile: PROFILE,
        p_wrong: true,
        risk_rates: { safe: 0.9, warning: 0.08, critical: 0.02, emergency: 0 },
        thresholds: { hbar_s: 1.5, prob: 0.2, source: "alerter" },
      },
      b: { calibrated: false, profile: null, p_wrong: false, risk_rates: {}, thresholds: { hbar_s: 2.5, prob: 0.3, source: "defaults" } },
    };
    const config = {
      models: ["a", "b"],
      default_model: "a",
      thresholds: { hbar_s: 2.5, prob: 0.3, source: "alerter" },
      limits: { max_tokens: 4096, prompt_chars: 32000, push_batch: 1000 },
      auth_required: false,
      calibration,
    };
    expect(checked(validateConfig, structuredClone(config), "GET /config").calibration).toEqual(calibration);
  });
});

describe("POST /generate's answer is checked, not cast", () => {
  const urls = { session: "/sessions/s1", status: "/sessions/s1/status", cancel: "/sessions/s1/cancel", ws: "/ws" };
  const accepted = (v: object) => checked(validateGenerateResponse, v, "POST /generate");
  it("reads the queued session and its URLs", () => {
    expect(accepted({ session_id: "s1", status: "queued", urls })).toEqual({ session_id: "s1", status: "queued", urls });
  });
  it("rejects an answer without a session id, or with an unknown status", () => {
    expect(() => accepted({ status: "queued", urls })).toThrow(ParseError);
    expect(() => accepted({ session_id: "s1", status: "running", urls })).toThrow(/field: status\)/);
  });
});
