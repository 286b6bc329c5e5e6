/**
 * Two or more sessions side by side (the same prompt across seeds or temperatures, or two models):
 * a summary row each, their curves overlaid on one chart, and their texts as heatmaps in columns
 * aligned by token position. `#/compare?ids=a,b,c`. Running sessions are polled until they end.
 */
import { useQueries } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useMemo, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { queryKeys } from "../../../api/queryKeys";
import { TERMINAL_STATUSES, type SessionHistory, type TokenMessage } from "../../../api/types";
import { routeHref, type Params } from "../../../app/router";
import { useServices } from "../../../app/services";
import { fmt, pct, truncate, visibleToken } from "../../../lib/format";
import { band, CHART_METRICS, METRICS, peakRisk, RISK_LABEL, type ChartMetricKey, type HeatMetric } from "../../../lib/metrics";
import { MAX_COMPARE } from "../filters";
import { RiskBadge } from "./RiskBadge";

/** Token positions per heatmap row: every column shows the same positions in a row. */
const BLOCK = 16;
/** One colour per compared session, in the chart, the summary and the column heads. */
const SERIES_VARS = ["--cmp-0", "--cmp-1", "--cmp-2", "--cmp-3", "--cmp-4", "--cmp-5"] as const;

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function parseIds(params: Params): string[] {
  const ids = (params.ids ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return [...new Set(ids)].slice(0, MAX_COMPARE);
}

export function ComparePage({ params, theme }: { params: Params; theme: string }) {
  const ids = parseIds(params);
  const { api } = useServices();
  const results = useQueries({
    queries: ids.map((id) => ({
      queryKey: queryKeys.session(id),
      queryFn: () => api.session(id),
      retry: false,
      refetchInterval: (q: { state: { data?: SessionHistory } }) => (q.state.data && TERMINAL_STATUSES.includes(q.state.data.session.status) ? false : 3000),
    })),
  });
  const [metric, setMetric] = useState<ChartMetricKey>("hbar_s");
  const [smooth, setSmooth] = useState(1);
  const [heat, setHeat] = useState<HeatMetric>("hbar_s");
  const loaded = results.map((r) => r.data ?? null);
  const stamp = results.map((r) => r.dataUpdatedAt).join(",");
  // eslint-disable-next-line react-hooks/exhaustive-deps -- the stamp stands for the query results
  const sessions = useMemo(() => loaded, [stamp]);

  if (ids.length < 2) {
    return (
      <section className="panel compare" data-testid="compare">
        <h2>Compare sessions</h2>
        <p className="empty">
          Pick two to {MAX_COMPARE} sessions in the <a href={routeHref({ page: "sessions", sessionId: null })}>sessions list</a> (the boxes at the left), then
          “Compare”.
        </p>
      </section>
    );
  }

  return (
    <div className="compare" data-testid="compare" data-sessions={ids.length} data-loaded={sessions.filter(Boolean).length}>
      <div className="replay-bar">
        <a href={routeHref({ page: "sessions", sessionId: null })}>← All sessions</a>
        <span className="meta">comparing {ids.length} sessions by token position</span>
      </div>
      <section className="panel" aria-labelledby="cmp-summary-title">
        <h2 id="cmp-summary-title">Summary</h2>
        <div className="table-scroll">
          <table className="compare-summary" data-testid="compare-summary">
            <thead>
              <tr>
                <th scope="col">Session</th>
                <th scope="col">Model</th>
                <th scope="col">Status</th>
                <th scope="col" className="num">
                  Tokens
                </th>
                <th scope="col" title="Highest risk reached (and at the end)">
                  Peak risk
                </th>
                <th scope="col" className="num" title="Calibrated probability that the answer is wrong">
                  P(wrong)
                </th>
                <th scope="col" className="num" title="bits; higher = more uncertain">
                  Mean / max ℏₛ
                </th>
                <th scope="col" className="num" title="higher = the text surprised the model more">
                  Perplexity
                </th>
                <th scope="col" className="num">
                  Alerts sent
                </th>
              </tr>
            </thead>
            <tbody>
              {ids.map((id, i) => (
                <SummaryRow key={id} id={id} index={i} history={sessions[i] ?? null} error={results[i]?.error ?? null} />
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section className="panel" aria-labelledby="cmp-chart-title">
        <div className="panel-head">
          <h2 id="cmp-chart-title">Curves overlaid</h2>
          <label>
            Plot{" "}
            <select value={metric} onChange={(e) => setMetric(e.target.value as ChartMetricKey)} data-testid="compare-metric">
              {CHART_METRICS.map((m) => (
                <option key={m} value={m}>
                  {METRICS[m].label}
                </option>
              ))}
            </select>
          </label>
          <label title="A moving average over this many tokens: trends instead of token-to-token jitter">
            Smooth{" "}
            <select value={smooth} onChange={(e) => setSmooth(Number(e.target.value))} data-testid="compare-smooth">
              {[1, 8, 32, 128].map((w) => (
                <option key={w} value={w}>
                  {w === 1 ? "off" : `${w} tokens`}
                </option>
              ))}
            </select>
          </label>
        </div>
        <CompareChart ids={ids} sessions={sessions} metric={metric} smooth={smooth} theme={theme} />
      </section>
      <section className="panel" aria-labelledby="cmp-heat-title">
        <div className="panel-head">
          <h2 id="cmp-heat-title">Texts side by side</h2>
          <label>
            Colour by{" "}
            <select value={heat} onChange={(e) => setHeat(e.target.value as HeatMetric)} data-testid="compare-heat-metric">
              {(["hbar_s", "entropy", "surprisal", "rank"] as const).map((m) => (
                <option key={m} value={m}>
                  {METRICS[m].label}
                </option>
              ))}
            </select>
          </label>
        </div>
        <CompareHeatmaps ids={ids} sessions={sessions} metric={heat} />
      </section>
    </div>
  );
}

function SummaryRow({ id, index, history, error }: { id: string; index: number; history: SessionHistory | null; error: Error | null }) {
  const swatch = <span className={`cmp-swatch cmp-${index}`} aria-hidden="true" />;
  if (!history) {
    return (
      <tr data-session={id}>
        <th scope="row">
          {swatch} <span className="mono">{id}</span>
        </th>
        <td colSpan={8} className={error ? "error" : "meta"}>
          {error ? `Could not load: ${error.message}` : "loading…"}
        </td>
      </tr>
    );
  }
  const s = history.session;
  const sum = history.summary;
  const peak = sum ? peakRisk(sum) : s.peak_risk;
  return (
    <tr data-session={id} data-testid="compare-row">
      <th scope="row">
        {swatch}{" "}
        <a href={routeHref({ page: "sessions", sessionId: id })} title={s.prompt ?? undefined}>
          {truncate(s.prompt ?? id, 48)}
        </a>
        <div className="meta mono">{id}</div>
      </th>
      <td className="mono">{s.model ?? "—"}</td>
      <td>
        <span className={`status status-${s.status}`}>{s.status}</span>
      </td>
      <td className="num">{history.tokens.length}</td>
      <td>
        <RiskBadge level={peak} />
        {sum && sum.final_risk !== peak && <span className="meta"> end {RISK_LABEL[sum.final_risk]}</span>}
      </td>
      <td className="num">{pct(sum?.p_wrong ?? null)}</td>
      <td className="num">
        {fmt(sum?.mean_hbar_s)} / {fmt(sum?.max_hbar_s)}
      </td>
      <td className="num">{fmt(sum?.perplexity)}</td>
      <td className="num">{s.alerts}</td>
    </tr>
  );
}

interface ChartProps {
  ids: string[];
  sessions: (SessionHistory | null)[];
  metric: ChartMetricKey;
  /** Moving-average window, tokens (1 = raw). */
  smooth: number;
  theme: string;
}

/** The trailing moving average of a column over `w` values (nulls skipped; null where all were null). */
export function movingAverage(col: readonly (number | null)[], w: number): (number | null)[] {
  if (w <= 1) return [...col];
  const out: (number | null)[] = [];
  let sum = 0;
  let n = 0;
  for (let i = 0; i < col.length; i++) {
    const v = col[i];
    if (v !== null && v !== undefined) {
      sum += v;
      n++;
    }
    const old = i >= w ? col[i - w] : null;
    if (old !== null && old !== undefined) {
      sum -= old;
      n--;
    }
    out.push(n > 0 ? sum / n : null);
  }
  return out;
}

/** Every session's curve on one uPlot chart, x = token position (aligned data: null past a session's end). */
function CompareChart({ ids, sessions, metric, smooth, theme }: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const info = METRICS[metric];
    const longest = Math.max(0, ...sessions.map((h) => h?.tokens.length ?? 0));
    const xs = Array.from({ length: longest }, (_, i) => i);
    const ys = sessions.map((h) => {
      const col: (number | null)[] = new Array<number | null>(longest).fill(null);
      for (const t of h?.tokens ?? []) if (t.seq < longest) col[t.seq] = t.metrics[metric] ?? null;
      // past a session's end stays null (no line), whatever the smoothing
      const end = h?.tokens.length ?? 0;
      return movingAverage(col, smooth).map((v, i) => (i < end ? v : null));
    });
    const axis = cssVar("--fg-muted");
    const grid = cssVar("--border");
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 300,
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      legend: { show: true, live: true },
      scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 0) * 1.15 + 0.2)] } },
      axes: [
        { label: "token position", stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { label: `${info.label} (${info.unit})`, stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
      ],
      series: [
        { label: "position", value: (_u, v) => (v === null || v === undefined ? "—" : `#${v}`) },
        ...ids.map((id, i) => ({
          label: truncate(sessions[i]?.session.prompt ?? id, 24) + ` (${id.slice(0, 8)})`,
          stroke: cssVar(SERIES_VARS[i % SERIES_VARS.length]!),
          width: 1.5,
          points: { show: false },
          value: (_u: uPlot, v: number | null) => {
            if (v === null || v === undefined) return "—";
            return `${fmt(v)} ${info.unit}${smooth > 1 ? ` (mean of ${smooth})` : ""}`;
          },
        })),
      ],
    };
    const plot = new uPlot(opts, [xs, ...ys], el);
    el.dataset.points = String(longest);
    el.dataset.series = String(ids.length);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height: 300 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [ids, sessions, metric, smooth, theme]);
  return (
    <>
      <div ref={host} className="chart" data-testid="compare-chart" role="img" aria-label={`${METRICS[metric].label} of each session over token position`} />
      <p className="chart-legend">
        One line per session, coloured as in the summary. {METRICS[metric].help} Drag across the chart to zoom; double-click to reset.
      </p>
    </>
  );
}

