/**
 * Types of the gateway protocol (docs/api.md, docs/streams.md), written by hand to match the
 * contracts in services/common/contracts. `npm run gen:api` writes the generated OpenAPI types to
 * schema.gen.ts beside this file for comparison once the gateway is running.
 */

export type RiskLevel = "safe" | "warning" | "critical" | "emergency";
export type Severity = "info" | "warning" | "critical";
export type SessionStatus = "queued" | "started" | "finished" | "failed" | "cancelled";
export type Distribution = "full" | "top_k" | "prob_only" | "none";

export const RISK_LEVELS: readonly RiskLevel[] = ["safe", "warning", "critical", "emergency"];
export const SEVERITIES: readonly Severity[] = ["info", "warning", "critical"];
export const TERMINAL_STATUSES: readonly SessionStatus[] = ["finished", "failed", "cancelled"];

/** Uncertainty of one token, bits. Null when the input did not allow it. */
export interface Metrics {
  prob: number | null;
  surprisal: number | null;
  entropy: number | null;
  margin: number | null;
  rank: number | null;
  hbar_s: number | null;
  fisher_trace: number | null;
  varentropy: number | null;
  coverage: number | null;
  exact: boolean;
}

export interface TopKAlternative {
  token_id: number | null;
  text: string;
  /** Natural-log probability under the raw distribution. */
  logprob: number;
}

export interface TokenMessage {
  type: "token";
  session_id: string;
  seq: number;
  text: string;
  token_id: number | null;
  distribution: Distribution;
  metrics: Metrics;
  top_k: TopKAlternative[];
  ts_ns: number;
  token_ts_ns: number;
  model?: string;
}

/** One rule's finding on the token of an alert. */
export interface AlertFinding {
  rule: string;
  severity: Severity;
  message: string;
  values: Record<string, number | null>;
}

/**
 * Rules fired on a token: one alert per token. `rule`, `severity` and `values` are the most severe
 * finding's; `message` joins them all. `rules` lists every rule that fired, most severe first (an
 * alert from an older alerter has only `rule`: the parser fills `rules` with `[rule]`); `findings`
 * holds each rule's own finding in that order (empty from an older alerter).
 */
export interface AlertMessage {
  type: "alert";
  session_id: string;
  seq: number;
  rule: string;
  severity: Severity;
  message: string;
  token_seq: number;
  token_text: string;
  values: Record<string, number | null>;
  ts_ns?: number;
  rules?: string[];
  findings?: AlertFinding[];
}

/** What set a risk level: the answer's calibrated P(wrong), the session against reference sessions, a loop, or the rules. */
export type RiskEvidence = "answer" | "session" | "loop" | "rules";
export const RISK_EVIDENCE: readonly RiskEvidence[] = ["answer", "session", "loop", "rules"];

export interface RiskMessage {
  type: "risk";
  session_id: string;
  seq: number;
  level: RiskLevel;
  previous: RiskLevel;
  /** A sentence naming the evidence. */
  reason: string;
  token_seq: number;
  ts_ns?: number;
  /** Null (or absent) from an alerter older than the field. */
  evidence?: RiskEvidence | null;
  /** Calibrated probability that the answer is wrong, once judged. */
  p_wrong?: number | null;
  /** Calibration profile of the session's model; null = uncalibrated. */
  profile?: string | null;
}

/**
 * The alerter's summary. A rule *fires* on a token when its condition holds there; an *alert* is one
 * sent on uq:alerts (a firing the cooldown let through). docs/alerts.md.
 */
export interface Summary {
  tokens: number;
  /** Tokens each rule fired on (read from the deprecated `alerts_by_rule` when a summary has only that). */
  firings_by_rule: Record<string, number>;
  /** Alerts sent, by rule; null when the alerter did not count them (older than the field). */
  alerts_sent_by_rule: Record<string, number> | null;
  max_hbar_s: number | null;
  mean_hbar_s: number | null;
  mean_entropy: number | null;
  perplexity: number | null;
  nll_bits: number | null;
  low_confidence_share: number | null;
  final_risk: RiskLevel;
  /** Highest level the session reached (= final_risk from an alerter older than the field). */
  peak_risk?: RiskLevel;
  /** Calibrated probability that the answer is wrong; null without a labelled calibration profile. */
  p_wrong?: number | null;
  /** Calibration profile the session was judged with; null = uncalibrated. */
  profile?: string | null;
  /** Final sequence scores of the answer span and of the whole session (null from an older alerter). */
  answer_scores?: SequenceScores | null;
  scores?: SequenceScores | null;
  /** The job's verification samples and their agreement; null unless it asked for them (docs/metrics.md). */
  verification?: Verification | null;
  status: SessionStatus;
}

/** Agreement of a session's answer with N answers sampled after it (0 … 1; higher = more certain). */
export interface Verification {
  samples: string[];
  answer: string;
  temperature: number;
  exact: number;
  lexical: number;
  embedding: number | null;
  consistency: number;
}

