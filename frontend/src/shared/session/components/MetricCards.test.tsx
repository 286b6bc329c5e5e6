// @vitest-environment jsdom
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { RiskMessage, Summary } from "../../../api/types";
import { risk, scores, sequenceScores, session, SID, summaryEvent, token } from "../../../test/factories";
import { SessionStore } from "../store/sessionStore";
import { GNLL_TITLE, MetricCards } from "./MetricCards";

afterEach(cleanup);

const PROFILE = "SmolLM2-135M-Instruct/2026-12-02";
const REASON =
  "P(wrong) = 0.88 for the answer (2 tokens; calibrated on labelled QA, profile SmolLM2-135M-Instruct/2026-12-02): in the critical band (≥ 0.80)";
const LOOP = "the text loops (REPETITION on 3 of the last 32 tokens): at least warning while it does";

const calibratedRisk = (seq: number, extra: Partial<RiskMessage> = {}): RiskMessage => ({
  ...risk(seq, "critical", "safe"),
  reason: REASON,
  evidence: "answer",
  p_wrong: 0.88,
  profile: PROFILE,
  ...extra,
});

function storeWith(...msgs: Parameters<SessionStore["apply"]>[0][]): SessionStore {
  const s = new SessionStore(SID);
  s.apply(session("started", { model: "SmolLM2-135M-Instruct" }));
  for (const m of msgs) s.apply(m);
  return s;
}

const card = () => screen.getByTestId("card-risk");

