/**
 * Run-time checks of what the gateway sends, with the validators generated from its schemas
 * (validators.gen.js, `npm run gen:api`). The dashboard trusts nothing it has not checked: a REST
 * answer that does not validate is an error, a WebSocket frame that does not is dropped (and
 * counted) instead of corrupting the view. Validation also fills in the schema's defaults.
 */
import type { ValidateFunction } from "ajv";
import type { ServerMessage } from "./types";
import { validate_alert, validate_risk, validate_scores, validate_summary, validate_token } from "./validators.gen";

export class ParseError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(`${message} (field: ${field})`);
    this.name = "ParseError";
  }
}

/** `data` as a T once `validate` accepts it; else a ParseError naming the first bad field. */
export function checked<T>(validate: ValidateFunction<T>, data: unknown, what: string): T {
  if (validate(data)) return data;
  const e = validate.errors?.[0];
  const field = e ? (e.params as { missingProperty?: string }).missingProperty ?? e.instancePath.split("/").pop() : undefined;
  throw new ParseError(`${what}: ${e?.instancePath || "(root)"} ${e?.message ?? "is invalid"}`, field || "(root)");
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

const DATA: Partial<Record<string, ValidateFunction>> = {
  token: validate_token,
  alert: validate_alert,
  risk: validate_risk,
  scores: validate_scores,
};

const STATUSES = new Set(["queued", "started", "finished", "failed", "cancelled"]);
function str(o: Obj, k: string, optional = false): void {
  const v = o[k];
  if (typeof v === "string" || (optional && (v === undefined || v === null))) return;
  throw new ParseError("expected a string", k);
}
function int(o: Obj, k: string, optional = false): void {
  const v = o[k];
  if (Number.isInteger(v) || (optional && (v === undefined || v === null))) return;
  throw new ParseError("expected an integer", k);
}

/**
 * The lifecycle messages, which only the WebSocket sends and whose schema (docs/schemas/ws-server.json)
 * is not committed yet: checked by hand until scripts/gen-api.mjs generates their validator too.
 */
function checkLifecycle(o: Obj): boolean {
  switch (o.type) {
    case "session":
      str(o, "session_id");
      if (!STATUSES.has(o.status as string)) throw new ParseError("expected a session status", "status");
      for (const k of ["model", "prompt", "reason"]) str(o, k, true);
      return true;
    case "replayed":
      str(o, "session_id");
      int(o, "last_seq");
      return true;
    case "done":
      str(o, "session_id");
      if (!STATUSES.has(o.status as string)) throw new ParseError("expected a session status", "status");
      str(o, "reason", true);
      int(o, "tokens");
      if (o.summary !== null && o.summary !== undefined) checked(validate_summary, o.summary, "done's summary");
      o.reason ??= null;
      o.summary ??= null;
      return true;
    case "missed":
      str(o, "session_id");
      int(o, "from_seq", true);
      int(o, "to_seq", true);
      o.from_seq ??= null;
      o.to_seq ??= null;
      return true;
    case "error":
      str(o, "message");
      str(o, "code");
      str(o, "session_id", true);
      return true;
    case "pong":
      return true;
    default:
      return false;
  }
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
  if (!isObj(data)) throw new ParseError("expected an object", "(frame)");
  if (typeof data.type !== "string" || data.type === "") throw new ParseError("expected a message type", "type");
  const validate = DATA[data.type];
  if (validate) return checked(validate, data, `${data.type} message`) as ServerMessage;
  return checkLifecycle(data) ? (data as unknown as ServerMessage) : null;
}