/**
 * Sequence scores of a span of tokens (docs/metrics.md, "Sequence scores"). Every score is
 * "higher = more likely wrong"; null when no token of the span had the metric. nll and entropy in bits.
 */
export interface SequenceScores {
  tokens: number;
  /** G-NLL: Σ surprisal = −log₂ p(span), bits. */
  gnll: number | null;
  /** 1 − p(span). */
  msp: number | null;
  mean_nll: number | null;
  max_nll: number | null;
  first_nll: number | null;
  mean_entropy: number | null;
  max_entropy: number | null;
  first_entropy: number | null;
  mean_hbar_s: number | null;
  max_hbar_s: number | null;
  min_margin_gap: number | null;
  first_margin_gap: number | null;
}

/**
 * The session's sequence scores so far, while it runs: sent when the answer span is complete and
 * every UQ_SCORES_EVERY tokens; a replay carries only the latest. The summary has the final ones.
 */
export interface ScoresMessage {
  type: "scores";
  session_id: string;
  seq: number;
  ts_ns: number;
  /** seq of the last token the scores include. */
  token_seq: number;
  tokens: number;
  /** Whether the answer span has ended (its scores are final). */
  answer_complete: boolean;
  answer_scores: SequenceScores | null;
  scores: SequenceScores | null;
  /** Calibrated P(answer wrong) once the answer has been judged, else null. */
  p_wrong: number | null;
  /** Calibration profile of the session's model; null = uncalibrated. */
  profile: string | null;
}

export interface SessionMessage {
  type: "session";
  session_id: string;
  status: SessionStatus;
  model?: string | null;
  prompt?: string | null;
  reason?: string | null;
}

export interface ReplayedMessage {
  type: "replayed";
  session_id: string;
  last_seq: number;
}

export interface DoneMessage {
  type: "done";
  session_id: string;
  status: SessionStatus;
  reason: string | null;
  tokens: number;
  summary: Summary | null;
}

export interface MissedMessage {
  type: "missed";
  session_id: string;
  /** Token seqs dropped (null when only alerts or lifecycle messages were). */
  from_seq: number | null;
  to_seq: number | null;
}

export interface ErrorMessage {
  type: "error";
  session_id?: string | null;
  message: string;
  code: string;
}

export interface PongMessage {
  type: "pong";
}

export type ServerMessage =
  | SessionMessage
  | TokenMessage
  | AlertMessage
  | RiskMessage
  | ScoresMessage
  | ReplayedMessage
  | DoneMessage
  | MissedMessage
  | ErrorMessage
  | PongMessage;

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** Body of POST /generate: exactly one of `prompt` (continued as raw text) and `messages` (chat template). */
export type GenerateParams = GenerateInput & SamplingParams;
export type GenerateInput = { prompt: string; messages?: never } | { messages: ChatMessage[]; prompt?: never };

export interface SamplingParams {
  max_tokens: number;
  temperature: number;
  top_p: number;
  model?: string;
  seed?: number;
}

export type ClientMessage =
  | ({ type: "generate" } & GenerateParams)
  | { type: "subscribe"; session_id: string; after_seq: number }
  | { type: "unsubscribe"; session_id: string }
  | { type: "cancel"; session_id?: string }
  | { type: "ping" };

export interface SessionRecord {
  session_id: string;
  status: SessionStatus;
  model: string | null;
  provider: string | null;
  prompt: string | null;
  reason: string | null;
  created_ns: number;
  updated_ns: number;
  tokens: number;
  alerts: number;
  risk: RiskLevel;
  summary?: Summary | null;
}

export interface SessionHistory {
  session: SessionRecord;
  tokens: TokenMessage[];
  alerts: AlertMessage[];
  risks: RiskMessage[];
  summary: Summary | null;
  /** While the session runs: its latest scores (null once the summary exists, or from an older gateway). */
  live_scores: ScoresMessage | null;
}

export interface SessionList {
  items: SessionRecord[];
  total: number;
}

export interface GenerateAccepted {
  session_id: string;
  status: SessionStatus;
  urls: { session: string; cancel: string; ws: string };
}

export interface ServerConfig {
  models: string[];
  default_model: string | null;
  thresholds: { hbar_s: number; prob: number };
  limits: { max_tokens: number; prompt_chars: number };
  auth_required: boolean;
  /** Per model: its calibration profile, if any (empty from a gateway older than the field). */
  calibration?: Record<string, ModelCalibration>;
}

export interface ModelCalibration {
  calibrated: boolean;
  profile: string | null;
  /** Whether the profile gives a calibrated P(answer wrong). */
  p_wrong: boolean;
  /** Share of the model's reference sessions at each peak risk level. */
  risk_rates: Partial<Record<RiskLevel, number>>;
}
