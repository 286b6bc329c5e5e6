/**
 * The sessions list's filters, sort and page as URL parameters (so a filtered list is a link) and
 * as the GET /sessions query they stand for. Dates are whole local days: `since` from the start of
 * its day, `until` to the end of its day.
 */
import type { SessionQuery, SessionSort } from "../../api/client";
import { RISK_LEVELS, type RiskLevel, type SessionStatus } from "../../api/types";
import type { Params } from "../../app/router";

/** The most sessions one comparison shows side by side. */
export const MAX_COMPARE = 6;

export const STATUSES: readonly SessionStatus[] = ["queued", "started", "finished", "failed", "cancelled"];
export const SORTS: readonly SessionSort[] = ["created", "updated", "tokens", "alerts", "peak", "risk", "status", "model"];
export const SORT_LABEL: Record<SessionSort, string> = {
  created: "Started",
  updated: "Last activity",
  tokens: "Tokens",
  alerts: "Alerts sent",
  peak: "Peak risk",
  risk: "Risk now",
  status: "Status",
  model: "Model",
};

export interface Filters {
  q: string;
  model: string;
  status: SessionStatus | "";
  /** Current risk level. */
  risk: RiskLevel | "";
  /** Lowest peak risk level. */
  peak: RiskLevel | "";
  /** YYYY-MM-DD, local days, inclusive. */
  since: string;
  until: string;
  sort: SessionSort;
  order: "asc" | "desc";
  offset: number;
}

export const NO_FILTERS: Filters = {
  q: "",
  model: "",
  status: "",
  risk: "",
  peak: "",
  since: "",
  until: "",
  sort: "created",
  order: "desc",
  offset: 0,
};

const DAY = /^\d{4}-\d{2}-\d{2}$/;

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], fallback: T | ""): T | "" {
  return value !== undefined && (allowed as readonly string[]).includes(value) ? (value as T) : fallback;
}

/** The filters a URL holds; anything malformed is dropped (a hand-edited link still opens). */
export function parseFilters(p: Params): Filters {
  const offset = Number(p.offset);
  return {
    q: (p.q ?? "").slice(0, 500),
    model: p.model ?? "",
    status: oneOf(p.status, STATUSES, ""),
    risk: oneOf(p.risk, RISK_LEVELS, ""),
    peak: oneOf(p.peak, RISK_LEVELS, ""),
    since: p.since && DAY.test(p.since) ? p.since : "",
    until: p.until && DAY.test(p.until) ? p.until : "",
    sort: (oneOf(p.sort, SORTS, "created") || "created") as SessionSort,
    order: p.order === "asc" ? "asc" : "desc",
    offset: Number.isInteger(offset) && offset > 0 ? offset : 0,
  };
}

/** URL parameters for the filters; defaults are left out so that a plain list has a plain link. */
export function filterParams(f: Filters): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(f)) {
    const dflt = NO_FILTERS[k as keyof Filters];
    if (v !== dflt && v !== "") out[k] = String(v);
  }
  return out;
}

export function isFiltered(f: Filters): boolean {
  return Boolean(f.q.trim() || f.model || f.status || f.risk || f.peak || f.since || f.until);
}

/** The start of a local day, ns since the epoch (BigInt-free: ms precision is all a day needs). */
export function dayStartNs(day: string, plusDays = 0): number {
  const [y, m, d] = day.split("-").map(Number) as [number, number, number];
  return new Date(y, m - 1, d + plusDays).getTime() * 1_000_000;
}

export function toQuery(f: Filters, limit: number): SessionQuery {
  const q: SessionQuery = { limit, offset: f.offset, sort: f.sort, order: f.order };
  if (f.q.trim()) q.q = f.q.trim();
  if (f.model) q.model = f.model;
  if (f.status) q.status = f.status;
  if (f.risk) q.risk = f.risk;
  if (f.peak) q.peak = f.peak;
  if (f.since) q.since_ns = dayStartNs(f.since);
  if (f.until) q.until_ns = dayStartNs(f.until, 1);
  return q;
}
