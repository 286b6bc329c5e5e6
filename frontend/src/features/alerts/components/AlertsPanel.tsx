/**
 * Alerts sent (the entries on uq:alerts, after the cooldown), newest first; severity by colour, glyph
 * and label. One alert per token: its card shows every rule that fired there as a chip (most severe
 * first) and each rule's finding. Clicking one jumps to its token.
 */
import { memo } from "react";
import type { AlertFinding, AlertMessage, Severity } from "../../../api/types";
import { visibleToken } from "../../../lib/format";
import { SEVERITY_ICON, SEVERITY_LABEL } from "../../../lib/metrics";
import type { AlertsPanelProps as Props } from "../../../shared/session/components/SessionView";

const MAX_SHOWN = 500;

/** Every rule that fired on the alert's token, most severe first, each with its severity. */
export function alertRules(a: AlertMessage): { rule: string; severity: Severity }[] {
  const findings = a.findings ?? [];
  const rules = a.rules?.length ? a.rules : findings.length ? findings.map((f) => f.rule) : [a.rule];
  return rules.map((rule, i) => ({
    rule,
    severity: findings.find((f) => f.rule === rule)?.severity ?? (rule === a.rule || i === 0 ? a.severity : "info"),
  }));
}

/** Each rule's own finding; an alert without findings (older alerter) shows its one message. */
function findingsOf(a: AlertMessage): Pick<AlertFinding, "rule" | "severity" | "message">[] {
  return a.findings?.length ? a.findings : [{ rule: a.rule, severity: a.severity, message: a.message }];
}

export const AlertsPanel = memo(function AlertsPanel({ alerts, selected, onSelect }: Props) {
  const newestFirst = alerts.slice(-MAX_SHOWN).reverse();
  return (
    <section className="panel alerts" aria-labelledby="alerts-title">
      <h2 id="alerts-title">
        Alerts sent{" "}
        <span className="count" title="Alerts sent: one per token where rules fired and the cooldown let them through (docs/alerts.md)">
          {alerts.length}
        </span>
      </h2>
      {newestFirst.length === 0 ? (
        <p className="empty">No alerts yet.</p>
      ) : (
        <ol className="alert-list" data-testid="alerts">
          {newestFirst.map((a) => {
            const rules = alertRules(a);
            const findings = findingsOf(a);
            return (
              <li key={a.seq}>
                <button
                  type="button"
                  className={`alert-item sev-${a.severity}${a.token_seq === selected ? " selected" : ""}`}
                  onClick={() => onSelect(a.token_seq)}
                  aria-label={`${SEVERITY_LABEL[a.severity]} ${rules.map((r) => r.rule).join(", ")} at token ${a.token_seq}: ${a.message}. Show the token.`}
                  data-testid="alert"
                >
                  <span className={`sev sev-${a.severity}`}>
                    <span aria-hidden="true">{SEVERITY_ICON[a.severity]}</span> {SEVERITY_LABEL[a.severity]}
                  </span>
                  <span className="alert-rules" data-testid="alert-rules">
                    {rules.map((r) => (
                      <span
                        key={r.rule}
                        className={`rule-chip sev-${r.severity}`}
                        title={`${r.rule}: ${SEVERITY_LABEL[r.severity]}`}
                        data-testid="rule-chip"
                        data-severity={r.severity}
                      >
                        {r.rule}
                      </span>
                    ))}
                  </span>
                  <span className="alert-pos">
                    #{a.token_seq} <code>{visibleToken(a.token_text)}</code>
                  </span>
                  <span className="alert-findings" data-testid="alert-findings">
                    {findings.map((f, i) => (
                      <span key={`${f.rule}-${i}`} className={`alert-msg finding sev-${f.severity}`} data-testid="finding">
                        {findings.length > 1 && <span className="finding-rule">{f.rule}: </span>}
                        {f.message}
                      </span>
                    ))}
                  </span>
                </button>
              </li>
            );
          })}
        </ol>
      )}
      {alerts.length > MAX_SHOWN && <p className="empty">Showing the newest {MAX_SHOWN}.</p>}
    </section>
  );
});
