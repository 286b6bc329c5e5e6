/** A tiny hash router: #/live, #/live/<session>, #/sessions, #/sessions/<session>. */
import { useEffect, useState } from "react";

export type Route =
  | { page: "live"; sessionId: string | null }
  | { page: "sessions"; sessionId: string | null };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [page, id] = parts;
  if (page === "sessions") return { page: "sessions", sessionId: id ?? null };
  return { page: "live", sessionId: page === "live" ? (id ?? null) : null };
}

export function routeHref(r: Route): string {
  return `#/${r.page}${r.sessionId ? `/${encodeURIComponent(r.sessionId)}` : ""}`;
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
