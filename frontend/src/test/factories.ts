/** Builders of protocol messages for unit tests (the shapes of docs/api.md). */
import type {
  AlertMessage,
  DoneMessage,
  Metrics,
  MissedMessage,
  RiskMessage,
  ScoresMessage,
  SequenceScores,
  SessionHistory,
  SessionMessage,
  SessionStatus,
  Summary,
  TokenMessage,
} from "../api/types";

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
    probe: null,
    exact: true,
    ...extra,
  };
}

export function token(seq: number, text = `t${seq}`, hbar = seq / 10, sid = SID): TokenMessage {
  return {
    schema_version: 1,
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
    model: "m",
    ts_ns: 1e18 + seq * 1e8,
    token_ts_ns: 1e18 + seq * 1e8,
  };
}

export function alert(seq: number, tokenSeq: number, severity: AlertMessage["severity"] = "warning"): AlertMessage {
  return {
    schema_version: 1,
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
  return {
    schema_version: 1,
    type: "risk",
    session_id: SID,
    seq,
    level,
    previous,
    reason: "test",
    token_seq: seq,
    evidence: null,
    p_wrong: null,
    profile: null,
  };
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
      peak_risk: "safe",
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
    probe: null,
    ...extra,
  };
}

/** A live `scores` message: the answer's G-NLL and P(wrong) once the answer is complete. */
export function scores(seq: number, tokenSeq: number, extra: Partial<ScoresMessage> = {}): ScoresMessage {
  return {
    schema_version: 1,
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

const STATUS_SEQ: Record<SessionStatus, number> = { queued: 0, started: 1, finished: 2, failed: 2, cancelled: 2 };

/** A `session` lifecycle message. */
export function session(status: SessionStatus, extra: Partial<SessionMessage> = {}): SessionMessage {
  return {
    schema_version: 1,
    type: "session",
    session_id: SID,
    seq: STATUS_SEQ[status],
    status,
    reason: null,
    model: null,
    provider: null,
    prompt: null,
    tokens: null,
    prompt_tokens: null,
    verification: null,
    ...extra,
  };
}

/** The alerter's summary of a finished session: no firings, every metric unknown. */
export function summaryEvent(extra: Partial<Summary> = {}): Summary {
  return {
    schema_version: 1,
    type: "summary",
    session_id: SID,
    seq: 0,
    tokens: 0,
    firings_by_rule: {},
    alerts_sent_by_rule: null,
    max_hbar_s: null,
    mean_hbar_s: null,
    mean_entropy: null,
    perplexity: null,
    nll_bits: null,
    low_confidence_share: null,
    final_risk: "safe",
    peak_risk: "safe",
    status: "finished",
    p_wrong: null,
    profile: null,
    answer_scores: null,
    scores: null,
    verification: null,
    ...extra,
  };
}

/** The `done` message of a session. */
export function done(tokens: number, extra: Partial<DoneMessage> = {}): DoneMessage {
  return { type: "done", session_id: SID, status: "finished", reason: "eos", tokens, summary: null, ...extra };
}

/** A `missed` message: tokens from..to (null: only alerts or risk changes) were dropped. */
export function missed(from_seq: number | null, to_seq: number | null, dropped = 1): MissedMessage {
  return { type: "missed", session_id: SID, from_seq, to_seq, dropped };
}
