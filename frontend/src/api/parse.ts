/**
 * Runtime checks of what the gateway sends. The dashboard trusts nothing it has not checked:
 * a message that does not parse is dropped (and counted) instead of corrupting the view.
 */
import type {
  AlertFinding,
  GenerateAccepted,
  AlertMessage,
  Metrics,
  ModelCalibration,
  RiskEvidence,
  RiskLevel,
  RiskMessage,
  ScoresMessage,
  SequenceScores,
  ServerConfig,
  ServerMessage,
  SessionHistory,
  SessionList,
  SessionRecord,
  SessionStatus,
  Severity,
  Summary,
  TokenMessage,
  TopKAlternative,
  Verification,
} from "./types";
import { RISK_EVIDENCE, RISK_LEVELS, SEVERITIES } from "./types";

type Obj = Record<string, unknown>;

export class ParseError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(`${message} (field: ${field})`);
    this.name = "ParseError";
  }
}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function obj(v: unknown, field: string): Obj {
  if (!isObj(v)) throw new ParseError("expected an object", field);
  return v;
}
function str(o: Obj, k: string): string {
  const v = o[k];
  if (typeof v !== "string") throw new ParseError("expected a string", k);
  return v;
}
function optStr(o: Obj, k: string): string | null {
  const v = o[k];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw new ParseError("expected a string or null", k);
  return v;
}
function num(o: Obj, k: string): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ParseError("expected a number", k);
  return v;
}
function seqOf(o: Obj, k: string): number {
  const v = num(o, k);
  if (!Number.isInteger(v) || v < -1) throw new ParseError("expected a sequence number", k);
  return v;
}
function optNum(o: Obj, k: string): number | null {
  const v = o[k];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ParseError("expected a number or null", k);
  return v;
}
function oneOf<T extends string>(o: Obj, k: string, allowed: readonly T[]): T {
  const v = o[k];
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    throw new ParseError(`expected one of ${allowed.join(", ")}`, k);
  }
  return v as T;
}

const STATUSES: readonly SessionStatus[] = ["queued", "started", "finished", "failed", "cancelled"];

export function parseMetrics(v: unknown): Metrics {
  const o = obj(v, "metrics");
  return {
    prob: optNum(o, "prob"),
    surprisal: optNum(o, "surprisal"),
    entropy: optNum(o, "entropy"),
    margin: optNum(o, "margin"),
    rank: optNum(o, "rank"),
    hbar_s: optNum(o, "hbar_s"),
    fisher_trace: optNum(o, "fisher_trace"),
    varentropy: optNum(o, "varentropy"),
    coverage: optNum(o, "coverage"),
    exact: o.exact === true,
  };
}

function parseTopK(v: unknown): TopKAlternative[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ParseError("expected a list", "top_k");
  return v.map((item) => {
    const o = obj(item, "top_k[]");
    return { token_id: optNum(o, "token_id"), text: str(o, "text"), logprob: num(o, "logprob") };
  });
}

/** A token as the WebSocket sends it, or an audit entry as GET /sessions/{id} returns it. */
export function parseToken(v: unknown): TokenMessage {
  const o = obj(v, "token");
  const distribution = o.distribution;
  return {
    type: "token",
    session_id: str(o, "session_id"),
    seq: seqOf(o, "seq"),
    text: str(o, "text"),
    token_id: optNum(o, "token_id"),
    distribution:
      distribution === "full" || distribution === "top_k" || distribution === "prob_only" ? distribution : "none",
    metrics: parseMetrics(o.metrics),
    top_k: parseTopK(o.top_k),
    ts_ns: optNum(o, "ts_ns") ?? 0,
    token_ts_ns: optNum(o, "token_ts_ns") ?? optNum(o, "ts_ns") ?? 0,
  };
}

function valuesOf(v: unknown): Record<string, number | null> {
  const values: Record<string, number | null> = {};
  if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) values[k] = typeof x === "number" ? x : null;
  }
  return values;
}

/** A finding of an alert; null (skipped) when it is not one, so one odd finding does not drop the alert. */
function parseFinding(v: unknown): AlertFinding | null {
  if (!isObj(v) || typeof v.rule !== "string" || typeof v.message !== "string") return null;
  const severity = SEVERITIES.includes(v.severity as Severity) ? (v.severity as Severity) : "info";
  return { rule: v.rule, severity, message: v.message, values: valuesOf(v.values) };
}

