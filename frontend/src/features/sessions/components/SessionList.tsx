/**
 * Past and running sessions: search, filters and sort kept in the URL, per-session export, links and
 * deletion, and a selection to compare. A table on a desktop; one card per session on a phone
 * (the same markup, laid out by CSS).
 */
import { useEffect, useRef, useState } from "react";
import type { SessionSort } from "../../../api/client";
import { RISK_LEVELS, type SessionRecord } from "../../../api/types";
import { absoluteHref, navigate, routeHref, type Params } from "../../../app/router";
import { useServerConfig } from "../../../app/services";
import { copyText } from "../../../lib/clipboard";
import { ago, fmt, pct, truncate } from "../../../lib/format";
import { RISK_HELP, RISK_LABEL } from "../../../lib/metrics";
import { useDeleteSession, useExportSession } from "../api/useSessionActions";
import { useSessions } from "../api/useSessions";
import { filterParams, isFiltered, MAX_COMPARE, NO_FILTERS, parseFilters, SORT_LABEL, SORTS, STATUSES, toQuery, type Filters } from "../filters";
import { RiskBadge } from "./RiskBadge";

const PAGE = 25;

export function SessionList({ params }: { params: Params }) {
  const filters = parseFilters(params);
  const { config } = useServerConfig();
  const { data, error } = useSessions(toQuery(filters, PAGE));
  const total = data?.total ?? 0;
  const [picked, setPicked] = useState<string[]>([]);
  const [notice, setNotice] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<SessionRecord | null>(null);
  // On a phone the filters fold behind one line under the search box; elsewhere they are all shown.
  const [filtersOpen, setFiltersOpen] = useState(() => !window.matchMedia?.("(max-width: 700px)").matches);
  const activeFilters = [filters.model, filters.status, filters.risk, filters.peak, filters.since, filters.until].filter(Boolean).length;

  const update = (patch: Partial<Filters>) =>
    navigate({ page: "sessions", sessionId: null, params: filterParams({ ...filters, offset: 0, ...patch }) }, { replace: true });
  const sortBy = (key: SessionSort) => update({ sort: key, order: filters.sort === key ? (filters.order === "desc" ? "asc" : "desc") : defaultOrder(key) });
  const togglePick = (id: string) => setPicked((p) => (p.includes(id) ? p.filter((x) => x !== id) : p.length < MAX_COMPARE ? [...p, id] : p));
  const models = [...new Set([...config.models, ...(filters.model ? [filters.model] : [])])];

  return (
    <section className="panel sessions" aria-labelledby="sessions-title">
      <div className="panel-head">
        <h2 id="sessions-title">
          Sessions{" "}
          {data && (
            <span className="count" data-testid="session-total">
              {total}
            </span>
          )}
        </h2>
      </div>
      <div className="filters" role="search" aria-label="Filter sessions">
        <SearchBox value={filters.q} onChange={(q) => update({ q })} />
        <details className="more-filters" open={filtersOpen} onToggle={(e) => setFiltersOpen(e.currentTarget.open)}>
          <summary data-testid="more-filters">Filters and sort{activeFilters ? ` (${activeFilters} set)` : ""}</summary>
          <div className="more-filters-body">
            <label>
              Model{" "}
              <select value={filters.model} onChange={(e) => update({ model: e.target.value })} data-testid="session-model">
                <option value="">any</option>
                {models.map((m) => (
                  <option key={m}>{m}</option>
                ))}
              </select>
            </label>
            <label>
              Status{" "}
              <select value={filters.status} onChange={(e) => update({ status: e.target.value as Filters["status"] })} data-testid="session-status-filter">
                <option value="">any</option>
                {STATUSES.map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>
            </label>
            <label title="Sessions whose highest risk reached at least this level">
              Peak risk{" "}
              <select value={filters.peak} onChange={(e) => update({ peak: e.target.value as Filters["peak"] })} data-testid="session-peak">
                <option value="">any</option>
                {RISK_LEVELS.slice(1).map((r) => (
                  <option key={r} value={r}>
                    {RISK_LABEL[r]} or higher
                  </option>
                ))}
              </select>
            </label>
            <label title="The risk level the session has now (or ended with)">
              Risk now{" "}
              <select value={filters.risk} onChange={(e) => update({ risk: e.target.value as Filters["risk"] })} data-testid="session-risk">
                <option value="">any</option>
                {RISK_LEVELS.map((r) => (
                  <option key={r} value={r}>
                    {RISK_LABEL[r]}
                  </option>
                ))}
              </select>
            </label>
            <label>
              From{" "}
              <input
                type="date"
                value={filters.since}
                max={filters.until || undefined}
                onChange={(e) => update({ since: e.target.value })}
                data-testid="session-since"
              />
            </label>
            <label>
              to{" "}
              <input
                type="date"
                value={filters.until}
                min={filters.since || undefined}
                onChange={(e) => update({ until: e.target.value })}
                data-testid="session-until"
              />
            </label>
            <label>
              Sort{" "}
              <select
                value={filters.sort}
                onChange={(e) => update({ sort: e.target.value as SessionSort, order: defaultOrder(e.target.value as SessionSort) })}
                data-testid="session-sort"
              >
                {SORTS.map((s) => (
                  <option key={s} value={s}>
                    {SORT_LABEL[s]}
                  </option>
                ))}
              </select>
            </label>
            <button
              type="button"
              onClick={() => update({ order: filters.order === "desc" ? "asc" : "desc" })}
              aria-label={`Order: ${filters.order === "desc" ? "descending" : "ascending"}; switch`}
              data-testid="session-order"
            >
              {filters.order === "desc" ? "↓ desc" : "↑ asc"}
            </button>
          </div>
        </details>
        {(isFiltered(filters) || filters.sort !== NO_FILTERS.sort || filters.order !== NO_FILTERS.order) && (
          <button type="button" onClick={() => navigate({ page: "sessions", sessionId: null }, { replace: true })} data-testid="session-clear">
            Clear
          </button>
        )}
      </div>
      <CompareBar picked={picked} onClear={() => setPicked([])} />
      {notice && (
        <p className="notice" role="status" data-testid="session-notice">
          {notice}
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          Could not load sessions: {error}
        </p>
      )}
      {data && data.items.length === 0 && <p className="empty">{isFiltered(filters) ? "No session matches these filters." : "No sessions yet."}</p>}
      {data && data.items.length > 0 && (
        <table className="session-table" data-testid="sessions">
          <thead>
            <tr>
              <th scope="col">
                <span className="visually-hidden">Compare</span>
              </th>
              <SortHeader label="Started" sortKey="created" filters={filters} onSort={sortBy} />
              <th scope="col">Prompt</th>
              <SortHeader label="Model" sortKey="model" filters={filters} onSort={sortBy} />
              <SortHeader label="Status" sortKey="status" filters={filters} onSort={sortBy} />
              <SortHeader
                label="Risk (peak)"
                sortKey="peak"
                filters={filters}
                onSort={sortBy}
                title="Highest risk reached; the level now beside it when lower"
              />
              <SortHeader label="Tokens" sortKey="tokens" filters={filters} onSort={sortBy} num />
              <SortHeader
                label="Alerts sent"
                sortKey="alerts"
                filters={filters}
                onSort={sortBy}
                num
                title="Alerts sent: rule firings the cooldown let through"
              />
              <th scope="col" className="num" title="Semantic uncertainty, bits: higher = more uncertain">
                Mean / max ℏₛ
              </th>
              <th scope="col" className="num" title="exp(mean negative log-likelihood): higher = the text surprised the model more">
                Perplexity
              </th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.items.map((s) => (
              <SessionRow
                key={s.session_id}
                s={s}
                picked={picked.includes(s.session_id)}
                canPick={picked.length < MAX_COMPARE}
                onPick={() => togglePick(s.session_id)}
                onNotice={setNotice}
                onDelete={() => setDeleting(s)}
              />
            ))}
          </tbody>
        </table>
      )}
      {total > PAGE && (
        <div className="pager">
          <button type="button" disabled={filters.offset === 0} onClick={() => update({ offset: Math.max(0, filters.offset - PAGE) })} data-testid="page-prev">
            ← Previous
          </button>
          <span>
            {filters.offset + 1}–{Math.min(total, filters.offset + PAGE)} of {total}
          </span>
          <button type="button" disabled={filters.offset + PAGE >= total} onClick={() => update({ offset: filters.offset + PAGE })} data-testid="page-next">
            Next →
          </button>
        </div>
      )}
      {deleting && (
        <DeleteDialog
          session={deleting}
          onClose={(deleted) => {
            setDeleting(null);
            if (deleted) {
              setPicked((p) => p.filter((x) => x !== deleting.session_id));
              setNotice(`Deleted session ${deleting.session_id}.`);
            }
          }}
        />
      )}
    </section>
  );
}

