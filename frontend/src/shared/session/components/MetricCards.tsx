import type { ModelCalibration } from "../../../api/types";
import type { SessionStore } from "../store/sessionStore";
import { fmt, pct } from "../../../lib/format";
import { RISK_HELP, RISK_ICON, RISK_LABEL } from "../../../lib/metrics";
import { calibrationOf, CalibrationLabel } from "./Calibration";

interface Props {
  store: SessionStore;
  threshold: number;
  /** GET /config's calibration per model (says whether the session's model is calibrated before the alerter does). */
  calibration?: Record<string, ModelCalibration>;
}

/** Current ℏₛ, session average, risk level (with why, P(wrong) and calibration), tokens processed, tokens/s. */
export function MetricCards({ store, threshold, calibration }: Props) {
  const current = store.latest?.metrics.hbar_s ?? null;
  const rate = store.tokensPerSecond;
  const over = current !== null && current > threshold;
  return (
    <section className="cards" aria-label="Session metrics">
      <div className="card" data-testid="card-current" title={HBAR_HELP}>
        <div className="card-label">
          Current ℏₛ <span className="unit">bits · higher = more uncertain</span>
        </div>
        <div className={`card-value${over ? " over" : ""}`}>
          {fmt(current)}
          {over && <span className="card-note"> ▲ above the alert threshold {fmt(threshold)}</span>}
        </div>
      </div>
      <div className="card" data-testid="card-average" title={HBAR_HELP}>
        <div className="card-label">
          Session average ℏₛ <span className="unit">bits</span>
        </div>
        <div className="card-value">{fmt(store.meanHbar)}</div>
      </div>
      <RiskCard store={store} calibration={calibration} />
      <div className="card" data-testid="card-tokens">
        <div className="card-label">Tokens processed</div>
        <div className="card-value" data-testid="token-count">
          {store.tokenCount}
          {store.expectedTokens !== null && store.expectedTokens !== store.tokenCount && (
            <span className="card-note"> / {store.expectedTokens}</span>
          )}
        </div>
      </div>
      <div className="card" data-testid="card-rate" title="Tokens audited per second over the last few seconds">
        <div className="card-label">Tokens / s</div>
        <div className="card-value">{fmt(rate, 1)}</div>
      </div>
    </section>
  );
}

export const HBAR_HELP =
  "ℏₛ (semantic uncertainty) = √(entropy × surprisal) of a token, in bits: high when the model was unsure among many tokens AND wrote an unlikely one. Higher = more uncertain; 0 = certain.";

export const GNLL_TITLE =
  "G-NLL of the answer: the sum of surprisal of the answer span (its first line or sentence), −log₂ p(answer) in bits: higher = less likely";

/**
 * The risk level, or "—" (waiting) before anything was judged; under it the latest risk change's
 * reason (a sentence naming its evidence), the calibrated P(wrong) when known (live from the
 * alerter's scores while the session runs, the summary's once it ended), the answer's G-NLL, the
 * peak when it was higher, and whether the risk is calibrated.
 */
export function RiskCard({ store, calibration }: Omit<Props, "threshold">) {
  const level = store.riskLevel;
  const latest = store.latestRisk;
  const peak = store.peakRisk;
  const pWrong = store.pWrong;
  const gnll = store.answerScores?.gnll ?? null;
  const info = calibrationOf({ summary: store.summary, latestRisk: latest, model: store.model, calibration });
  return (
    <div className={`card risk risk-${level ?? "waiting"}`} data-testid="card-risk" data-level={level ?? "waiting"}>
      <div className="card-label">
        Risk level <CalibrationLabel info={info} />
      </div>
      <div className="card-value" data-testid="risk-level">
        {level === null ? (
          <>
            — <span className="card-note">{store.terminal ? "no token to judge" : "waiting for the first token"}</span>
          </>
        ) : (
          <>
            <span aria-hidden="true" className="risk-icon">
              {RISK_ICON[level]}
            </span>{" "}
            {RISK_LABEL[level]}
            {peak !== null && (
              <span className="card-note" data-testid="risk-peak">
                {" "}
                · peak {RISK_LABEL[peak]}
              </span>
            )}
          </>
        )}
      </div>
      {(pWrong !== null || gnll !== null) && (
        <div className="risk-stats">
          {pWrong !== null && (
            <span className="risk-pwrong" data-testid="p-wrong" title="Calibrated probability that the answer is wrong">
              P(wrong) <strong>{pct(pWrong, 1)}</strong>
            </span>
          )}
          {gnll !== null && (
            <span className="risk-gnll" data-testid="answer-gnll" title={GNLL_TITLE}>
              answer −log₂p = <strong>{fmt(gnll, 1)}</strong> bits
              {!store.answerComplete && <span className="card-note"> so far</span>}
            </span>
          )}
        </div>
      )}
      {level !== null && (
        <p className="risk-reason" data-testid="risk-reason" title={RISK_HELP[level]}>
          {latest?.reason ??
            (level === "safe"
              ? info?.calibrated
                ? "Nothing so far suggests a wrong answer: the answer's calibrated P(wrong) and the session's scores are within the model's usual range."
                : "No rule has raised the risk (uncalibrated model: the level follows the alerts' severities)."
              : RISK_HELP[level])}
        </p>
      )}
    </div>
  );
}