/** The texts in columns, BLOCK positions per row: a row shows the same positions of every session. */
function CompareHeatmaps({ ids, sessions, metric }: { ids: string[]; sessions: (SessionHistory | null)[]; metric: HeatMetric }) {
  const scroller = useRef<HTMLDivElement>(null);
  const longest = Math.max(0, ...sessions.map((h) => h?.tokens.length ?? 0));
  const rows = Math.ceil(longest / BLOCK);
  const bySeq = useMemo(
    () =>
      sessions.map((h) => {
        const out: (TokenMessage | undefined)[] = [];
        for (const t of h?.tokens ?? []) out[t.seq] = t;
        return out;
      }),
    [sessions],
  );
  // eslint-disable-next-line react-hooks/incompatible-library -- no React Compiler here; TanStack Virtual's documented use
  const virtualizer = useVirtualizer({
    count: rows,
    getScrollElement: () => scroller.current,
    estimateSize: () => 56,
    overscan: 6,
  });
  const info = METRICS[metric];
  const columns = `4.5em repeat(${ids.length}, minmax(12em, 1fr))`;
  return (
    <div className="compare-heat" data-testid="compare-heatmaps" data-rows={rows}>
      <div className="cmp-head" style={{ gridTemplateColumns: columns }}>
        <span className="meta">position</span>
        {ids.map((id, i) => (
          <span key={id} className="cmp-col-head">
            <span className={`cmp-swatch cmp-${i}`} aria-hidden="true" /> {truncate(sessions[i]?.session.prompt ?? id, 28)}{" "}
            <span className="meta mono">{id.slice(0, 8)}</span>
          </span>
        ))}
      </div>
      <div className="cmp-scroll" ref={scroller}>
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {virtualizer.getVirtualItems().map((row) => {
            const from = row.index * BLOCK;
            return (
              <div
                key={row.key}
                ref={virtualizer.measureElement}
                data-index={row.index}
                className="cmp-row"
                style={{ gridTemplateColumns: columns, transform: `translateY(${row.start}px)` }}
              >
                <span className="cmp-pos meta">#{from}</span>
                {bySeq.map((tokens, i) => (
                  <span key={ids[i]} className="cmp-cell heat" data-testid="compare-cell">
                    {tokens.slice(from, from + BLOCK).map((t, k) => {
                      if (!t) return null;
                      const b = band(t.metrics[metric], info);
                      return (
                        <span
                          key={from + k}
                          className={`tok ${b === null ? "b-na" : `b${b}`}`}
                          title={`#${t.seq} ${visibleToken(t.text)} · ${info.label} ${fmt(t.metrics[metric])} ${info.unit}`}
                        >
                          {t.text === "" ? "∅" : t.text.replace(/\n/g, "↵")}
                        </span>
                      );
                    })}
                  </span>
                ))}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