function defaultOrder(key: SessionSort): "asc" | "desc" {
  return key === "model" || key === "status" ? "asc" : "desc";
}

/** The search box: the URL follows the text after a short pause, not on every keystroke. */
function SearchBox({ value, onChange }: { value: string; onChange: (q: string) => void }) {
  const [text, setText] = useState(value);
  const [shown, setShown] = useState(value);
  if (value !== shown) {
    // the URL changed underneath (Clear, back): show its text
    setShown(value);
    setText(value);
  }
  const latest = useRef(onChange);
  useEffect(() => {
    latest.current = onChange;
  });
  useEffect(() => {
    if (text === value) return;
    const t = setTimeout(() => latest.current(text), 250);
    return () => clearTimeout(t);
  }, [text, value]);
  return (
    <label>
      Search{" "}
      <input
        type="search"
        value={text}
        placeholder="prompt text"
        maxLength={500}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => e.key === "Enter" && latest.current(text)}
        data-testid="session-search"
      />
    </label>
  );
}

interface SortHeaderProps {
  label: string;
  sortKey: SessionSort;
  filters: Filters;
  onSort: (key: SessionSort) => void;
  num?: boolean;
  title?: string;
}

function SortHeader({ label, sortKey, filters, onSort, num, title }: SortHeaderProps) {
  const active = filters.sort === sortKey;
  return (
    <th scope="col" className={num ? "num" : undefined} aria-sort={active ? (filters.order === "asc" ? "ascending" : "descending") : "none"} title={title}>
      <button type="button" className="sort" onClick={() => onSort(sortKey)} data-testid={`session-sort-${sortKey}`}>
        {label}
        <span aria-hidden="true">{active ? (filters.order === "asc" ? " ↑" : " ↓") : ""}</span>
      </button>
    </th>
  );
}