/**
 * One alert per token (docs/streams.md). `rules` is every rule that fired on it, most severe first;
 * an alert from an alerter older than the field has only `rule`, so `rules` falls back to `[rule]`.
 */
export function parseAlert(v: unknown): AlertMessage {
  const o = obj(v, "alert");
  const rule = str(o, "rule");
  const listed = Array.isArray(o.rules) ? o.rules.filter((r): r is string => typeof r === "string" && r !== "") : [];
  const findings = Array.isArray(o.findings)
    ? o.findings.map(parseFinding).filter((f): f is AlertFinding => f !== null)
    : [];
  const rules = listed.length ? listed : findings.length ? findings.map((f) => f.rule) : [rule];
  if (!rules.includes(rule)) rules.unshift(rule);
  return {
    type: "alert",
    session_id: str(o, "session_id"),
    seq: seqOf(o, "seq"),
    rule,
    severity: oneOf<Severity>(o, "severity", SEVERITIES),
    message: str(o, "message"),
    token_seq: seqOf(o, "token_seq"),
    token_text: optStr(o, "token_text") ?? "",
    values: valuesOf(o.values),
    ts_ns: optNum(o, "ts_ns") ?? 0,
    rules,
    findings,
  };
}

/** A probability in [0, 1], or null when absent, null or not one. */
function optProb(o: Obj, k: string): number | null {
  const v = o[k];
  return typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 1 ? v : null;
}

/** A string, or null when absent or not a (non-empty) string: optional extras never reject a message. */
function looseStr(o: Obj, k: string): string | null {
  const v = o[k];
  return typeof v === "string" && v !== "" ? v : null;
}

export function parseRisk(v: unknown): RiskMessage {
  const o = obj(v, "risk");
  return {
    type: "risk",
    session_id: str(o, "session_id"),
    seq: seqOf(o, "seq"),
    level: oneOf<RiskLevel>(o, "level", RISK_LEVELS),
    previous: oneOf<RiskLevel>(o, "previous", RISK_LEVELS),
    reason: optStr(o, "reason") ?? "",
    token_seq: seqOf(o, "token_seq"),
    ts_ns: optNum(o, "ts_ns") ?? 0,
    evidence: RISK_EVIDENCE.includes(o.evidence as RiskEvidence) ? (o.evidence as RiskEvidence) : null,
    p_wrong: optProb(o, "p_wrong"),
    profile: looseStr(o, "profile"),
  };
}

/** A count (a non-negative integer), or the fallback when absent or not one. */
function looseCount(o: Obj, k: string, fallback: number): number {
  const v = o[k];
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : fallback;
}

const SCORE_FIELDS = [
  "gnll",
  "msp",
  "mean_nll",
  "max_nll",
  "first_nll",
  "mean_entropy",
  "max_entropy",
  "first_entropy",
  "mean_hbar_s",
  "max_hbar_s",
  "min_margin_gap",
  "first_margin_gap",
] as const satisfies readonly (keyof SequenceScores)[];

/**
 * Sequence scores, or null when absent or not an object. A score that is not a finite number reads
 * as null (unknown), so one odd field does not drop the message.
 */
/** A summary's verification, or null when it has none (or an unreadable one). */
export function parseVerification(v: unknown): Verification | null {
  if (!isObj(v) || !Array.isArray(v.samples)) return null;
  const consistency = optNum(v, "consistency");
  if (consistency === null) return null;
  return {
    samples: v.samples.filter((x): x is string => typeof x === "string"),
    answer: typeof v.answer === "string" ? v.answer : "",
    temperature: optNum(v, "temperature") ?? 0,
    exact: optNum(v, "exact") ?? 0,
    lexical: optNum(v, "lexical") ?? 0,
    embedding: optNum(v, "embedding"),
    consistency,
  };
}

export function parseSequenceScores(v: unknown): SequenceScores | null {
  if (!isObj(v)) return null;
  const out = { tokens: looseCount(v, "tokens", 0) } as SequenceScores;
  for (const k of SCORE_FIELDS) {
    const x = v[k];
    out[k] = typeof x === "number" && Number.isFinite(x) ? x : null;
  }
  return out;
}

