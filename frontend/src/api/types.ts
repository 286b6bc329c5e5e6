/**
 * The dashboard's names for the gateway's protocol. Every REST type, and every WebSocket message
 * that is also REST, is the generated one (schema.gen.ts, from docs/schemas by `npm run gen:api`);
 * nothing here restates a field. Still written here until the gateway's WebSocket schema
 * (docs/schemas/ws-server.json, ws-client.json) is committed: the lifecycle messages below and the
 * client messages; scripts/gen-api.mjs then generates them too (WS_SERVER).
 */
import type { components } from "./schema.gen";

type Gen = components["schemas"];

export type Metrics = Gen["Metrics"];
export type TopKAlternative = Gen["TopKAlternative"];
export type TokenMessage = Gen["TokenMessage"];
export type AlertFinding = Gen["AlertFinding"];
export type AlertMessage = Gen["AlertEvent"];
export type RiskMessage = Gen["RiskEvent"];
export type ScoresMessage = Gen["ScoresEvent"];
export type SequenceScores = Gen["SequenceScores"];
export type Summary = Gen["SummaryEvent"];
export type Verification = Gen["Verification"];
export type SessionRecord = Gen["SessionRecord"];
export type SessionHistory = Gen["SessionDetail"];
export type SessionList = Gen["SessionList"];
export type GenerateAccepted = Gen["GenerateResponse"];
export type ServerConfig = Gen["ConfigResponse"];
export type ModelCalibration = Gen["Calibration"];
export type ChatMessage = Gen["ChatMessage"];
export type ApiErrorBody = Gen["ErrorResponse"];

export type RiskLevel = SessionRecord["risk"];
export type Severity = AlertMessage["severity"];
export type SessionStatus = SessionRecord["status"];
export type Distribution = TokenMessage["distribution"];
/** What set a risk level: the answer's calibrated P(wrong), the session against reference sessions, a loop, or the rules. */
export type RiskEvidence = NonNullable<RiskMessage["evidence"]>;

/** Every member of a union, once each, in the order given (compile error when one is missing). */
const all =
  <T extends string>() =>
  <const A extends readonly T[]>(...values: A & ([T] extends [A[number]] ? unknown : never)): readonly T[] =>
    values;

export const RISK_LEVELS = all<RiskLevel>()("safe", "warning", "critical", "emergency");
export const SEVERITIES = all<Severity>()("info", "warning", "critical");
export const SESSION_STATUSES = all<SessionStatus>()("queued", "started", "finished", "failed", "cancelled");
export const TERMINAL_STATUSES: readonly SessionStatus[] = ["finished", "failed", "cancelled"];
export const RISK_EVIDENCE = all<RiskEvidence>()("answer", "session", "loop", "rules");

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

/** Body of POST /generate: exactly one of `prompt` (continued as raw text) and `messages` (chat template). */
export type GenerateParams = GenerateInput & SamplingParams;
export type GenerateInput = { prompt: string; messages?: never } | { messages: ChatMessage[]; prompt?: never };

export type SamplingParams = Pick<Gen["GenerateRequest"], "max_tokens" | "temperature" | "top_p"> &
  Partial<Pick<Gen["GenerateRequest"], "model" | "seed">>;

export type ClientMessage =
  | ({ type: "generate" } & GenerateParams)
  | { type: "subscribe"; session_id: string; after_seq: number }
  | { type: "unsubscribe"; session_id: string }
  | { type: "cancel"; session_id?: string }
  | { type: "ping" };

