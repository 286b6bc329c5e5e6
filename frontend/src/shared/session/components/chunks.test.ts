import { describe, expect, it } from "vitest";
import { token } from "../../../test/factories";
import { rowOf, rowStarts } from "./chunks";

describe("rowStarts", () => {
  it("breaks rows after newlines, at sentence ends once long enough, and at the hard cap", () => {
    const texts = ["Hello", " world", ".\n", "A", " b", "."];
    expect(rowStarts(texts.map((t, i) => token(i, t)))).toEqual([0, 3]);
    const many = Array.from({ length: 30 }, (_, i) => token(i, i === 25 ? "." : " x"));
    expect(rowStarts(many, 24, 64)).toEqual([0, 26]);
    const long = Array.from({ length: 130 }, (_, i) => token(i, " x"));
    expect(rowStarts(long, 24, 64)).toEqual([0, 64, 128]);
  });

  it("keeps a row for missing tokens too", () => {
    const sparse = [token(0), undefined, token(2)];
    expect(rowStarts(sparse)).toEqual([0]);
  });
});

describe("rowOf", () => {
  it("finds the row holding a seq", () => {
    const starts = [0, 10, 25];
    expect([0, 9, 10, 24, 25, 1000].map((s) => rowOf(starts, s))).toEqual([0, 0, 1, 1, 2, 2]);
    expect(rowOf([], 3)).toBe(-1);
  });
});
