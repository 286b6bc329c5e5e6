/** Builders of protocol messages for unit tests (the shapes of docs/api.md). */
import type { AlertMessage, Metrics, RiskMessage, SessionHistory, TokenMessage } from "../api/types";

export const SID = "s-1";

export function metrics(hbar: number, extra: Partial<Metrics> = {}): Metrics {
  return {
    prob: 0.5,
    surprisal: 1,
    entropy: hbar * hbar,
    margin: 0.1,
    rank: 1,
    hbar_s: hbar,
    fisher_trace: 0.5,
    varentropy: 0.2,
    coverage: null,
    exact: true,
    ...extra,
  };
}

export function token(seq: number, text = `t${seq}`, hbar = seq / 10, sid = SID): TokenMessage {
  return {
    type: "token",
    session_id: sid,
    seq,
    text,
    token_id: 100 + seq,
    distribution: "full",
    metrics: metrics(hbar),
    top_k: [
      { token_id: 100 + seq, text, logprob: Math.log(0.5) },
      { token_id: 1, text: " other", logprob: Math.log(0.3) },
    ],
    ts_ns: 1e18 + seq * 1e8,
    token_ts_ns: 1e18 + seq * 1e8,
  };
}

export function alert(seq: number, tokenSeq: number, severity: AlertMessage["severity"] = "warning"): AlertMessage {
  return {
    type: "alert",
    session_id: SID,
    seq,
    rule: "HIGH_UNCERTAINTY",
    severity,
    message: "ℏₛ above 2.5",
    token_seq: tokenSeq,
    token_text: `t${tokenSeq}`,
    values: { hbar_s: 3 },
  };
}

export function risk(seq: number, level: RiskMessage["level"], previous: RiskMessage["level"] = "safe"): RiskMessage {
  return { type: "risk", session_id: SID, seq, level, previous, reason: "test", token_seq: seq };
}

export function history(tokens: TokenMessage[], status: SessionHistory["session"]["status"] = "started"): SessionHistory {
  return {
    session: {
      session_id: SID,
      status,
      model: "m",
      provider: "transformers",
      prompt: "p",
      reason: null,
      created_ns: 1,
      updated_ns: 2,
      tokens: tokens.length,
      alerts: 0,
      risk: "safe",
      summary: null,
    },
    tokens,
    alerts: [],
    risks: [],
    summary: null,
  };
}
