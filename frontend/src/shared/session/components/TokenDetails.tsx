/** What one token looked like to the model: its metrics and the top alternatives with the tail mass. */
import type { Severity, TokenMessage } from "../../../api/types";
import { fmt, pct, visibleToken } from "../../../lib/format";
import { alternatives, SEVERITY_ICON, SEVERITY_LABEL } from "../../../lib/metrics";

interface Props {
  token: TokenMessage;
  alert: Severity | undefined;
}

export function TokenDetails({ token, alert }: Props) {
  const m = token.metrics;
  const { items, tail } = alternatives(token.top_k ?? [], token.token_id, token.text);
  // One p for the emitted token in the whole popup: its row's when it is listed (the generator's
  // float32 logprob), else the audit's (from the float16 logits, a few tenths of a percent apart).
  const shownProb = items.find((a) => a.emitted)?.prob ?? m.prob;
  return (
    <div className="token-details" data-testid="token-details">
      <div className="td-head">
        <code className="td-token">{visibleToken(token.text)}</code>
        <span className="td-pos">#{token.seq}</span>
        {alert && (
          <span className={`sev sev-${alert}`}>
            {SEVERITY_ICON[alert]} {SEVERITY_LABEL[alert]} alert
          </span>
        )}
      </div>
      <dl className="td-metrics">
        <dt title="ℏₛ = √(entropy × surprisal), bits; higher = more uncertain">ℏₛ</dt>
        <dd>{fmt(m.hbar_s)} bits</dd>
        <dt title="Probability of the emitted token">p</dt>
        <dd>{pct(shownProb)}</dd>
        <dt>entropy</dt>
        <dd>{fmt(m.entropy)} bits</dd>
        <dt>surprisal</dt>
        <dd>{fmt(m.surprisal)} bits</dd>
        <dt title="1 + tokens the model found more likely (1 = its first choice)">rank</dt>
        <dd>{m.rank ?? "—"}</dd>
        <dt title="p(most likely) − p(second): higher = more decided">margin</dt>
        <dd>{fmt(m.margin, 3)}</dd>
      </dl>
      {!m.exact && m.coverage !== null && <p className="td-note">Estimated from the top-k only (coverage {pct(m.coverage)}).</p>}
      {items.length > 0 ? (
        <table className="td-alts" data-testid="alternatives">
          <caption>Top alternatives</caption>
          <thead>
            <tr>
              <th scope="col">token</th>
              <th scope="col">p</th>
            </tr>
          </thead>
          <tbody>
            {items.map((a, i) => (
              <tr key={i} className={a.emitted ? "emitted" : undefined}>
                <td>
                  <code>{visibleToken(a.text)}</code>
                  {a.emitted && <span className="td-chosen"> ← chosen</span>}
                </td>
                <td className="td-p">
                  <span className="bar" style={{ width: `${Math.max(1, a.prob * 100)}%` }} aria-hidden="true" />
                  {pct(a.prob)}
                </td>
              </tr>
            ))}
            <tr className="tail">
              <td>rest of the vocabulary (1 − Σp)</td>
              <td className="td-p">{pct(tail)}</td>
            </tr>
          </tbody>
        </table>
      ) : (
        <p className="td-note">No alternatives were recorded for this token.</p>
      )}
    </div>
  );
}
