/**
 * One session in every view: metric cards, chart, token heatmap and alerts. Live and replay alike.
 * The alerts panel is the alerts feature's: the app passes it in (features do not import each other).
 */
import { useCallback, useState } from "react";
import type { ComponentType, ReactNode } from "react";
import type { AlertMessage } from "../../../api/types";
import { useServerConfig } from "../../../app/services";
import { copyText } from "../../../lib/clipboard";
import { CHART_METRICS, METRICS, type ChartMetricKey, type HeatMetric } from "../../../lib/metrics";
import type { SessionStore } from "../store/sessionStore";
import { useStoreVersion } from "../store/useStore";
import { MetricCards } from "./MetricCards";
import { RiskStrip } from "./RiskStrip";
import { SessionOutcome } from "./SessionOutcome";
import { SessionSummary } from "./SessionSummary";
import { TokenHeatmap } from "./TokenHeatmap";
import { TokenHistory } from "./TokenHistory";
import { UncertaintyChart } from "./UncertaintyChart";

/** What the view hands the alerts panel beside the tokens. */
export interface AlertsPanelProps {
  /** The store's alert list (mutated in place as alerts arrive). */
  alerts: readonly AlertMessage[];
  /** Its length: re-render only when it changes, not on every token. */
  count: number;
  selected: number | null;
  onSelect: (tokenSeq: number) => void;
}

/** What a page may add to a session's view. */
export interface SessionViewOptions {
  /** A token to select once it has arrived (a link to a token). */
  initialToken?: number | null;
  /** A shareable link to one token of this session; with it, a selected token offers "Copy link". */
  tokenLink?: (seq: number) => string;
}

/** How a page shows a session: the app builds it (SessionView with the alerts panel) and hands it to the pages. */
export type RenderSession = (store: SessionStore, options?: SessionViewOptions) => ReactNode;

interface Props extends SessionViewOptions {
  store: SessionStore;
  theme: string;
  AlertsPanel: ComponentType<AlertsPanelProps>;
}

const HEAT_METRICS: HeatMetric[] = ["hbar_s", "entropy", "surprisal", "rank"];

export function SessionView({ store, theme, AlertsPanel, initialToken = null, tokenLink }: Props) {
  const version = useStoreVersion(store);
  const { config } = useServerConfig();
  // The rule's ℏₛ threshold for this session's model (relative to its profile), else the default model's.
  const threshold = (store.model ? config.calibration[store.model]?.thresholds.hbar_s : undefined) ?? config.thresholds.hbar_s;
  const [chartMetric, setChartMetric] = useState<ChartMetricKey>("hbar_s");
  const [heatMetric, setHeatMetric] = useState<HeatMetric>("hbar_s");
  const [selected, setSelected] = useState<number | null>(null);
  const select = useCallback((seq: number | null) => setSelected(seq), []);
  // A linked token is selected once it is there (a snapshot or the stream brings it).
  const [pendingToken, setPendingToken] = useState(initialToken);
  if (pendingToken !== null && store.tokens[pendingToken]) {
    setSelected(pendingToken);
    setPendingToken(null);
  }
  const [linkCopied, setLinkCopied] = useState<string | null>(null);
  const copyTokenLink = async (seq: number) => {
    const ok = tokenLink ? await copyText(tokenLink(seq)) : false;
    setLinkCopied(ok ? `link to token #${seq} copied` : "the browser refused the clipboard");
  };
  const live = !store.terminal;
  const summary = store.summary;

  if (store.notFound) {
    return (
      <div className="session-view not-found panel" data-testid="session-not-found" data-session={store.sessionId}>
        <h2>No session {store.sessionId}</h2>
        <p>
          The gateway knows no session with this id: it was deleted, expired from the history, or the link is mistyped. <a href="#/sessions">All sessions</a>
        </p>
      </div>
    );
  }

  return (
    <div className="session-view" data-status={store.status ?? "unknown"} data-session={store.sessionId}>
      <div className="session-meta">
        <span className={`status status-${store.status ?? "unknown"}`} data-testid="session-status">
          {store.replay && store.status === "started" ? "▶ Replaying" : statusText(store.status)}
        </span>
        {store.model && <span className="meta">model {store.model}</span>}
        {store.reason && store.status !== "failed" && <span className="meta">ended: {store.reason}</span>}
        <span className="meta mono">session {store.sessionId}</span>
        {store.error && (
          <span className="meta error" role="alert">
            {store.error}
          </span>
        )}
      </div>
      {store.prompt && (
        <p className="prompt-echo">
          <span className="label">Prompt</span> {store.prompt}
        </p>
      )}
      <SessionOutcome status={store.status} reason={store.reason} expectedTokens={store.expectedTokens} tokenCount={store.tokenCount} />
      <MetricCards store={store} threshold={threshold} calibration={config.calibration} />
      {summary && <SessionSummary summary={summary} model={store.model} calibration={config.calibration} />}
      <div className="grid">
        <div className="main-col">
          <section className="panel" aria-labelledby="text-title">
            <div className="panel-head">
              <h2 id="text-title">Text, token by token</h2>
              <label>
                Colour by{" "}
                <select value={heatMetric} onChange={(e) => setHeatMetric(e.target.value as HeatMetric)} data-testid="heat-metric">
                  {HEAT_METRICS.map((m) => (
                    <option key={m} value={m}>
                      {METRICS[m].label}
                    </option>
                  ))}
                </select>
              </label>
              {tokenLink && selected !== null && (
                <button
                  type="button"
                  onClick={() => void copyTokenLink(selected)}
                  data-testid="copy-token-link"
                  title="Copy a link that opens this session with this token selected"
                >
                  Copy link to token #{selected}
                </button>
              )}
              {linkCopied && (
                <span className="meta" role="status" data-testid="token-link-status">
                  {linkCopied}
                </span>
              )}
            </div>
            <TokenHeatmap store={store} version={version} metric={heatMetric} selected={selected} onSelect={select} follow={live} />
          </section>
          <section className="panel" aria-labelledby="chart-title">
            <div className="panel-head">
              <h2 id="chart-title">Uncertainty over tokens</h2>
              <label>
                Plot{" "}
                <select value={chartMetric} onChange={(e) => setChartMetric(e.target.value as ChartMetricKey)} data-testid="chart-metric">
                  {CHART_METRICS.map((m) => (
                    <option key={m} value={m}>
                      {METRICS[m].label}
                    </option>
                  ))}
                </select>
              </label>
            </div>
            <UncertaintyChart store={store} metric={chartMetric} threshold={threshold} theme={theme} onSelectToken={select} />
            <RiskStrip risks={store.risks} count={store.risks.length} tokenCount={store.tokenCount} />
          </section>
          {/* Token history (issue 17): the same tokens as a sortable, copyable table, linked by the one selection. */}
          <section className="panel" aria-labelledby="history-title">
            <div className="panel-head">
              <h2 id="history-title">Token history</h2>
            </div>
            <TokenHistory tokens={store.tokens} alerts={store.alerts} version={version} selected={selected} onSelect={select} />
          </section>
        </div>
        <AlertsPanel alerts={store.alerts} count={store.alerts.length} selected={selected} onSelect={select} />
      </div>
    </div>
  );
}

function statusText(s: string | null): string {
  switch (s) {
    case null:
      return "⋯ Connecting";
    case "queued":
      return "◷ Queued";
    case "started":
      return "● Generating";
    case "finished":
      return "✓ Finished";
    case "failed":
      return "✕ Failed";
    case "cancelled":
      return "■ Cancelled";
    default:
      return s;
  }
}
