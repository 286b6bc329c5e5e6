import { describe, expect, it } from "vitest";
import { alternatives, band, bandLabel, METRICS } from "./metrics";

describe("band", () => {
  it("puts ℏₛ at the 2.5 threshold into the first high band", () => {
    const info = METRICS.hbar_s;
    expect([0, 0.49, 0.5, 1.6, 2.49, 2.5, 3.49, 3.5, 9].map((v) => band(v, info))).toEqual([0, 0, 1, 2, 2, 3, 3, 4, 4]);
    expect(band(null, info)).toBeNull();
    expect(bandLabel(info, 0)).toBe("< 0.5");
    expect(bandLabel(info, 3)).toBe("2.5–3.5");
    expect(bandLabel(info, 4)).toBe("≥ 3.5");
  });

  it("uses GLTR-like rank buckets", () => {
    const info = METRICS.rank;
    expect([1, 2, 3, 4, 10, 11, 100, 101].map((v) => band(v, info))).toEqual([0, 1, 1, 2, 2, 3, 3, 4]);
    expect([0, 1, 2, 3, 4].map((b) => bandLabel(info, b))).toEqual(["1", "2–3", "4–10", "11–100", "> 100"]);
  });
});

describe("alternatives", () => {
  it("turns logprobs into probabilities and reports the tail mass", () => {
    const { items, tail } = alternatives(
      [
        { token_id: 1, text: " Paris", logprob: Math.log(0.6) },
        { token_id: 2, text: " Lyon", logprob: Math.log(0.25) },
      ],
      2,
      " Lyon",
    );
    expect(items.map((a) => a.prob)).toEqual([expect.closeTo(0.6, 12), expect.closeTo(0.25, 12)]);
    expect(items.map((a) => a.emitted)).toEqual([false, true]);
    expect(tail).toBeCloseTo(0.15, 12);
  });

  it("never reports a negative tail when rounding pushes Σp over 1", () => {
    expect(alternatives([{ token_id: 1, text: "a", logprob: 0 }, { token_id: 2, text: "b", logprob: -30 }], 1, "a").tail).toBe(0);
  });
});
