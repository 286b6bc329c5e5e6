import { describe, expect, it } from "vitest";
import { token } from "../test/factories";
import { parseHistory, ParseError, parseServerConfig, parseServerMessage } from "./parse";

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
    expect(() => parseServerMessage(JSON.stringify({ type: "nonsense" }))).toThrow(/unknown message type/);
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
