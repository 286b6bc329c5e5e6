import { describe, expect, it } from "vitest";
import type { RiskMessage } from "../../../api/types";
import { riskSpans } from "./RiskStrip";

const change = (seq: number, token_seq: number, level: RiskMessage["level"]): RiskMessage =>
  ({ type: "risk", session_id: "s", seq, token_seq, level, previous: "safe", reason: `r${seq}` }) as RiskMessage;

describe("riskSpans", () => {
  it("is safe until the first change, then each level until the next", () => {
    const spans = riskSpans([change(0, 10, "critical"), change(1, 25, "warning")], 40);
    expect(spans.map((s) => [s.from, s.to, s.level, s.reason])).toEqual([
      [0, 10, "safe", null],
      [10, 25, "critical", "r0"],
      [25, 40, "warning", "r1"],
    ]);
  });
  it("has nothing before the first token, and clamps changes to the tokens seen", () => {
    expect(riskSpans([change(0, 3, "warning")], 0)).toEqual([]);
    expect(riskSpans([change(0, 99, "warning")], 5).map((s) => s.level)).toEqual(["safe"]);
  });
});
