/**
 * Alerts sent (the entries on uq:alerts, after the cooldown), newest first; severity by colour, glyph
 * and label. One alert per token: its card shows every rule that fired there as a chip (readable name,
 * its explanation on hover and focus; most severe first) and each rule's finding. Clicking one jumps to
 * its token; "Next alert" (key n, shift+n for the previous) walks them in token order. A severity
 * filter keeps the cards at or above a severity.
 */
import { memo, useCallback, useEffect, useMemo, useState } from "react";
import type { AlertFinding, AlertMessage, Severity } from "../../../api/types";
import { visibleToken } from "../../../lib/format";
import { ruleInfo, SEVERITIES, SEVERITY_ICON, SEVERITY_LABEL } from "../../../lib/metrics";
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

const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

/** The alert whose token comes after (or, backwards, before) ``current`` in token order, wrapping round. */
export function nextAlert(alerts: readonly AlertMessage[], current: number | null, backwards = false): AlertMessage | undefined {
  if (!alerts.length) return undefined;
  const byToken = [...alerts].sort((a, b) => a.token_seq - b.token_seq);
  if (backwards) {
    const before = byToken.filter((a) => current === null || a.token_seq < current);
    return before[before.length - 1] ?? byToken[byToken.length - 1];
  }
  return byToken.find((a) => current === null || a.token_seq > current) ?? byToken[0];
}

function typingInAField(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
}

export const AlertsPanel = memo(function AlertsPanel({ alerts, count, selected, onSelect }: Props) {
  const [minimum, setMinimum] = useState<Severity>("info");
  // eslint-disable-next-line react-hooks/exhaustive-deps -- the list is mutated in place; count says when it changed
  const shown = useMemo(() => alerts.filter((a) => SEVERITY_RANK[a.severity] >= SEVERITY_RANK[minimum]), [alerts, count, minimum]);
  const newestFirst = shown.slice(-MAX_SHOWN).reverse();
  const tokens = useMemo(() => new Set(alerts.map((a) => a.token_seq)).size, [alerts, count]); // eslint-disable-line react-hooks/exhaustive-deps
  const jump = useCallback(
    (backwards: boolean) => {
      const target = nextAlert(shown, selected, backwards);
      if (target) onSelect(target.token_seq);
    },
    [shown, selected, onSelect],
  );
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key.toLowerCase() !== "n" || e.ctrlKey || e.metaKey || e.altKey || typingInAField(e.target)) return;
      e.preventDefault();
      jump(e.shiftKey);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [jump]);
  return (
    <section className="panel alerts" aria-labelledby="alerts-title">
      <div className="panel-head">
        <h2 id="alerts-title">
          Alerts{" "}
          <span
            className="count"
            data-testid="alert-count"
            title="Alerts sent: one per token where rules fired and the cooldown let them through (docs/alerts.md)"
          >
            {alerts.length} sent
          </span>
        </h2>
        <label>
          Show{" "}
          <select value={minimum} onChange={(e) => setMinimum(e.target.value as Severity)} data-testid="alert-severity-filter">
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {s === "info" ? "all severities" : `${SEVERITY_LABEL[s].toLowerCase()}${s === "critical" ? "" : " and above"}`}
              </option>
            ))}
          </select>
        </label>
      </div>
      {alerts.length > 0 && (
        <div className="alerts-nav">
          <span className="meta" data-testid="alert-scope">
            {shown.length === alerts.length ? `${alerts.length} alerts on ${tokens} tokens` : `${shown.length} of ${alerts.length} alerts shown`}
          </span>
          <button type="button" onClick={() => jump(false)} data-testid="next-alert" title="Next alert in token order (key n; shift+n: previous)" disabled={!shown.length}>
            Next alert <kbd>n</kbd>
          </button>
        </div>
      )}
      {newestFirst.length === 0 ? (
        <p className="empty">{alerts.length ? "No alert at this severity." : "No alerts yet."}</p>
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
                  aria-label={`${SEVERITY_LABEL[a.severity]} alert at token ${a.token_seq}: ${rules.map((r) => ruleInfo(r.rule).name).join(", ")}. ${a.message}. Show the token.`}
                  data-testid="alert"
                  data-token-seq={a.token_seq}
                >
                  <span className={`sev sev-${a.severity}`} title="The alert's severity: the most severe of its rules' findings">
                    <span aria-hidden="true">{SEVERITY_ICON[a.severity]}</span> {SEVERITY_LABEL[a.severity]}
                  </span>
                  <span className="alert-rules" data-testid="alert-rules">
                    {rules.map((r) => {
                      const info = ruleInfo(r.rule);
                      return (
                        <span
                          key={r.rule}
                          className={`rule-chip sev-${r.severity}`}
                          title={`${info.name} (${r.rule}, ${SEVERITY_LABEL[r.severity].toLowerCase()}): ${info.help}`}
                          data-testid="rule-chip"
                          data-rule={r.rule}
                          data-severity={r.severity}
                        >
                          {info.name}
                        </span>
                      );
                    })}
                  </span>
                  <span className="alert-pos">
                    token #{a.token_seq} <code>{visibleToken(a.token_text)}</code>
                  </span>
                  <span className="rule-help" data-testid="rule-help">
                    {rules.map((r) => (
                      <span key={r.rule}>
                        <strong>{ruleInfo(r.rule).name}</strong>: {ruleInfo(r.rule).help}
                      </span>
                    ))}
                  </span>
                  <span className="alert-findings" data-testid="alert-findings">
                    {findings.map((f, i) => (
                      <span key={`${f.rule}-${i}`} className={`alert-msg finding sev-${f.severity}`} data-testid="finding">
                        {findings.length > 1 && <span className="finding-rule">{ruleInfo(f.rule).name}: </span>}
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
      {shown.length > MAX_SHOWN && <p className="empty">Showing the newest {MAX_SHOWN}.</p>}
    </section>
  );
});
