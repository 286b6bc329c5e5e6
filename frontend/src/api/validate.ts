/**
 * Run-time checks of what the gateway sends, with the validators generated from its schemas
 * (validators.gen.js, `npm run gen:api`). The dashboard trusts nothing it has not checked: a REST
 * answer that does not validate is an error, a WebSocket frame that does not is dropped (and
 * counted) instead of corrupting the view. Validation also fills in the schema's defaults, so a
 * field with one (null for every optional nullable field) is always there.
 */
import type { ValidateFunction } from "ajv";
import type { ServerMessage } from "./types";
import { serverMessageValidators } from "./validators.gen";

export class ParseError extends Error {
  constructor(
    message: string,
    /** Where: a dotted path into what was sent ("metrics.prob"), "(root)" or "(frame)". */
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
  const missing = (e?.params as { missingProperty?: string } | undefined)?.missingProperty;
  const path = [...(e?.instancePath.split("/").slice(1) ?? []), ...(missing ? [missing] : [])];
  throw new ParseError(`${what}: ${e?.message ?? "is invalid"}`, path.join(".") || "(root)");
}

/** Each server message type's validator; a Map, so that no `type` reaches Object.prototype. */
const VALIDATORS: ReadonlyMap<string, ValidateFunction> = new Map(Object.entries(serverMessageValidators));

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
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new ParseError("expected an object", "(frame)");
  const type = (data as { type?: unknown }).type;
  if (typeof type !== "string" || type === "") throw new ParseError("expected a message type", "type");
  const validate = VALIDATORS.get(type);
  return validate ? (checked(validate, data, `${type} message`) as ServerMessage) : null;
}
