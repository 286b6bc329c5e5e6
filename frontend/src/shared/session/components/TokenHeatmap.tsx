/**
 * The generated text, each token coloured by the chosen metric (GLTR-like), virtualised by rows so
 * a 5,000-token session renders only what is on screen. Tokens in the top bands are also underlined
 * and marked, and alerted tokens carry the alert's glyph: colour is never the only cue.
 *
 * Keyboard: Tab into the text, ←/→ move token by token, Home/End jump, Enter pins the details,
 * Escape unpins. Hover or focus shows the details next to the token.
 */
import { useVirtualizer } from "@tanstack/react-virtual";
import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import type { KeyboardEvent as ReactKeyboardEvent, MouseEvent as ReactMouseEvent } from "react";
import type { Severity, TokenMessage } from "../../../api/types";
import { band, bandLabel, METRICS, SEVERITY_ICON, SEVERITY_LABEL, type HeatMetric } from "../../../lib/metrics";
import type { SessionStore } from "../store/sessionStore";
import { rowOf, rowStarts } from "./chunks";
import { TokenDetails } from "./TokenDetails";

const POPUP_HEIGHT = 460; // px: the token popup's height with ten alternatives

interface Props {
  store: SessionStore;
  version: number;
  metric: HeatMetric;
  /** The token to show, scroll to and highlight (from an alert or the chart), or null. */
  selected: number | null;
  onSelect: (seq: number | null) => void;
  follow: boolean;
}

function tokenLabel(t: TokenMessage, b: number | null, alert: Severity | undefined, metric: HeatMetric): string {
  const info = METRICS[metric];
  const v = t.metrics[metric];
  const parts = [`token ${t.seq}: ${JSON.stringify(t.text)}`, `${info.label} ${v === null ? "unknown" : v.toFixed(2)}`];
  if (b !== null && b >= 3) parts.push("high uncertainty");
  if (alert) parts.push(`${SEVERITY_LABEL[alert]} alert`);
  return parts.join(", ");
}

const Row = memo(function Row({
  tokens,
  from,
  to,
  metric,
  alerts,
  active,
  selected,
}: {
  tokens: readonly (TokenMessage | undefined)[];
  from: number;
  to: number;
  metric: HeatMetric;
  alerts: ReadonlyMap<number, Severity>;
  active: number;
  selected: number | null;
  /** Changes when the row's content may have changed. */
  stamp: string;
}) {
  const info = METRICS[metric];
  const out = [];
  for (let s = from; s < to; s++) {
    const t = tokens[s];
    if (!t) {
      out.push(
        <span key={s} className="tok missing" title={`token ${s} not received yet`}>
          …
        </span>,
      );
      continue;
    }
    const b = band(t.metrics[metric], info);
    const alert = alerts.get(s);
    const cls = ["tok", b === null ? "b-na" : `b${b}`];
    if (b !== null && b >= 3) cls.push("worst");
    if (b === 4) cls.push("worst-top");
    if (alert) cls.push(`alerted sev-${alert}`);
    if (s === selected) cls.push("selected");
    const text = t.text.replace(/\n/g, "↵\n");
    out.push(
      <span
        key={s}
        className={cls.join(" ")}
        data-seq={s}
        role="button"
        tabIndex={s === active ? 0 : -1}
        aria-label={tokenLabel(t, b, alert, metric)}
        aria-pressed={s === selected}
      >
        {text === "" ? "∅" : text}
        {alert && (
          <sup className="tok-alert" aria-hidden="true">
            {SEVERITY_ICON[alert]}
          </sup>
        )}
      </span>,
    );
  }
  return <>{out}</>;
});

