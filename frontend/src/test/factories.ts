/** Builders of protocol messages for unit tests (the shapes of docs/api.md). */
import type { AlertMessage, Metrics, RiskMessage, ScoresMessage, SequenceScores, SessionHistory, TokenMessage } from "../api/types";

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
    live_scores: null,
  };
}

export function sequenceScores(tokens: number, gnll: number | null, extra: Partial<SequenceScores> = {}): SequenceScores {
  return {
    tokens,
    gnll,
    msp: gnll === null ? null : 1 - 2 ** -gnll,
    mean_nll: gnll === null ? null : gnll / tokens,
    max_nll: gnll,
    first_nll: gnll,
    mean_entropy: 1.5,
    max_entropy: 3,
    first_entropy: 1,
    mean_hbar_s: 1.2,
    max_hbar_s: 2,
    min_margin_gap: 0.9,
    first_margin_gap: 0.5,
    ...extra,
  };
}

/** A live `scores` message: the answer's G-NLL and P(wrong) once the answer is complete. */
export function scores(seq: number, tokenSeq: number, extra: Partial<ScoresMessage> = {}): ScoresMessage {
  return {
    type: "scores",
    session_id: SID,
    seq,
    ts_ns: 1e18 + seq * 1e8,
    token_seq: tokenSeq,
    tokens: tokenSeq + 1,
    answer_complete: true,
    answer_scores: sequenceScores(Math.min(tokenSeq + 1, 4), 12.3),
    scores: sequenceScores(tokenSeq + 1, 20),
    p_wrong: 0.42,
    profile: "SmolLM2-135M-Instruct/2026-12-02",
    ...extra,
  };
}
