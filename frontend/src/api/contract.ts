/**
 * Compile-time checks that the hand-written protocol types (types.ts) agree with the gateway's
 * OpenAPI schema (schema.gen.ts, written by `npm run gen:api` from a running gateway's
 * /openapi.json). After regenerating, `npm run typecheck` fails here if the REST contract moved.
 * The WebSocket messages are in the OpenAPI schema where they are also REST (tokens, alerts, risk
 * changes, live scores, the summary); parse.ts checks every message at run time.
 */
import type { components } from "./schema.gen";
import type {
  AlertFinding,
  AlertMessage,
  ChatMessage,
  GenerateAccepted,
  GenerateParams,
  Metrics,
  ModelCalibration,
  RiskMessage,
  ScoresMessage,
  SequenceScores,
  ServerConfig,
  SessionHistory,
  SessionList,
  SessionRecord,
  Summary,
  TokenMessage,
  TopKAlternative,
} from "./types";

type Gen = components["schemas"];
/** Compiles only when A is assignable to B. */
type Assignable<A extends B, B> = A;

/** What the dashboard sends is a valid POST /generate body. */
export type GenerateBodyOk = Assignable<GenerateParams, Partial<Gen["GenerateRequest"]>>;
export type ChatMessageOk = Assignable<ChatMessage, Gen["ChatMessage"]>;
/** What POST /generate answers carries what the dashboard reads. */
export type GenerateAnswerOk = Assignable<Gen["GenerateResponse"], Omit<GenerateAccepted, "urls">>;
/** GET /config. */
export type ConfigOk = Assignable<
  Pick<Gen["ConfigResponse"], "models" | "auth_required">,
  Pick<ServerConfig, "models" | "auth_required">
> &
  Assignable<Gen["ConfigResponse"]["thresholds"], ServerConfig["thresholds"]> &
  Assignable<Pick<Gen["ConfigResponse"]["limits"], "max_tokens" | "prompt_chars">, ServerConfig["limits"]>;
/** GET /config's per-model calibration (risk_rates keyed by risk level). */
export type CalibrationOk = Assignable<
  Pick<Gen["Calibration"], "calibrated" | "profile" | "p_wrong">,
  Pick<ModelCalibration, "calibrated" | "profile" | "p_wrong">
>;
/** GET /sessions items and GET /sessions/{id}.session. */
type RecordFields = "session_id" | "status" | "created_ns" | "updated_ns" | "tokens" | "alerts" | "risk";
export type RecordOk = Assignable<Pick<Gen["SessionRecord"], RecordFields>, Pick<SessionRecord, RecordFields>>;
export type ListOk = Assignable<Pick<Gen["SessionList"], "total">, Pick<SessionList, "total">>;
/** The alerter's summary. */
type SummaryFields = "tokens" | "final_risk" | "peak_risk" | "p_wrong" | "profile" | "status";
export type SummaryOk = Assignable<Pick<Gen["SummaryEvent"], SummaryFields>, Pick<Summary, SummaryFields>> &
  Assignable<Required<Pick<Gen["SummaryEvent"], "firings_by_rule" | "alerts_sent_by_rule">>, Pick<Summary, "firings_by_rule" | "alerts_sent_by_rule">>;

/** GET /sessions/{id}: tokens, alerts and risk changes (also the WebSocket's token/alert/risk messages). */
type TokenFields = "type" | "session_id" | "seq" | "text" | "token_id" | "distribution" | "token_ts_ns";
export type TokenOk = Assignable<Required<Pick<Gen["TokenMessage"], TokenFields>>, Pick<TokenMessage, TokenFields>>;
export type MetricsOk = Assignable<Required<Gen["Metrics"]>, Metrics>;
export type TopKOk = Assignable<Required<Gen["TopKAlternative"]>, TopKAlternative>;
type AlertFields =
  | "type"
  | "session_id"
  | "seq"
  | "rule"
  | "severity"
  | "message"
  | "token_seq"
  | "token_text"
  | "rules";
export type AlertOk = Assignable<Required<Pick<Gen["AlertEvent"], AlertFields>>, Pick<AlertMessage, AlertFields>>;
export type FindingOk = Assignable<Required<Gen["AlertFinding"]>, AlertFinding>;
type RiskFields = "type" | "session_id" | "seq" | "level" | "previous" | "reason" | "token_seq" | "evidence" | "p_wrong" | "profile";
export type RiskOk = Assignable<Required<Pick<Gen["RiskEvent"], RiskFields>>, Pick<RiskMessage, RiskFields>>;
/** Sequence scores (live `scores` messages, GET /sessions/{id}.live_scores, the summary): the same fields both ways. */
export type SequenceScoresOk = Assignable<Required<Gen["SequenceScores"]>, SequenceScores> &
  Assignable<keyof SequenceScores, keyof Gen["SequenceScores"]>;
type ScoresFields = "type" | "session_id" | "seq" | "ts_ns" | "token_seq" | "tokens" | "answer_complete" | "p_wrong" | "profile";
export type ScoresOk = Assignable<Required<Pick<Gen["ScoresEvent"], ScoresFields>>, Pick<ScoresMessage, ScoresFields>> &
  Assignable<keyof ScoresMessage, keyof Gen["ScoresEvent"]> &
  Assignable<"answer_scores" | "scores", keyof Gen["SummaryEvent"]>;
export type DetailOk = Assignable<keyof Gen["SessionDetail"], keyof SessionHistory>;
