import { describe, expect, it } from "vitest";
import { fmt, pct } from "./format";

describe("fmt", () => {
  it("never prints scientific notation", () => {
    expect(fmt(1.0715086071862673e301)).toBe("1.07 × 10³⁰¹");
    expect(fmt(2_500_000)).toBe("2.50 × 10⁶");
    expect(fmt(999_999.5, 1)).toBe("999999.5");
    expect(fmt(Infinity)).toBe("∞");
    expect(fmt(null)).toBe("—");
    expect(fmt(2.27)).toBe("2.27");
  });
  it("gives percentages one way", () => {
    expect(pct(0.578)).toBe("57.8%");
    expect(pct(0.0004)).toBe("<0.1%");
  });
});