interface RowProps {
  s: SessionRecord;
  picked: boolean;
  canPick: boolean;
  onPick: () => void;
  onNotice: (text: string) => void;
  onDelete: () => void;
}

function SessionRow({ s, picked, canPick, onPick, onNotice, onDelete }: RowProps) {
  const peak = s.peak_risk;
  return (
    <tr data-session={s.session_id} className={picked ? "picked" : undefined}>
      <td className="pick">
        <input
          type="checkbox"
          checked={picked}
          disabled={!picked && !canPick}
          onChange={onPick}
          aria-label={`Compare session ${s.session_id}`}
          data-testid="compare-pick"
        />
      </td>
      <td data-label="Started" title={s.created_ns ? new Date(s.created_ns / 1e6).toLocaleString() : undefined}>
        {ago(s.created_ns)}
      </td>
      <td data-label="Prompt" className="prompt-cell">
        <a href={routeHref({ page: "sessions", sessionId: s.session_id })}>{truncate(s.prompt ?? "(no prompt)", 80)}</a>
      </td>
      <td data-label="Model" className="mono">
        {s.model ?? "—"}
      </td>
      <td data-label="Status">
        <span className={`status status-${s.status}`}>{s.status}</span>
      </td>
      <td data-label="Risk (peak)" title={RISK_HELP[peak]}>
        <RiskBadge level={peak} />
        {s.risk !== peak && (
          <span className="meta" data-testid="risk-now">
            {" "}
            now {RISK_LABEL[s.risk]}
          </span>
        )}
        {s.summary?.p_wrong != null && (
          <span className="meta" title="Calibrated probability that the answer is wrong">
            {" "}
            P(wrong) {pct(s.summary.p_wrong, 1)}
          </span>
        )}
      </td>
      <td data-label="Tokens" className="num">
        {s.tokens}
      </td>
      <td data-label="Alerts sent" className="num">
        {s.alerts}
      </td>
      <td data-label="Mean / max ℏₛ" className="num">
        {fmt(s.summary?.mean_hbar_s)} / {fmt(s.summary?.max_hbar_s)}
      </td>
      <td data-label="Perplexity" className="num">
        {fmt(s.summary?.perplexity)}
      </td>
      <td className="actions">
        <RowActions s={s} onNotice={onNotice} onDelete={onDelete} />
      </td>
    </tr>
  );
}

