/**
 * The alerter's summary of an ended session. Each count says what it counts: per rule, the tokens it
 * fired on and the alerts sent for them (the cooldown holds the rest back; docs/alerts.md).
 */
import type { ModelCalibration, Summary } from "../../../api/types";
import { fmt, pct } from "../../../lib/format";
import { peakRisk, RISK_ICON, RISK_LABEL, ruleInfo } from "../../../lib/metrics";
import { calibrationOf, CalibrationLabel } from "./Calibration";

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

/** "fired on 12 tokens, 3 alerts sent" (without the alerts when the alerter did not count them). */
export function ruleCounts(fired: number, sent: number | null): string {
  const firings = `fired on ${plural(fired, "token", "tokens")}`;
  return sent === null ? firings : `${firings}, ${plural(sent, "alert", "alerts")} sent`;
}

interface Props {
  summary: Summary;
  /** The session's model and GET /config's calibration: the label's fallback when the summary names no profile. */
  model?: string | null;
  calibration?: Record<string, ModelCalibration>;
}

export function SessionSummary({ summary, model, calibration }: Props) {
  const sent = summary.alerts_sent_by_rule;
  // An alerter older than `firings_by_rule` sends the same counts as `alerts_by_rule` (docs/alerts.md).
  const firings = summary.firings_by_rule ?? summary.alerts_by_rule ?? {};
  const final = summary.final_risk;
  const peak = peakRisk(summary);
  const pWrong = summary.p_wrong ?? null;
  return (
    <section className="summary" aria-label="Session summary" data-testid="summary">
      <span data-testid="summary-risk">
        Risk: final{" "}
        <strong className={`risk-text risk-${final}`}>
          <span aria-hidden="true">{RISK_ICON[final]}</span> {RISK_LABEL[final]}
        </strong>{" "}
        · peak{" "}
        <strong className={`risk-text risk-${peak}`}>
          <span aria-hidden="true">{RISK_ICON[peak]}</span> {RISK_LABEL[peak]}
        </strong>
      </span>
      {pWrong !== null && <span data-testid="summary-p-wrong">P(wrong) {pct(pWrong, 1)}</span>}
      {summary.verification && (
        <span
          data-testid="summary-verification"
          title={`Answers sampled after this one (T = ${summary.verification.temperature}):\n${summary.verification.samples.join("\n")}`}
        >
          {plural(summary.verification.samples.length, "sample", "samples")} agree {pct(summary.verification.consistency, 0)}
        </span>
      )}
      <CalibrationLabel info={calibrationOf({ summary, model, calibration })} />
      <span title="The highest ℏₛ of any token (bits; higher = more uncertain)">max ℏₛ {fmt(summary.max_hbar_s)} bits</span>
      <span title="Mean entropy of the next-token distributions (bits; higher = more uncertain)">
        mean entropy {fmt(summary.mean_entropy)} bits
      </span>
      <span title="2^(mean surprisal): the model's average branching factor over the text (higher = less expected)">
        perplexity {fmt(summary.perplexity)}
      </span>
      <span title="Share of tokens below the low-confidence probability threshold">low-confidence tokens {pct(summary.low_confidence_share)}</span>
      {Object.entries(firings).map(([rule, n]) => (
        <span key={rule} data-testid="rule-counts" title={`${rule}: ${ruleInfo(rule).help}`}>
          {ruleInfo(rule).name} {ruleCounts(n, sent === null ? null : (sent[rule] ?? 0))}
        </span>
      ))}
    </section>
  );
}
