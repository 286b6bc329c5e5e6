import type { SessionStore } from "../store/sessionStore";
import { fmt } from "../../../lib/format";
import { RISK_ICON, RISK_LABEL } from "../../../lib/metrics";

interface Props {
  store: SessionStore;
  threshold: number;
}

/** Current ℏₛ, session average, risk level, tokens processed, tokens/s. */
export function MetricCards({ store, threshold }: Props) {
  const current = store.latest?.metrics.hbar_s ?? null;
  const risk = store.risk;
  const rate = store.tokensPerSecond;
  const over = current !== null && current > threshold;
  return (
    <section className="cards" aria-label="Session metrics">
      <div className="card" data-testid="card-current">
        <div className="card-label">Current ℏₛ</div>
        <div className={`card-value${over ? " over" : ""}`}>
          {fmt(current)}
          {over && <span className="card-note"> ▲ above {threshold}</span>}
        </div>
      </div>
      <div className="card" data-testid="card-average">
        <div className="card-label">Session average ℏₛ</div>
        <div className="card-value">{fmt(store.meanHbar)}</div>
      </div>
      <div className={`card risk risk-${risk}`} data-testid="card-risk">
        <div className="card-label">Risk level</div>
        <div className="card-value">
          <span aria-hidden="true" className="risk-icon">
            {RISK_ICON[risk]}
          </span>{" "}
          {RISK_LABEL[risk]}
        </div>
      </div>
      <div className="card" data-testid="card-tokens">
        <div className="card-label">Tokens processed</div>
        <div className="card-value" data-testid="token-count">
          {store.tokenCount}
          {store.expectedTokens !== null && store.expectedTokens !== store.tokenCount && (
            <span className="card-note"> / {store.expectedTokens}</span>
          )}
        </div>
      </div>
      <div className="card" data-testid="card-rate">
        <div className="card-label">Tokens / s</div>
        <div className="card-value">{fmt(rate, 1)}</div>
      </div>
    </section>
  );
}
