import type { RiskLevel } from "../../../api/types";
import { RISK_ICON, RISK_LABEL } from "../../../lib/metrics";

export function RiskBadge({ level }: { level: RiskLevel }) {
  return (
    <span className={`risk-text risk-${level}`}>
      <span aria-hidden="true">{RISK_ICON[level]}</span> {RISK_LABEL[level]}
    </span>
  );
}
