/**
 * Alerts sent (the entries on uq:alerts, after the cooldown), newest first; severity by colour, glyph
 * and label. Clicking one jumps to its token.
 */
import { memo } from "react";
import type { AlertMessage } from "../../../api/types";
import { visibleToken } from "../../../lib/format";
import { SEVERITY_ICON, SEVERITY_LABEL } from "../../../lib/metrics";

interface Props {
  /** The store's alert list (mutated in place as alerts arrive). */
  alerts: readonly AlertMessage[];
  /** Its length: re-render only when it changes, not on every token. */
  count: number;
  selected: number | null;
  onSelect: (tokenSeq: number) => void;
}

const MAX_SHOWN = 500;

export const AlertsPanel = memo(function AlertsPanel({ alerts, selected, onSelect }: Props) {
  const newestFirst = alerts.slice(-MAX_SHOWN).reverse();
  return (
    <section className="panel alerts" aria-labelledby="alerts-title">
      <h2 id="alerts-title">
        Alerts sent{" "}
        <span className="count" title="Alerts sent: rule firings the cooldown let through (docs/alerts.md)">
          {alerts.length}
        </span>
      </h2>
      {newestFirst.length === 0 ? (
        <p className="empty">No alerts yet.</p>
      ) : (
        <ol className="alert-list" data-testid="alerts">
          {newestFirst.map((a) => (
            <li key={a.seq}>
              <button
                type="button"
                className={`alert-item sev-${a.severity}${a.token_seq === selected ? " selected" : ""}`}
                onClick={() => onSelect(a.token_seq)}
                aria-label={`${SEVERITY_LABEL[a.severity]} ${a.rule} at token ${a.token_seq}: ${a.message}. Show the token.`}
              >
                <span className={`sev sev-${a.severity}`}>
                  <span aria-hidden="true">{SEVERITY_ICON[a.severity]}</span> {SEVERITY_LABEL[a.severity]}
                </span>
                <span className="alert-rule">{a.rule}</span>
                <span className="alert-pos">
                  #{a.token_seq} <code>{visibleToken(a.token_text)}</code>
                </span>
                <span className="alert-msg">{a.message}</span>
              </button>
            </li>
          ))}
        </ol>
      )}
      {alerts.length > MAX_SHOWN && <p className="empty">Showing the newest {MAX_SHOWN}.</p>}
    </section>
  );
});
