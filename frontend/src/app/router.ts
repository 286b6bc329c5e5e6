/**
 * A tiny hash router: #/live, #/live/<session>, #/sessions, #/sessions/<session>, #/compare, each
 * with optional query parameters after "?" (the sessions list's filters, a token to select, the
 * sessions to compare), so that every view a user sets up is a link they can share.
 */
import { useEffect, useState } from "react";

export type Page = "live" | "sessions" | "compare";
export type Params = Readonly<Record<string, string>>;

export interface Route {
  page: Page;
  sessionId: string | null;
  /** Query parameters; absent and "" are the same. */
  params?: Params;
}

const PAGES: readonly Page[] = ["live", "sessions", "compare"];

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const params: Record<string, string> = {};
  if (q >= 0) for (const [k, v] of new URLSearchParams(raw.slice(q + 1))) if (v !== "") params[k] = v;
  const [page, id] = path.split("/").filter(Boolean).map(safeDecode);
  const known = PAGES.includes(page as Page) ? (page as Page) : "live";
  return { page: known, sessionId: known !== "compare" && known === page ? (id ?? null) : null, params };
}

export function routeHref(r: Route): string {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(r.params ?? {}).sort(([a], [b]) => a.localeCompare(b))) if (v !== "") query.set(k, v);
  const qs = query.toString();
  return `#/${r.page}${r.sessionId ? `/${encodeURIComponent(r.sessionId)}` : ""}${qs ? `?${qs}` : ""}`;
}

/** An absolute link to a route of this dashboard (for copying). */
export function absoluteHref(r: Route): string {
  return `${window.location.origin}${window.location.pathname}${routeHref(r)}`;
}

export function navigate(r: Route, { replace = false } = {}): void {
  const href = routeHref(r);
  if (replace) {
    history.replaceState(null, "", href);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    window.location.hash = href;
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
