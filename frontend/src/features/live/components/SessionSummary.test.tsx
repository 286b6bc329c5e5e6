// @vitest-environment jsdom
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { Summary } from "../../../api/types";
import { ruleCounts, SessionSummary } from "./SessionSummary";

afterEach(cleanup);

const summary: Summary = {
  tokens: 256,
  firings_by_rule: { HIGH_UNCERTAINTY: 1, LOW_CONFIDENCE: 256 },
  alerts_sent_by_rule: { HIGH_UNCERTAINTY: 1, LOW_CONFIDENCE: 6 },
  max_hbar_s: 3.2,
  mean_hbar_s: 1.1,
  mean_entropy: 0.5,
  perplexity: 1.7,
  nll_bits: 12,
  low_confidence_share: 1,
  final_risk: "critical",
  status: "finished",
};

describe("SessionSummary", () => {
  it("says per rule how many tokens it fired on and how many alerts were sent", () => {
    render(<SessionSummary summary={summary} />);
    expect(screen.getAllByTestId("rule-counts").map((e) => e.textContent)).toEqual([
      "HIGH_UNCERTAINTY fired on 1 token, 1 alert sent",
      "LOW_CONFIDENCE fired on 256 tokens, 6 alerts sent",
    ]);
  });

  it("leaves the alerts out when the alerter did not count them", () => {
    render(<SessionSummary summary={{ ...summary, alerts_sent_by_rule: null }} />);
    expect(screen.getAllByTestId("rule-counts").map((e) => e.textContent)).toEqual([
      "HIGH_UNCERTAINTY fired on 1 token",
      "LOW_CONFIDENCE fired on 256 tokens",
    ]);
  });

  it("counts a rule that fired without any alert sent as 0 sent", () => {
    expect(ruleCounts(3, 0)).toBe("fired on 3 tokens, 0 alerts sent");
  });
});
