import { describe, expect, it } from "vitest";
import { dayStartNs, filterParams, isFiltered, NO_FILTERS, parseFilters, toQuery } from "./filters";

describe("session filters", () => {
  it("round-trip through URL parameters, defaults left out", () => {
    const f = { ...NO_FILTERS, q: "capital", peak: "critical" as const, since: "2026-12-01", sort: "tokens" as const, order: "asc" as const, offset: 25 };
    const params = filterParams(f);
    expect(params).toEqual({ q: "capital", peak: "critical", since: "2026-12-01", sort: "tokens", order: "asc", offset: "25" });
    expect(parseFilters(params)).toEqual(f);
    expect(filterParams(NO_FILTERS)).toEqual({});
  });

  it("drop what a hand-edited link gets wrong", () => {
    const f = parseFilters({ status: "exploded", peak: "purple", since: "yesterday", sort: "colour", order: "up", offset: "-3" });
    expect(f).toEqual(NO_FILTERS);
    expect(isFiltered(f)).toBe(false);
  });

  it("become the GET /sessions query: whole local days, until inclusive", () => {
    const q = toQuery({ ...NO_FILTERS, q: "  x  ", model: "m", status: "finished", since: "2026-12-01", until: "2026-12-01" }, 25);
    expect(q).toEqual({
      limit: 25,
      offset: 0,
      sort: "created",
      order: "desc",
      q: "x",
      model: "m",
      status: "finished",
      since_ns: dayStartNs("2026-12-01"),
      until_ns: dayStartNs("2026-12-02"),
    });
    expect(q.until_ns! - q.since_ns!).toBeGreaterThanOrEqual(23 * 3600 * 1e9); // one day (DST may shorten it)
    expect(dayStartNs("2026-12-31", 1)).toBe(dayStartNs("2027-01-01"));
  });
});
