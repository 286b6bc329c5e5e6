/**
 * Token history (the original README's): every token with its probability and uncertainty, sortable by
 * any column, copyable as tab-separated text, virtualised (a 5,000-token session renders a screenful of
 * rows), and linked both ways with the heatmap and the chart through the view's one selection: a row's
 * click selects its token there; a token selected there scrolls here to its row.
 */
import { useVirtualizer } from "@tanstack/react-virtual";
import { memo, useEffect, useMemo, useRef, useState } from "react";
import type { AlertMessage, TokenMessage } from "../../../api/types";
import { copyText } from "../../../lib/clipboard";
import { fmt, pct, visibleToken } from "../../../lib/format";
import { ruleInfo } from "../../../lib/metrics";

export type HistoryKey = "seq" | "text" | "prob" | "hbar_s" | "entropy" | "surprisal" | "rank" | "alerts";

export const COLUMNS: { key: HistoryKey; label: string; title: string }[] = [
  { key: "seq", label: "#", title: "Token position, from 0" },
  { key: "text", label: "token", title: "The token's text (· space, ↵ newline)" },
  { key: "prob", label: "p", title: "Probability of the token (%, higher = more expected)" },
  { key: "hbar_s", label: "ℏₛ bits", title: "ℏₛ = √(entropy × surprisal), bits; higher = more uncertain" },
  { key: "entropy", label: "entropy bits", title: "Entropy of the next-token distribution, bits; higher = more uncertain" },
  { key: "surprisal", label: "surprisal bits", title: "−log₂ p of the token, bits; higher = more surprising" },
  { key: "rank", label: "rank", title: "1 + tokens the model found more likely (1 = its first choice)" },
  { key: "alerts", label: "alerts", title: "Rules that fired on this token (alerts sent)" },
];

export interface HistoryRow {
  seq: number;
  text: string;
  prob: number | null;
  hbar_s: number | null;
  entropy: number | null;
  surprisal: number | null;
  rank: number | null;
  alerts: string[]; // readable rule names
}

/** The rows of the tokens received so far, with the rules that fired on each (from its alert). */
export function historyRows(tokens: readonly (TokenMessage | undefined)[], alerts: readonly AlertMessage[]): HistoryRow[] {
  const rulesByToken = new Map<number, string[]>();
  for (const a of alerts) {
    const rules = a.rules?.length ? a.rules : a.findings?.length ? a.findings.map((f) => f.rule) : [a.rule];
    rulesByToken.set(a.token_seq, rules.map((r) => ruleInfo(r).name));
  }
  const rows: HistoryRow[] = [];
  for (const t of tokens) {
    if (!t) continue;
    const m = t.metrics;
    rows.push({
      seq: t.seq,
      text: t.text,
      prob: m.prob ?? null,
      hbar_s: m.hbar_s ?? null,
      entropy: m.entropy ?? null,
      surprisal: m.surprisal ?? null,
      rank: m.rank ?? null,
      alerts: rulesByToken.get(t.seq) ?? [],
    });
  }
  return rows;
}

/** Rows sorted by ``key`` (unknown values last, ties by position). */
export function sortRows(rows: HistoryRow[], key: HistoryKey, descending: boolean): HistoryRow[] {
  if (key === "seq" && !descending) return rows;
  const value = (r: HistoryRow): number | string | null =>
    key === "alerts" ? r.alerts.length : key === "text" ? r.text : r[key];
  return [...rows].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    if (va === null || vb === null) return va === vb ? a.seq - b.seq : va === null ? 1 : -1;
    const c = typeof va === "string" ? va.localeCompare(vb as string) : (va as number) - (vb as number);
    return (descending ? -c : c) || a.seq - b.seq;
  });
}

/** Tab-separated text of the rows (a header line first): what Copy puts on the clipboard. */
export function toTsv(rows: readonly HistoryRow[]): string {
  const head = ["seq", "token", "p", "hbar_s_bits", "entropy_bits", "surprisal_bits", "rank", "alerts"].join("\t");
  const num = (v: number | null) => (v === null ? "" : String(v));
  const lines = rows.map((r) =>
    [r.seq, JSON.stringify(r.text).slice(1, -1), num(r.prob), num(r.hbar_s), num(r.entropy), num(r.surprisal), num(r.rank), r.alerts.join(", ")].join("\t"),
  );
  return [head, ...lines].join("\n") + "\n";
}