/** The live sequence scores of a session (WebSocket `scores`, GET /sessions/{id}.live_scores). */
export function parseScores(v: unknown): ScoresMessage {
  const o = obj(v, "scores");
  const tokens = looseCount(o, "tokens", 0);
  return {
    type: "scores",
    session_id: str(o, "session_id"),
    seq: seqOf(o, "seq"),
    ts_ns: optNum(o, "ts_ns") ?? 0,
    token_seq: optNum(o, "token_seq") ?? tokens - 1,
    tokens,
    answer_complete: o.answer_complete === true,
    answer_scores: parseSequenceScores(o.answer_scores),
    scores: parseSequenceScores(o.scores),
    p_wrong: optProb(o, "p_wrong"),
    profile: looseStr(o, "profile"),
  };
}

/** A `{rule: count}` object, or null when there is none. */
function countsByRule(v: unknown): Record<string, number> | null {
  if (!isObj(v)) return null;
  const counts: Record<string, number> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === "number") counts[k] = x;
  return counts;
}

/** The higher of two risk levels. */
export function higherRisk(a: RiskLevel, b: RiskLevel): RiskLevel {
  return RISK_LEVELS.indexOf(a) >= RISK_LEVELS.indexOf(b) ? a : b;
}

export function parseSummary(v: unknown): Summary | null {
  if (v === undefined || v === null) return null;
  const o = obj(v, "summary");
  const final_risk = RISK_LEVELS.includes(o.final_risk as RiskLevel) ? (o.final_risk as RiskLevel) : "safe";
  return {
    tokens: optNum(o, "tokens") ?? 0,
    firings_by_rule: countsByRule(o.firings_by_rule) ?? countsByRule(o.alerts_by_rule) ?? {},
    alerts_sent_by_rule: countsByRule(o.alerts_sent_by_rule),
    max_hbar_s: optNum(o, "max_hbar_s"),
    mean_hbar_s: optNum(o, "mean_hbar_s"),
    mean_entropy: optNum(o, "mean_entropy"),
    perplexity: optNum(o, "perplexity"),
    nll_bits: optNum(o, "nll_bits"),
    low_confidence_share: optNum(o, "low_confidence_share"),
    final_risk,
    peak_risk: higherRisk(RISK_LEVELS.includes(o.peak_risk as RiskLevel) ? (o.peak_risk as RiskLevel) : "safe", final_risk),
    p_wrong: optProb(o, "p_wrong"),
    profile: looseStr(o, "profile"),
    answer_scores: parseSequenceScores(o.answer_scores),
    scores: parseSequenceScores(o.scores),
    verification: parseVerification(o.verification),
    status: STATUSES.includes(o.status as SessionStatus) ? (o.status as SessionStatus) : "finished",
  };
}

export function parseSessionRecord(v: unknown): SessionRecord {
  const o = obj(v, "session");
  return {
    session_id: str(o, "session_id"),
    status: oneOf<SessionStatus>(o, "status", STATUSES),
    model: optStr(o, "model"),
    provider: optStr(o, "provider"),
    prompt: optStr(o, "prompt"),
    reason: optStr(o, "reason"),
    created_ns: optNum(o, "created_ns") ?? 0,
    updated_ns: optNum(o, "updated_ns") ?? 0,
    tokens: optNum(o, "tokens") ?? 0,
    alerts: optNum(o, "alerts") ?? 0,
    risk: RISK_LEVELS.includes(o.risk as RiskLevel) ? (o.risk as RiskLevel) : "safe",
    summary: parseSummary(o.summary),
  };
}

function list<T>(v: unknown, field: string, item: (x: unknown) => T): T[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ParseError("expected a list", field);
  return v.map(item);
}

export function parseHistory(v: unknown): SessionHistory {
  const o = obj(v, "history");
  const session = parseSessionRecord(o.session);
  return {
    session,
    tokens: list(o.tokens, "tokens", parseToken),
    alerts: list(o.alerts, "alerts", parseAlert),
    risks: list(o.risks, "risks", parseRisk),
    summary: parseSummary(o.summary) ?? session.summary ?? null,
    live_scores: o.live_scores === undefined || o.live_scores === null ? null : parseScores(o.live_scores),
  };
}

export function parseSessionList(v: unknown): SessionList {
  const o = obj(v, "sessions");
  const items = list(o.items, "items", parseSessionRecord);
  return { items, total: optNum(o, "total") ?? items.length };
}