describe("the risk card", () => {
  it("does not claim Safe before the first token; says it is waiting", () => {
    render(<MetricCards store={storeWith()} threshold={2.5} />);
    expect(screen.getByTestId("risk-level").textContent).toContain("—");
    expect(screen.getByTestId("risk-level").textContent).toContain("waiting");
    expect(card().textContent).not.toMatch(/Safe/);
    expect(card().dataset.level).toBe("waiting");
  });

  it("shows the level, the latest reason in full, P(wrong) with one decimal, and the profile", () => {
    render(<MetricCards store={storeWith(token(0), token(1), calibratedRisk(0))} threshold={2.5} />);
    expect(screen.getByTestId("risk-level").textContent).toContain("High");
    expect(screen.getByTestId("risk-reason").textContent).toBe(REASON);
    expect(screen.getByTestId("p-wrong").textContent).toBe("P(wrong) 88.0%");
    expect(screen.getByTestId("calibration").textContent).toBe(`calibrated · ${PROFILE}`);
  });

  it("shows the latest risk change's reason, and the peak when the level came down", () => {
    const back: RiskMessage = { ...risk(1, "warning", "critical"), reason: LOOP, evidence: "loop", p_wrong: null, profile: PROFILE };
    render(<MetricCards store={storeWith(token(0), calibratedRisk(0), back)} threshold={2.5} />);
    expect(screen.getByTestId("risk-level").textContent).toContain("Elevated");
    expect(screen.getByTestId("risk-level").textContent).toContain("peak High");
    expect(screen.getByTestId("risk-reason").textContent).toBe(LOOP);
    // The answer's P(wrong) from the earlier change still holds.
    expect(screen.getByTestId("p-wrong").textContent).toBe("P(wrong) 88.0%");
  });

  it("says uncalibrated when the alerter judged by the rules, and leaves P(wrong) out", () => {
    const r: RiskMessage = { ...risk(0, "warning"), reason: "LOW_CONFIDENCE fired on 4 of the last 32 tokens", evidence: "rules", p_wrong: null, profile: null };
    render(<MetricCards store={storeWith(token(0), r)} threshold={2.5} />);
    expect(screen.getByTestId("calibration").textContent).toBe("uncalibrated");
    expect(screen.queryByTestId("p-wrong")).toBeNull();
  });

  it("takes the calibration from /config for the session's model before the alerter says", () => {
    const calibration = {
      "SmolLM2-135M-Instruct": {
        calibrated: true,
        profile: PROFILE,
        p_wrong: true,
        risk_rates: {},
        thresholds: { hbar_s: 2.5, prob: 0.3, source: "defaults" as const },
      },
    };
    render(<MetricCards store={storeWith()} threshold={2.5} calibration={calibration} />);
    expect(screen.getByTestId("calibration").textContent).toBe(`calibrated · ${PROFILE}`);
    cleanup();
    render(<MetricCards store={storeWith()} threshold={2.5} calibration={{ other: { ...calibration["SmolLM2-135M-Instruct"], calibrated: false, profile: null } }} />);
    expect(screen.getByTestId("calibration").textContent).toBe("uncalibrated");
  });

  it("shows Safe once tokens arrived without a risk change, and the summary's P(wrong) at the end", () => {
    const summary: Summary = summaryEvent({
      tokens: 1,
      firings_by_rule: {},
      alerts_sent_by_rule: {},
      max_hbar_s: null,
      mean_hbar_s: null,
      mean_entropy: null,
      perplexity: null,
      nll_bits: null,
      low_confidence_share: null,
      final_risk: "safe",
      peak_risk: "safe",
      p_wrong: 0.0625,
      profile: PROFILE,
      status: "finished",
    });
    const s = storeWith(token(0));
    render(<MetricCards store={s} threshold={2.5} />);
    expect(screen.getByTestId("risk-level").textContent).toContain("Safe");
    cleanup();
    s.apply({ type: "done", session_id: SID, status: "finished", reason: "eos", tokens: 1, summary });
    render(<MetricCards store={s} threshold={2.5} />);
    expect(screen.getByTestId("p-wrong").textContent).toBe("P(wrong) 6.3%");
    expect(screen.getByTestId("calibration").textContent).toBe(`calibrated · ${PROFILE}`);
  });

  it("shows the live P(wrong) and the answer's G-NLL while running, explained in a tooltip", () => {
    const s = storeWith(token(0), token(1), calibratedRisk(0), scores(0, 15, { p_wrong: 0.42 }));
    render(<MetricCards store={s} threshold={2.5} />);
    expect(screen.getByTestId("p-wrong").textContent).toBe("P(wrong) 42.0%");
    const g = screen.getByTestId("answer-gnll");
    expect(g.textContent).toBe("answer −log₂p = 12.3 bits");
    expect(g.getAttribute("title")).toBe(GNLL_TITLE);
    expect(GNLL_TITLE).toMatch(/sum of surprisal of the answer span.*higher = less likely/);
  });

  it("says 'so far' while the answer span is still open, and shows G-NLL without a P(wrong) when uncalibrated", () => {
    const s = storeWith(token(0), scores(0, 0, { answer_complete: false, answer_scores: sequenceScores(1, 3.04), p_wrong: null, profile: null }));
    render(<MetricCards store={s} threshold={2.5} />);
    expect(screen.queryByTestId("p-wrong")).toBeNull();
    expect(screen.getByTestId("answer-gnll").textContent).toBe("answer −log₂p = 3.0 bits so far");
  });

  it("shows neither before the alerter sent scores", () => {
    render(<MetricCards store={storeWith(token(0))} threshold={2.5} />);
    expect(screen.queryByTestId("answer-gnll")).toBeNull();
    expect(screen.queryByTestId("p-wrong")).toBeNull();
  });

  it("lets the summary's values win once the session ended", () => {
    const s = storeWith(token(0), scores(0, 0, { p_wrong: 0.42 }));
    s.apply({
      type: "done",
      session_id: SID,
      status: "finished",
      reason: "eos",
      tokens: 1,
      summary: summaryEvent({
        tokens: 1,
        firings_by_rule: {},
        alerts_sent_by_rule: {},
        max_hbar_s: null,
        mean_hbar_s: null,
        mean_entropy: null,
        perplexity: null,
        nll_bits: null,
        low_confidence_share: null,
        final_risk: "safe",
        peak_risk: "safe",
        p_wrong: 0.0625,
        profile: PROFILE,
        answer_scores: sequenceScores(2, 7.96),
        scores: null,
        status: "finished",
      }),
    });
    render(<MetricCards store={s} threshold={2.5} />);
    expect(screen.getByTestId("p-wrong").textContent).toBe("P(wrong) 6.3%");
    expect(screen.getByTestId("answer-gnll").textContent).toBe("answer −log₂p = 8.0 bits");
  });
});
