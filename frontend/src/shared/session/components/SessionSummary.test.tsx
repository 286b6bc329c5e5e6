// @vitest-environment jsdom
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { Summary } from "../../../api/types";
import { summaryEvent } from "../../../test/factories";
import { ruleCounts, SessionSummary } from "./SessionSummary";

afterEach(cleanup);

const summary: Summary = summaryEvent({
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
});

describe("SessionSummary", () => {
  it("says per rule how many tokens it fired on and how many alerts were sent", () => {
    render(<SessionSummary summary={summary} />);
    expect(screen.getAllByTestId("rule-counts").map((e) => e.textContent)).toEqual([
      "High uncertainty fired on 1 token, 1 alert sent",
      "Low confidence fired on 256 tokens, 6 alerts sent",
    ]);
  });

  it("leaves the alerts out when the alerter did not count them", () => {
    render(<SessionSummary summary={{ ...summary, alerts_sent_by_rule: null }} />);
    expect(screen.getAllByTestId("rule-counts").map((e) => e.textContent)).toEqual([
      "High uncertainty fired on 1 token",
      "Low confidence fired on 256 tokens",
    ]);
  });

  it("reads a summary from an older alerter: firings under their deprecated name, alerts sent unknown", () => {
    const { firings_by_rule: _f, ...older } = summary;
    render(<SessionSummary summary={{ ...older, alerts_by_rule: { LOW_CONFIDENCE: 3 }, alerts_sent_by_rule: null }} />);
    expect(screen.getAllByTestId("rule-counts").map((e) => e.textContent)).toEqual(["Low confidence fired on 3 tokens"]);
  });

  it("shows the peak beside the final level, P(wrong) and the calibration profile", () => {
    render(<SessionSummary summary={{ ...summary, final_risk: "safe", peak_risk: "warning", p_wrong: 0.125, profile: "SmolLM2-135M-Instruct/2026-12-02" }} />);
    expect(screen.getByTestId("summary-risk").textContent).toBe("Risk: final ✓ Safe · peak ! Elevated");
    expect(screen.getByTestId("summary-p-wrong").textContent).toBe("P(wrong) 12.5%");
    expect(screen.getByTestId("calibration").textContent).toBe("calibrated · SmolLM2-135M-Instruct/2026-12-02");
  });

  it("shows how well the verification samples agreed, with the samples in the tooltip", () => {
    const verification = { samples: ["Paris", "Lyon"], answer: "Paris", temperature: 1, exact: 0.5, lexical: 0.5, embedding: null, consistency: 0.5 };
    render(<SessionSummary summary={{ ...summary, verification }} />);
    const shown = screen.getByTestId("summary-verification");
    expect(shown.textContent).toBe("2 samples agree 50%");
    expect(shown.getAttribute("title")).toContain("Paris\nLyon");
  });

  it("reads an older summary (no peak, no profile) as peak = final, uncalibrated, no P(wrong)", () => {
    render(<SessionSummary summary={summary} />);
    expect(screen.getByTestId("summary-risk").textContent).toBe("Risk: final ‼ High · peak ‼ High");
    expect(screen.queryByTestId("summary-p-wrong")).toBeNull();
    expect(screen.getByTestId("calibration").textContent).toBe("uncalibrated");
  });

  it("counts a rule that fired without any alert sent as 0 sent", () => {
    expect(ruleCounts(3, 0)).toBe("fired on 3 tokens, 0 alerts sent");
  });
});
