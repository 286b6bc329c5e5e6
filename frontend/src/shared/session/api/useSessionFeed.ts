import { useEffect, useMemo } from "react";
import { useSessionSnapshot } from "../../../app/queries";
import { useServices } from "../../../app/services";
import type { SessionStore } from "../store/sessionStore";
import { SessionFeed } from "./sessionFeed";

/** Follow one session (snapshot, then live) for as long as the component shows it. */
export function useSessionFeed(sessionId: string | null): SessionStore | null {
  const { socket, config } = useServices();
  const api = useSessionSnapshot();
  // Building a feed only builds its empty store; following starts in the effect.
  const feed = useMemo(
    () => (sessionId ? new SessionFeed(sessionId, { api, socket, chartPoints: config.chartPoints }) : null),
    [sessionId, api, socket, config.chartPoints],
  );
  useEffect(() => {
    if (!feed) return;
    void feed.start({ snapshot: true });
    return () => feed.stop();
  }, [feed]);
  return feed?.store ?? null;
}