interface Props {
  tokens: readonly (TokenMessage | undefined)[];
  alerts: readonly AlertMessage[];
  version: number; // re-render as tokens arrive (the lists are mutated in place)
  selected: number | null;
  onSelect: (seq: number) => void;
}

const ROW_HEIGHT = 28;

export const TokenHistory = memo(function TokenHistory({ tokens, alerts, version, selected, onSelect }: Props) {
  const [sort, setSort] = useState<{ key: HistoryKey; descending: boolean }>({ key: "seq", descending: false });
  const [copied, setCopied] = useState<string | null>(null);
  // eslint-disable-next-line react-hooks/exhaustive-deps -- the lists are mutated in place; version says when
  const rows = useMemo(() => sortRows(historyRows(tokens, alerts), sort.key, sort.descending), [tokens, alerts, version, sort]);
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });

  // A token selected elsewhere (heatmap, chart, alerts) scrolls its row into view.
  useEffect(() => {
    if (selected === null) return;
    const index = rows.findIndex((r) => r.seq === selected);
    if (index >= 0) virtualizer.scrollToIndex(index, { align: "auto" });
    // eslint-disable-next-line react-hooks/exhaustive-deps -- on the selection alone: rows arriving must not pull the view
  }, [selected]);

  const toggle = (key: HistoryKey) =>
    setSort((s) => (s.key === key ? { key, descending: !s.descending } : { key, descending: key !== "seq" && key !== "text" }));

  const copy = async () => {
    const ok = await copyText(toTsv(rows));
    setCopied(ok ? `${rows.length} rows copied` : "the browser refused the clipboard");
  };

  return (
    <div className="token-history" data-testid="token-history" data-rows={rows.length}>
      <div className="th-tools">
        <span className="meta">
          {rows.length} tokens · sorted by {COLUMNS.find((c) => c.key === sort.key)!.label} {sort.descending ? "↓" : "↑"}
        </span>
        <button type="button" onClick={() => void copy()} data-testid="copy-history" title="Copy every row, in this order, as tab-separated text">
          Copy as TSV
        </button>
        {copied && (
          <span className="meta" role="status" data-testid="copy-status">
            {copied}
          </span>
        )}
      </div>
      <div className="th-scroll" ref={scroller}>
        <table className="th-table" role="grid" aria-rowcount={rows.length + 1}>
          <thead>
            <tr>
              {COLUMNS.map((c) => (
                <th
                  key={c.key}
                  scope="col"
                  aria-sort={sort.key === c.key ? (sort.descending ? "descending" : "ascending") : "none"}
                  title={c.title}
                >
                  <button type="button" onClick={() => toggle(c.key)} data-testid={`sort-${c.key}`}>
                    {c.label}
                    {sort.key === c.key ? (sort.descending ? " ↓" : " ↑") : ""}
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {virtualizer.getVirtualItems().map((vi) => {
              const r = rows[vi.index]!;
              return (
                <tr
                  key={r.seq}
                  className={`${r.seq === selected ? "selected" : ""}${r.alerts.length ? " alerted" : ""}`}
                  style={{ position: "absolute", top: 0, left: 0, right: 0, height: ROW_HEIGHT, transform: `translateY(${vi.start}px)` }}
                  onClick={() => onSelect(r.seq)}
                  data-seq={r.seq}
                  data-testid="history-row"
                  aria-selected={r.seq === selected}
                >
                  <td className="num">{r.seq}</td>
                  <td>
                    <code>{visibleToken(r.text)}</code>
                  </td>
                  <td className="num">{pct(r.prob)}</td>
                  <td className="num">{fmt(r.hbar_s)}</td>
                  <td className="num">{fmt(r.entropy)}</td>
                  <td className="num">{fmt(r.surprisal)}</td>
                  <td className="num">{r.rank ?? "—"}</td>
                  <td className="th-alerts">{r.alerts.join(", ")}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
});
