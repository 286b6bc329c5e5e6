/** Past and running sessions with their risk and summary; open one to replay it in the same views. */
import { Fragment, useEffect, useState } from "react";
import { routeHref } from "../../../app/router";
import { useServerConfig, useServices } from "../../../app/services";
import { ReplayPlayer } from "../store/replay";
import { RISK_LEVELS, type RiskLevel, type SessionStatus } from "../../../api/types";
import { ago, fmt, pct, truncate } from "../../../lib/format";
import { peakRisk, RISK_ICON, RISK_LABEL } from "../../../lib/metrics";
import { useSessionFeed } from "../../../shared/session/api/useSessionFeed";
import type { RenderSession } from "../../../shared/session/components/SessionView";
import { useStoreVersion } from "../../../shared/session/store/useStore";
import { useSessions } from "../api/useSessions";

const PAGE = 25;
const STATUSES: SessionStatus[] = ["queued", "started", "finished", "failed", "cancelled"];

export function SessionsPage({ sessionId, renderSession }: { sessionId: string | null; renderSession: RenderSession }) {
  // Keyed: another session starts a fresh replay (no player carried over).
  return sessionId ? <SessionReplay key={sessionId} sessionId={sessionId} renderSession={renderSession} /> : <SessionList />;
}

function SessionReplay({ sessionId, renderSession }: { sessionId: string; renderSession: RenderSession }) {
  const store = useSessionFeed(sessionId);
  useStoreVersion(store);
  const { config } = useServices();
  const [speed, setSpeed] = useState(4);
  const [player, setPlayer] = useState<{ p: ReplayPlayer; playing: boolean } | null>(null);
  useEffect(() => {
    if (!player?.playing) return;
    return player.p.play(speed, () => setPlayer((cur) => (cur ? { ...cur, playing: false } : cur)));
  }, [player, speed]);
  const canReplay = store !== null && store.terminal && store.contiguous >= 0;
  const shown = player?.p.store ?? store;
  return (
    <div className="replay">
      <div className="replay-bar">
        <a href={routeHref({ page: "sessions", sessionId: null })}>← All sessions</a>
        {canReplay && (
          <div className="replay-controls" role="group" aria-label="Replay">
            {player?.playing ? (
              <button type="button" onClick={() => setPlayer({ ...player, playing: false })} data-testid="replay-pause">
                ❚❚ Pause
              </button>
            ) : (
              <button
                type="button"
                onClick={() =>
                  setPlayer(
                    player && !player.p.done ? { ...player, playing: true } : { p: new ReplayPlayer(store, config.chartPoints), playing: true },
                  )
                }
                data-testid="replay"
              >
                ▶ {player && !player.p.done ? "Resume" : "Replay"}
              </button>
            )}
            <label>
              speed{" "}
              <select value={speed} onChange={(e) => setSpeed(Number(e.target.value))}>
                {[1, 4, 16, 64].map((x) => (
                  <option key={x} value={x}>
                    {x}×
                  </option>
                ))}
              </select>
            </label>
            {player && (
              <button type="button" onClick={() => setPlayer(null)}>
                Show the whole session
              </button>
            )}
            {player && <span className="meta">{player.p.done ? "replay finished" : "replaying…"}</span>}
          </div>
        )}
      </div>
      {shown && <Fragment key={`${shown.sessionId}-${player ? "replay" : "full"}`}>{renderSession(shown)}</Fragment>}
    </div>
  );
}

function SessionList() {
  const [offset, setOffset] = useState(0);
  const [status, setStatus] = useState("");
  const [risk, setRisk] = useState("");
  const [search, setSearch] = useState("");
  const [model, setModel] = useState("");
  const { config } = useServerConfig();
  const { data, error } = useSessions({ limit: PAGE, offset, status, risk, q: search.trim(), model });
  const total = data?.total ?? 0;

  return (
    <section className="panel sessions" aria-labelledby="sessions-title">
      <div className="panel-head">
        <h2 id="sessions-title">Sessions {data && <span className="count">{total}</span>}</h2>
        <div className="filters">
          <label>
            Search{" "}
            <input
              type="search"
              value={search}
              placeholder="prompt text"
              maxLength={500}
              onChange={(e) => (setSearch(e.target.value), setOffset(0))}
              data-testid="session-search"
            />
          </label>
          {config.models.length > 1 && (
            <label>
              Model{" "}
              <select value={model} onChange={(e) => (setModel(e.target.value), setOffset(0))} data-testid="session-model">
                <option value="">any</option>
                {config.models.map((m) => (
                  <option key={m}>{m}</option>
                ))}
              </select>
            </label>
          )}
          <label>
            Status{" "}
            <select value={status} onChange={(e) => (setStatus(e.target.value), setOffset(0))}>
              <option value="">any</option>
              {STATUSES.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <label>
            Risk{" "}
            <select value={risk} onChange={(e) => (setRisk(e.target.value), setOffset(0))}>
              <option value="">any</option>
              {RISK_LEVELS.map((r) => (
                <option key={r} value={r}>
                  {RISK_LABEL[r]}
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>
      {error && (
        <p className="error" role="alert">
          Could not load sessions: {error}
        </p>
      )}
      {data && data.items.length === 0 && (
        <p className="empty">{search.trim() || model || status || risk ? "No session matches these filters." : "No sessions yet."}</p>
      )}
      {data && data.items.length > 0 && (
        <table className="session-table" data-testid="sessions">
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">Prompt</th>
              <th scope="col">Status</th>
              <th scope="col">Risk</th>
              <th scope="col">Tokens</th>
              <th scope="col" title="Alerts sent: rule firings the cooldown let through">
                Alerts sent
              </th>
              <th scope="col">Mean / max ℏₛ</th>
              <th scope="col">Perplexity</th>
            </tr>
          </thead>
          <tbody>
            {data.items.map((s) => (
              <tr key={s.session_id}>
                <td>{ago(s.created_ns)}</td>
                <td>
                  <a href={routeHref({ page: "sessions", sessionId: s.session_id })}>
                    {truncate(s.prompt ?? "(no prompt)", 80)}
                  </a>
                </td>
                <td>
                  <span className={`status status-${s.status}`}>{s.status}</span>
                </td>
                <td>
                  <RiskBadge level={s.risk} />
                  {s.summary && peakRisk(s.summary) !== s.risk && (
                    <span className="meta" data-testid="peak-risk">
                      {" "}
                      peak {RISK_LABEL[peakRisk(s.summary)]}
                    </span>
                  )}
                  {s.summary?.p_wrong != null && (
                    <span className="meta" title="Calibrated probability that the answer is wrong">
                      {" "}
                      P(wrong) {pct(s.summary.p_wrong, 1)}
                    </span>
                  )}
                </td>
                <td className="num">{s.tokens}</td>
                <td className="num">{s.alerts}</td>
                <td className="num">
                  {fmt(s.summary?.mean_hbar_s)} / {fmt(s.summary?.max_hbar_s)}
                </td>
                <td className="num">{fmt(s.summary?.perplexity)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {total > PAGE && (
        <div className="pager">
          <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
            ← Newer
          </button>
          <span>
            {offset + 1}–{Math.min(total, offset + PAGE)} of {total}
          </span>
          <button type="button" disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>
            Older →
          </button>
        </div>
      )}
    </section>
  );
}

export function RiskBadge({ level }: { level: RiskLevel }) {
  return (
    <span className={`risk-text risk-${level}`}>
      <span aria-hidden="true">{RISK_ICON[level]}</span> {RISK_LABEL[level]}
    </span>
  );
}