/** POST /generate's answer: the queued session and where to follow it. */
export function parseGenerateAccepted(v: unknown): GenerateAccepted {
  const o = obj(v, "generate");
  const u = obj(o.urls, "urls");
  return {
    session_id: str(o, "session_id"),
    status: oneOf<SessionStatus>(o, "status", STATUSES),
    urls: { session: str(u, "session"), cancel: str(u, "cancel"), ws: str(u, "ws") },
  };
}

export const DEFAULT_SERVER_CONFIG: ServerConfig = {
  models: [],
  default_model: null,
  thresholds: { hbar_s: 2.5, prob: 0.3 },
  limits: { max_tokens: 2048, prompt_chars: 20_000 },
  auth_required: false,
  calibration: {},
};

function parseCalibration(v: unknown): Record<string, ModelCalibration> {
  const out: Record<string, ModelCalibration> = {};
  if (!isObj(v)) return out;
  for (const [model, c] of Object.entries(v)) {
    if (!isObj(c)) continue;
    const profile = looseStr(c, "profile");
    const rates: ModelCalibration["risk_rates"] = {};
    if (isObj(c.risk_rates)) {
      for (const level of RISK_LEVELS) {
        const r = optProb(c.risk_rates, level);
        if (r !== null) rates[level] = r;
      }
    }
    out[model] = { calibrated: c.calibrated === true, profile, p_wrong: c.p_wrong === true, risk_rates: rates };
  }
  return out;
}

export function parseServerConfig(v: unknown): ServerConfig {
  const o = obj(v, "config");
  const t = isObj(o.thresholds) ? o.thresholds : {};
  const l = isObj(o.limits) ? o.limits : {};
  const models = Array.isArray(o.models) ? o.models.filter((m): m is string => typeof m === "string") : [];
  const d = DEFAULT_SERVER_CONFIG;
  return {
    models,
    default_model: optStr(o, "default_model") ?? models[0] ?? null,
    thresholds: { hbar_s: optNum(t, "hbar_s") ?? d.thresholds.hbar_s, prob: optNum(t, "prob") ?? d.thresholds.prob },
    limits: {
      max_tokens: optNum(l, "max_tokens") ?? d.limits.max_tokens,
      prompt_chars: optNum(l, "prompt_chars") ?? d.limits.prompt_chars,
    },
    auth_required: o.auth_required === true,
    calibration: parseCalibration(o.calibration),
  };
}

/**
 * One WebSocket frame → a typed message; null for a message type this dashboard does not know
 * (docs/api.md: a client ignores those, new ones are added without a new protocol version); a
 * ParseError naming the bad field for a frame that is not a valid message.
 */
export function parseServerMessage(raw: string): ServerMessage | null {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    throw new ParseError("not JSON", "(frame)");
  }
  const o = obj(data, "(frame)");
  switch (o.type) {
    case "token":
    case "audit":
      return parseToken(o);
    case "alert":
      return parseAlert(o);
    case "risk":
      return parseRisk(o);
    case "scores":
      return parseScores(o);
    case "session":
      return {
        type: "session",
        session_id: str(o, "session_id"),
        status: oneOf<SessionStatus>(o, "status", STATUSES),
        model: optStr(o, "model"),
        prompt: optStr(o, "prompt"),
        reason: optStr(o, "reason"),
      };
    case "replayed":
      return { type: "replayed", session_id: str(o, "session_id"), last_seq: optNum(o, "last_seq") ?? -1 };
    case "done":
      return {
        type: "done",
        session_id: str(o, "session_id"),
        status: oneOf<SessionStatus>(o, "status", STATUSES),
        reason: optStr(o, "reason"),
        tokens: optNum(o, "tokens") ?? 0,
        summary: parseSummary(o.summary),
      };
    case "missed":
      return {
        type: "missed",
        session_id: str(o, "session_id"),
        from_seq: optNum(o, "from_seq"),
        to_seq: optNum(o, "to_seq"),
      };
    case "error":
      return {
        type: "error",
        session_id: optStr(o, "session_id"),
        message: optStr(o, "message") ?? "unknown error",
        code: optStr(o, "code") ?? "error",
      };
    case "pong":
      return { type: "pong" };
    default:
      if (typeof o.type !== "string" || o.type === "") throw new ParseError("expected a message type", "type");
      return null;
  }
}
