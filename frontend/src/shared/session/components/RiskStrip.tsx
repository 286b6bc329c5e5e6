/**
 * The risk level over token positions, under the chart: one band per stretch of tokens at one level,
 * from the session's risk changes (each names the token where it changed). Hover or focus a band for
 * its level and the reason it was set.
 */
import { memo } from "react";
import type { RiskLevel, RiskMessage } from "../../../api/types";
import { RISK_LABEL } from "../../../lib/metrics";

export interface RiskSpan {
  from: number; // first token position at this level
  to: number; // one past the last
  level: RiskLevel;
  reason: string | null;
}

/** Stretches of ``tokenCount`` positions at one level each: safe before the first change. */
export function riskSpans(risks: readonly RiskMessage[], tokenCount: number): RiskSpan[] {
  if (tokenCount <= 0) return [];
  const spans: RiskSpan[] = [];
  let from = 0;
  let level: RiskLevel = "safe";
  let reason: string | null = null;
  for (const r of [...risks].sort((a, b) => a.seq - b.seq)) {
    const at = Math.min(Math.max(r.token_seq, 0), tokenCount);
    if (at > from) spans.push({ from, to: at, level, reason });
    from = Math.max(from, at);
    level = r.level;
    reason = r.reason;
  }
  if (tokenCount > from) spans.push({ from, to: tokenCount, level, reason });
  return spans.filter((s) => s.to > s.from);
}

interface Props {
  risks: readonly RiskMessage[];
  count: number; // re-render when it changes (the list is mutated in place)
  tokenCount: number;
}

export const RiskStrip = memo(function RiskStrip({ risks, tokenCount }: Props) {
  const spans = riskSpans(risks, tokenCount);
  if (!spans.length) return null;
  return (
    <div className="risk-strip" data-testid="risk-strip" role="list" aria-label="Risk level over the tokens">
      <span className="risk-strip-label" aria-hidden="true">
        risk
      </span>
      <div className="risk-strip-bar">
        {spans.map((s) => (
          <span
            key={s.from}
            role="listitem"
            tabIndex={0}
            className={`risk-band risk-${s.level}`}
            style={{ left: `${(100 * s.from) / tokenCount}%`, width: `${(100 * (s.to - s.from)) / tokenCount}%` }}
            title={`Tokens ${s.from}–${s.to - 1}: ${RISK_LABEL[s.level]}${s.reason ? ` — ${s.reason}` : ""}`}
            aria-label={`Tokens ${s.from} to ${s.to - 1}: risk ${RISK_LABEL[s.level]}`}
            data-level={s.level}
          />
        ))}
      </div>
    </div>
  );
});