function RowActions({ s, onNotice, onDelete }: { s: SessionRecord; onNotice: (t: string) => void; onDelete: () => void }) {
  const exporter = useExportSession();
  const menu = useRef<HTMLDetailsElement>(null);
  const close = () => menu.current?.removeAttribute("open");
  const download = (format: "jsonl" | "csv") => {
    close();
    exporter.mutate({ id: s.session_id, format }, { onError: (e) => onNotice(`Export failed: ${e instanceof Error ? e.message : String(e)}`) });
  };
  const copyLink = async () => {
    close();
    const ok = await copyText(absoluteHref({ page: "sessions", sessionId: s.session_id }));
    onNotice(ok ? `Link to session ${s.session_id} copied.` : "The browser refused the clipboard.");
  };
  return (
    <details className="row-menu" ref={menu}>
      <summary aria-label={`Actions for session ${s.session_id}`} data-testid="session-actions">
        ⋯
      </summary>
      <div className="row-menu-items">
        <button type="button" onClick={() => download("jsonl")} data-testid="export-jsonl">
          Export JSONL
        </button>
        <button type="button" onClick={() => download("csv")} data-testid="export-csv">
          Export CSV
        </button>
        <button type="button" onClick={() => void copyLink()} data-testid="copy-session-link">
          Copy link
        </button>
        <button
          type="button"
          className="danger"
          onClick={() => {
            close();
            onDelete();
          }}
          data-testid="delete-session"
        >
          Delete…
        </button>
      </div>
    </details>
  );
}

function CompareBar({ picked, onClear }: { picked: string[]; onClear: () => void }) {
  if (picked.length === 0) return null;
  const href = routeHref({ page: "compare", sessionId: null, params: { ids: picked.join(",") } });
  return (
    <div className="compare-bar" data-testid="compare-bar">
      <span>
        {picked.length} selected{picked.length < 2 ? ": pick one more to compare" : ""} (up to {MAX_COMPARE})
      </span>
      {picked.length >= 2 && (
        <a className="button-link primary" href={href} data-testid="compare-open">
          Compare {picked.length} →
        </a>
      )}
      <button type="button" onClick={onClear}>
        Clear selection
      </button>
    </div>
  );
}

/** A modal confirmation: the delete happens only on its button, and its error stays in the dialog. */
function DeleteDialog({ session, onClose }: { session: SessionRecord; onClose: (deleted: boolean) => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const remove = useDeleteSession();
  const deleted = useRef(false);
  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal?.();
  }, []);
  return (
    <dialog ref={dialog} className="confirm" onClose={() => onClose(deleted.current)} aria-labelledby="delete-title" data-testid="delete-dialog">
      <h3 id="delete-title">Delete this session?</h3>
      <p>
        <span className="mono">{session.session_id}</span>: “{truncate(session.prompt ?? "(no prompt)", 120)}”
      </p>
      <p>Its tokens, alerts, risk changes and summary are removed from the history. This cannot be undone.</p>
      {remove.error && (
        <p className="error" role="alert">
          Could not delete: {remove.error instanceof Error ? remove.error.message : String(remove.error)}
        </p>
      )}
      <div className="dialog-buttons">
        <button type="button" onClick={() => dialog.current?.close()} autoFocus data-testid="delete-cancel">
          Cancel
        </button>
        <button
          type="button"
          className="danger"
          disabled={remove.isPending}
          onClick={() =>
            remove.mutate(session.session_id, {
              onSuccess: () => {
                deleted.current = true;
                dialog.current?.close();
              },
            })
          }
          data-testid="delete-confirm"
        >
          {remove.isPending ? "Deleting…" : "Delete"}
        </button>
      </div>
    </dialog>
  );
}
