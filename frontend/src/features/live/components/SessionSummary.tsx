/**
 * The alerter's summary of an ended session. Each count says what it counts: per rule, the tokens it
 * fired on and the alerts sent for them (the cooldown holds the rest back; docs/alerts.md).
 */
import type { Summary } from "../../../api/types";
import { fmt, pct } from "../../../lib/format";
import { RISK_ICON, RISK_LABEL } from "../../../lib/metrics";

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

/** "fired on 12 tokens, 3 alerts sent" (without the alerts when the alerter did not count them). */
export function ruleCounts(fired: number, sent: number | null): string {
  const firings = `fired on ${plural(fired, "token", "tokens")}`;
  return sent === null ? firings : `${firings}, ${plural(sent, "alert", "alerts")} sent`;
}

export function SessionSummary({ summary }: { summary: Summary }) {
  const sent = summary.alerts_sent_by_rule;
  return (
    <section className="summary" aria-label="Session summary" data-testid="summary">
      <span>
        Final risk{" "}
        <strong className={`risk-text risk-${summary.final_risk}`}>
          {RISK_ICON[summary.final_risk]} {RISK_LABEL[summary.final_risk]}
        </strong>
      </span>
      <span>max ℏₛ {fmt(summary.max_hbar_s)}</span>
      <span>mean entropy {fmt(summary.mean_entropy)} bits</span>
      <span>perplexity {fmt(summary.perplexity)}</span>
      <span>low-confidence tokens {pct(summary.low_confidence_share)}</span>
      {Object.entries(summary.firings_by_rule).map(([rule, n]) => (
        <span key={rule} data-testid="rule-counts">
          {rule} {ruleCounts(n, sent === null ? null : (sent[rule] ?? 0))}
        </span>
      ))}
    </section>
  );
}
