/**
 * The dashboard's names for the gateway's protocol; nothing here restates a field. Every type is
 * generated from the committed schemas (docs/schemas, `npm run gen:api`): the WebSocket's messages,
 * both directions, from ws-server.json and ws-client.json (ws.gen.ts), the REST answers from
 * openapi.json (schema.gen.ts). A token, alert, risk change, scores or summary reads the same
 * whichever way it came; the compiler checks that the REST ones fit the WebSocket's.
 */
import type { components } from "./schema.gen";
import type * as Ws from "./ws.gen";

type Rest = components["schemas"];

export type { ClientMessage, ServerMessage } from "./ws.gen";
export type SessionMessage = Ws.SessionMessage;
export type TokenMessage = Ws.TokenMessage;
export type AlertMessage = Ws.AlertMessage;
export type RiskMessage = Ws.RiskMessage;
export type ScoresMessage = Ws.ScoresMessage;
export type DoneMessage = Ws.DoneMessage;
export type ReplayedMessage = Ws.ReplayedMessage;
export type MissedMessage = Ws.MissedMessage;
export type ErrorMessage = Ws.ErrorMessage;
export type PongMessage = Ws.PongMessage;
export type Metrics = Ws.Metrics;
export type TopKAlternative = Ws.TopKAlternative;
export type AlertFinding = Ws.AlertFinding;
export type SequenceScores = Ws.SequenceScores;
export type Summary = Ws.SummaryEvent;
export type Verification = Ws.Verification;
export type ChatMessage = Ws.ChatMessage;

export type SessionRecord = Rest["SessionRecord"];
export type SessionHistory = Rest["SessionDetail"];
export type SessionList = Rest["SessionList"];
export type GenerateAccepted = Rest["GenerateResponse"];
export type ServerConfig = Rest["ConfigResponse"];
export type ModelCalibration = Rest["Calibration"];

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

/** Body of POST /generate and of a `generate` message: exactly one of `prompt` (continued as raw text) and `messages` (chat template). */
export type GenerateParams = GenerateInput & SamplingParams;
export type GenerateInput = { prompt: string; messages?: never } | { messages: ChatMessage[]; prompt?: never };
export type SamplingParams = Required<Pick<Ws.GenerateMessage, "max_tokens" | "temperature" | "top_p">> &
  Pick<Ws.GenerateMessage, "model" | "seed">;

/** Compiles only when A is assignable to B. */
type Assignable<A extends B, B> = A;
/** What REST answers carry is what the WebSocket's messages carry (the views take either). */
export type RestFitsWs = [
  Assignable<SessionHistory["tokens"][number], TokenMessage>,
  Assignable<SessionHistory["alerts"][number], AlertMessage>,
  Assignable<SessionHistory["risks"][number], RiskMessage>,
  Assignable<NonNullable<SessionHistory["live_scores"]>, ScoresMessage>,
  Assignable<NonNullable<SessionHistory["summary"]>, Summary>,
  Assignable<NonNullable<SessionRecord["summary"]>, Summary>,
  Assignable<GenerateParams & { type: "generate" }, Ws.ClientMessage>,
];
