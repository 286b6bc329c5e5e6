/** Past and running sessions with their risk and summary; open one to replay it in the same views. */
import { Fragment, useEffect, useState } from "react";
import { absoluteHref, routeHref, type Params } from "../../../app/router";
import { useServices } from "../../../app/services";
import { useSessionFeed } from "../../../shared/session/api/useSessionFeed";
import type { RenderSession } from "../../../shared/session/components/SessionView";
import { useStoreVersion } from "../../../shared/session/store/useStore";
import { ReplayPlayer } from "../store/replay";
import { SessionList } from "./SessionList";
import { SessionTools } from "./SessionTools";

interface Props {
  sessionId: string | null;
  params: Params;
  renderSession: RenderSession;
}

export function SessionsPage({ sessionId, params, renderSession }: Props) {
  if (!sessionId) return <SessionList params={params} />;
  // Keyed: another session starts a fresh replay (no player carried over). `?token=N` selects a token.
  const token = Number(params.token);
  return (
    <SessionReplay key={sessionId} sessionId={sessionId} initialToken={Number.isInteger(token) && token >= 0 ? token : null} renderSession={renderSession} />
  );
}

interface ReplayProps {
  sessionId: string;
  initialToken: number | null;
  renderSession: RenderSession;
}

function SessionReplay({ sessionId, initialToken, renderSession }: ReplayProps) {
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
        {store && !store.notFound && <SessionTools sessionId={sessionId} />}
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
                  setPlayer(player && !player.p.done ? { ...player, playing: true } : { p: new ReplayPlayer(store, config.chartPoints), playing: true })
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
      {shown && (
        <Fragment key={`${shown.sessionId}-${player ? "replay" : "full"}`}>
          {renderSession(shown, {
            initialToken,
            tokenLink: (seq) => absoluteHref({ page: "sessions", sessionId, params: { token: String(seq) } }),
          })}
        </Fragment>
      )}
    </div>
  );
}
