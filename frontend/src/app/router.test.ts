import { describe, expect, it } from "vitest";
import { parseRoute, routeHref } from "./router";

describe("router", () => {
  it("reads pages, sessions and query parameters", () => {
    expect(parseRoute("")).toEqual({ page: "live", sessionId: null, params: {} });
    expect(parseRoute("#/live/abc")).toEqual({ page: "live", sessionId: "abc", params: {} });
    expect(parseRoute("#/sessions/a%20b?token=12")).toEqual({ page: "sessions", sessionId: "a b", params: { token: "12" } });
    expect(parseRoute("#/sessions?q=capital%20of&peak=critical&sort=")).toEqual({
      page: "sessions",
      sessionId: null,
      params: { q: "capital of", peak: "critical" },
    });
    expect(parseRoute("#/compare?ids=a,b")).toEqual({ page: "compare", sessionId: null, params: { ids: "a,b" } });
    expect(parseRoute("#/nowhere/x")).toEqual({ page: "live", sessionId: null, params: {} });
    expect(parseRoute("#/sessions/%E0%A4%A")).toMatchObject({ page: "sessions", sessionId: "%E0%A4%A" }); // malformed escape
  });

  it("writes links that read back the same, parameters in a stable order", () => {
    const r = { page: "sessions" as const, sessionId: null, params: { sort: "peak", q: "a&b=c ✓", model: "" } };
    expect(routeHref(r)).toBe("#/sessions?q=a%26b%3Dc+%E2%9C%93&sort=peak");
    expect(parseRoute(routeHref(r)).params).toEqual({ q: "a&b=c ✓", sort: "peak" });
    expect(routeHref({ page: "live", sessionId: "s/1" })).toBe("#/live/s%2F1");
  });
});
