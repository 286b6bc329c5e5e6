import { describe, expect, it } from "vitest";
import { movingAverage, parseIds } from "./ComparePage";

describe("compare", () => {
  it("takes up to six distinct ids from the URL", () => {
    expect(parseIds({ ids: "a, b,,a,c" })).toEqual(["a", "b", "c"]);
    expect(parseIds({ ids: "1,2,3,4,5,6,7,8" })).toHaveLength(6);
    expect(parseIds({})).toEqual([]);
  });

  it("smooths a curve with a trailing mean that skips gaps", () => {
    expect(movingAverage([1, 2, 3, 4], 1)).toEqual([1, 2, 3, 4]);
    expect(movingAverage([1, 3, null, 5, 7], 2)).toEqual([1, 2, 3, 5, 6]);
    expect(movingAverage([null, null], 4)).toEqual([null, null]);
  });
});