export function TokenHeatmap({ store, version, metric, selected, onSelect, follow }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  const wrapper = useRef<HTMLDivElement>(null);
  const [active, setActive] = useState(0);
  const [hover, setHover] = useState<{ seq: number; x: number; y: number; below: boolean } | null>(null);
  const [focusPos, setFocusPos] = useState<{ x: number; y: number; below: boolean } | null>(null);
  const atBottom = useRef(true);

  const tokens = store.tokens;
  const count = tokens.length;
  // The token array is mutated in place; `version` says when it changed.
  // eslint-disable-next-line react-hooks/exhaustive-deps -- count and version stand for the in-place mutations
  const starts = useMemo(() => rowStarts(tokens), [tokens, count, version]);

  // eslint-disable-next-line react-hooks/incompatible-library -- no React Compiler here; TanStack Virtual's documented use
  const virtualizer = useVirtualizer({
    count: starts.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 30,
    overscan: 8,
  });

  // Follow the end of the text while live, unless the user scrolled up.
  // (A plain scrollTop write: cheaper than the virtualizer's scrollToIndex, which re-checks over
  // several frames, and this runs on every frame while tokens stream in.)
  useLayoutEffect(() => {
    const el = scroller.current;
    if (follow && atBottom.current && el && el.scrollHeight > el.clientHeight) el.scrollTop = el.scrollHeight;
  }, [follow, version]);

  // Scroll to and focus the selected token (an alert or a chart click chose it).
  useEffect(() => {
    if (selected === null) return;
    const row = rowOf(starts, selected);
    if (row < 0) return;
    setActive(selected);
    atBottom.current = false;
    virtualizer.scrollToIndex(row, { align: "center" });
    let tries = 0;
    const focus = () => {
      const el = scroller.current?.querySelector<HTMLElement>(`[data-seq="${selected}"]`);
      if (el) {
        el.focus({ preventScroll: true });
        el.scrollIntoView({ block: "nearest" });
      } else if (tries++ < 10) requestAnimationFrame(focus);
    };
    requestAnimationFrame(focus);
    // Only a new selection scrolls; rows growing underneath must not pull the view back.
    // eslint-disable-next-line react-hooks/exhaustive-deps -- deliberately on the selection alone (above)
  }, [selected]);

  const place = useCallback((el: HTMLElement) => {
    const r = el.getBoundingClientRect();
    const w = wrapper.current?.getBoundingClientRect();
    if (!w) return null;
    // Below the token when the popup (up to ~460 px with ten alternatives) fits there, else above it
    // when there is more room above: near the bottom of the window it flips up rather than being cut.
    const room = window.innerHeight - r.bottom;
    const below = room >= POPUP_HEIGHT || room >= r.top;
    return { x: r.left - w.left, y: below ? r.bottom - w.top + 4 : r.top - w.top - 4, below };
  }, []);

  const seqOf = (target: EventTarget | null): number | null => {
    const el = (target as HTMLElement | null)?.closest?.("[data-seq]") as HTMLElement | null;
    return el ? Number(el.dataset.seq) : null;
  };

  const onMouseOver = (e: ReactMouseEvent) => {
    const seq = seqOf(e.target);
    if (seq === null) return;
    if (hover?.seq === seq) return;
    const p = place((e.target as HTMLElement).closest("[data-seq]") as HTMLElement);
    if (p) setHover({ seq, ...p });
  };

  const moveTo = (seq: number) => {
    const s = Math.max(0, Math.min(count - 1, seq));
    setActive(s);
    virtualizer.scrollToIndex(rowOf(starts, s), { align: "auto" });
    requestAnimationFrame(() => scroller.current?.querySelector<HTMLElement>(`[data-seq="${s}"]`)?.focus());
  };

  const onKeyDown = (e: ReactKeyboardEvent) => {
    const keys: Record<string, () => void> = {
      ArrowRight: () => moveTo(active + 1),
      ArrowLeft: () => moveTo(active - 1),
      ArrowDown: () => moveTo(starts[rowOf(starts, active) + 1] ?? count - 1),
      ArrowUp: () => moveTo(starts[rowOf(starts, active) - 1] ?? 0),
      Home: () => moveTo(0),
      End: () => moveTo(count - 1),
      Enter: () => onSelect(selected === active ? null : active),
      " ": () => onSelect(selected === active ? null : active),
      Escape: () => onSelect(null),
    };
    const f = keys[e.key];
    if (f) {
      e.preventDefault();
      f();
    }
  };

  const onFocus = (e: React.FocusEvent) => {
    const seq = seqOf(e.target);
    if (seq === null) return;
    setActive(seq);
    setFocusPos(place(e.target as HTMLElement));
  };

  useLayoutEffect(() => {
    if (active >= count && count > 0) setActive(count - 1);
  }, [active, count]);

  const shown = hover?.seq ?? (focusPos ? active : null);
  const shownPos = hover ?? focusPos;
  const shownToken = shown !== null ? tokens[shown] : undefined;
  const info = METRICS[metric];

  return (
    <div className="heatmap-wrap" ref={wrapper}>
      <div className="legend" aria-label={`Colour legend: ${info.label}`}>
        <span className="legend-title" title={info.help}>
          {info.label}
          {info.unit && ` (${info.unit})`}:
        </span>
        {[0, 1, 2, 3, 4].map((b) => (
          <span key={b} className={`tok b${b}${b >= 3 ? " worst" : ""}${b === 4 ? " worst-top" : ""} legend-swatch`}>
            {bandLabel(info, b)}
          </span>
        ))}
        <span className="legend-note">
          <span className="tok worst legend-swatch-inline">underlined</span> = high band,{" "}
          <span aria-hidden="true">▲</span> = highest band, ℹ/⚠/✖ = alert
        </span>
      </div>
      <div
        ref={scroller}
        className="heatmap"
        data-testid="heatmap"
        data-contiguous={store.contiguous}
        data-count={store.tokenCount}
        aria-label="Generated text, coloured by uncertainty"
        role="group"
        onMouseOver={onMouseOver}
        onMouseLeave={() => setHover(null)}
        onClick={(e) => {
          const seq = seqOf(e.target);
          if (seq !== null) onSelect(seq === selected ? null : seq);
        }}
        onKeyDown={onKeyDown}
        onFocus={onFocus}
        onBlur={(e) => {
          if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setFocusPos(null);
        }}
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
          if (hover) setHover(null);
        }}
      >
        {count === 0 ? (
          <p className="empty">{follow ? "No tokens yet." : "No tokens."}</p>
        ) : (
          <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {virtualizer.getVirtualItems().map((vi) => {
              const from = starts[vi.index]!;
              const to = starts[vi.index + 1] ?? count;
              const hasSel = selected !== null && selected >= from && selected < to;
              const hasActive = active >= from && active < to;
              const filled = to - from - countMissing(tokens, from, to);
              return (
                <div
                  key={vi.key}
                  data-index={vi.index}
                  ref={virtualizer.measureElement}
                  className="heat-row"
                  style={{ position: "absolute", top: 0, left: 0, right: 0, transform: `translateY(${vi.start}px)` }}
                >
                  <Row
                    tokens={tokens}
                    from={from}
                    to={to}
                    metric={metric}
                    alerts={store.alertByToken}
                    active={hasActive ? active : -1}
                    selected={hasSel ? selected : null}
                    stamp={`${filled}:${store.alerts.length}`}
                  />
                </div>
              );
            })}
          </div>
        )}
      </div>
      {shownToken && shownPos && (
        <div
          className={`popover${shownPos.below ? "" : " above"}`}
          style={{ left: Math.max(0, Math.min(shownPos.x, (wrapper.current?.clientWidth ?? 400) - 320)), top: shownPos.y }}
          role="tooltip"
        >
          <TokenDetails token={shownToken} alert={store.alertByToken.get(shownToken.seq)} />
        </div>
      )}
    </div>
  );
}

function countMissing(tokens: readonly (TokenMessage | undefined)[], from: number, to: number): number {
  let n = 0;
  for (let s = from; s < to; s++) if (!tokens[s]) n++;
  return n;
}
