import { describe, expect, it } from "vitest";
import { RingBuffer } from "./ringBuffer";

describe("RingBuffer", () => {
  it("returns rows oldest first and overwrites the oldest when full", () => {
    const r = new RingBuffer(["a", "b"] as const, 3);
    for (let i = 1; i <= 5; i++) r.push({ a: i, b: -i });
    expect(r.length).toBe(3);
    expect(r.column("a")).toEqual([3, 4, 5]);
    expect(r.column("b")).toEqual([-3, -4, -5]);
    expect(r.get("a", 0)).toBe(3);
    expect(() => r.get("a", 3)).toThrow(RangeError);
  });

  it("clears", () => {
    const r = new RingBuffer(["a"] as const, 2);
    r.push({ a: 1 });
    r.clear();
    expect(r.length).toBe(0);
    r.push({ a: 7 });
    expect(r.column("a")).toEqual([7]);
  });

  it("rejects a capacity below one", () => {
    expect(() => new RingBuffer(["a"] as const, 0)).toThrow(RangeError);
  });
});
