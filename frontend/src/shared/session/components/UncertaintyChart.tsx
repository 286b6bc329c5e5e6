/**
 * ℏₛ (or entropy, or surprisal) over token position, with the alert threshold as a line and alerts
 * marked on the curve. uPlot, fed from the store's ring buffer and redrawn at most once per
 * animation frame, however fast tokens arrive.
 */
import { useEffect, useLayoutEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Severity } from "../../../api/types";
import { METRICS, type ChartMetricKey } from "../../../lib/metrics";
import { fmt, visibleToken } from "../../../lib/format";
import type { SessionStore } from "../store/sessionStore";

interface Props {
  store: SessionStore;
  metric: ChartMetricKey;
  threshold: number;
  theme: string;
  onSelectToken: (seq: number) => void;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

const SEVERITY_VAR: Record<Severity, string> = {
  info: "--sev-info",
  warning: "--sev-warning",
  critical: "--sev-critical",
};

export function UncertaintyChart({ store, metric, threshold, theme, onSelectToken }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const onSelect = useRef(onSelectToken);
  useLayoutEffect(() => {
    onSelect.current = onSelectToken;
  });

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const info = METRICS[metric];
    const showThreshold = metric === "hbar_s";
    const colors = {
      line: cssVar("--chart-line"),
      fill: cssVar("--chart-fill"),
      axis: cssVar("--fg-muted"),
      grid: cssVar("--border"),
      threshold: cssVar("--sev-critical"),
      background: cssVar("--panel"),
    };
    const severityColor: Record<Severity, string> = {
      info: cssVar(SEVERITY_VAR.info),
      warning: cssVar(SEVERITY_VAR.warning),
      critical: cssVar(SEVERITY_VAR.critical),
    };

    const markers: uPlot.Plugin = {
      hooks: {
        draw: [
          (u) => {
            const ctx = u.ctx;
            const { left, top, width, height } = u.bbox;
            ctx.save();
            ctx.beginPath();
            ctx.rect(left, top, width, height);
            ctx.clip();
            if (showThreshold) {
              const y = u.valToPos(threshold, "y", true);
              ctx.strokeStyle = colors.threshold;
              ctx.lineWidth = 1.5 * devicePixelRatio;
              ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
              ctx.beginPath();
              ctx.moveTo(left, y);
              ctx.lineTo(left + width, y);
              ctx.stroke();
              ctx.setLineDash([]);
            }
            // Alert markers: a triangle on the curve at the alerted token, coloured by severity.
            const xMin = u.scales.x?.min ?? 0;
            const xMax = u.scales.x?.max ?? 0;
            const r = 5 * devicePixelRatio;
            for (const [seq, sev] of store.alertByToken) {
              if (seq < xMin || seq > xMax) continue;
              const v = store.tokens[seq]?.metrics[metric];
              if (v === null || v === undefined) continue;
              const x = u.valToPos(seq, "x", true);
              const y = u.valToPos(v, "y", true);
              ctx.fillStyle = severityColor[sev];
              ctx.strokeStyle = colors.axis;
              ctx.lineWidth = devicePixelRatio;
              // Above the point, pointing down at it; below it, pointing up, where the top is near.
              const dir = y - r * 3.2 < top ? -1 : 1;
              ctx.beginPath();
              ctx.moveTo(x, y - dir * r * 1.6);
              ctx.lineTo(x - r, y - dir * r * 3.2);
              ctx.lineTo(x + r, y - dir * r * 3.2);
              ctx.closePath();
              ctx.fill();
              ctx.stroke();
            }
            if (showThreshold) {
              // The label last, at the right end on a background, so no marker covers it.
              const y = u.valToPos(threshold, "y", true);
              const label = `alert threshold ${fmt(threshold)} bits`;
              ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
              const w = ctx.measureText(label).width + 8 * devicePixelRatio;
              const h = 15 * devicePixelRatio;
              const x = left + width - w - 4 * devicePixelRatio;
              ctx.fillStyle = colors.background;
              ctx.globalAlpha = 0.85;
              ctx.fillRect(x, y - h - 2 * devicePixelRatio, w, h);
              ctx.globalAlpha = 1;
              ctx.fillStyle = colors.threshold;
              ctx.textAlign = "left";
              ctx.textBaseline = "bottom";
              ctx.fillText(label, x + 4 * devicePixelRatio, y - 4 * devicePixelRatio);
            }
            ctx.restore();
          },
        ],
      },
    };

    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 260,
      plugins: [markers],
      cursor: { drag: { x: true, y: false }, points: { size: 7 } },
      legend: { show: true, live: true },
      scales: {
        x: { time: false },
        y: {
          range: (_u, _min, max) => [0, Math.max(showThreshold ? threshold * 1.3 : 1, (max ?? 0) * 1.15 + 0.2)],
        },
      },
      axes: [
        {
          label: "token position",
          stroke: colors.axis,
          incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000],
          grid: { stroke: colors.grid, width: 1 },
          ticks: { stroke: colors.grid },
        },
        {
          label: `${info.label} (${info.unit})`,
          stroke: colors.axis,
          grid: { stroke: colors.grid, width: 1 },
          ticks: { stroke: colors.grid },
        },
      ],
      series: [
        {
          label: "token",
          // the hovered token: its position and its text
          value: (_u, v) =>
            v === null || v === undefined ? "—" : `#${v} ${visibleToken(store.tokens[v]?.text ?? "")}`,
        },
        {
          label: info.label,
          stroke: colors.line,
          fill: colors.fill,
          width: 1.5,
          points: { show: false },
          value: (_u, v) => (v === null || v === undefined ? "—" : `${fmt(v)} ${info.unit}`),
        },
      ],
    };

    const plot = new uPlot(opts, [[], []], el);
    // Where the plotting area is, for what is drawn aligned with it below the chart (the risk strip).
    const publishArea = () => {
      const area = el.parentElement;
      if (!area) return;
      area.style.setProperty("--plot-left", `${plot.bbox.left / devicePixelRatio}px`);
      area.style.setProperty("--plot-width", `${plot.bbox.width / devicePixelRatio}px`);
    };
    publishArea();
    plot.over.addEventListener("click", () => {
      const idx = plot.cursor.idx;
      if (idx === null || idx === undefined) return;
      const seq = plot.data[0][idx];
      if (typeof seq === "number") onSelect.current(seq);
    });

    let drawn = -1;
    let frame: number | null = null;
    const draw = () => {
      frame = null;
      if (drawn === store.version) return;
      drawn = store.version;
      const xs = store.chart.column("seq");
      const ys = store.chart.column(metric).map((v) => (Number.isNaN(v) ? null : v));
      plot.setData([xs, ys]);
      publishArea();
      el.dataset.points = String(xs.length);
      el.dataset.frames = String(Number(el.dataset.frames ?? 0) + 1);
    };
    const schedule = () => {
      if (frame === null) frame = requestAnimationFrame(draw);
    };
    schedule();
    const off = store.subscribe(schedule);
    const ro = new ResizeObserver(() => {
      plot.setSize({ width: Math.max(200, el.clientWidth), height: 260 });
      publishArea();
    });
    ro.observe(el);
    return () => {
      off();
      ro.disconnect();
      if (frame !== null) cancelAnimationFrame(frame);
      plot.destroy();
    };
  }, [store, metric, threshold, theme]);

  return (
    <>
      <div ref={host} className="chart" data-testid="chart" role="img" aria-label={`${METRICS[metric].label} over token position`} />
      <p className="chart-legend" data-testid="chart-legend">
        <span className="legend-marker sev-info" aria-hidden="true">▼</span>
        <span className="legend-marker sev-warning" aria-hidden="true">▼</span>
        <span className="legend-marker sev-critical" aria-hidden="true">▼</span> an alert at that token (colour: severity info,
        warning, critical)
        {metric === "hbar_s" && <> · dashed line: the ℏₛ alert threshold for this model</>} · {METRICS[metric].help}
      </p>
    </>
  );
}
