import { useEffect, useState } from "react";
import { useServices } from "../../../app/services";
import type { SessionStore } from "../store/sessionStore";
import { SessionFeed } from "./sessionFeed";

/** Follow one session (snapshot, then live) for as long as the component shows it. */
export function useSessionFeed(sessionId: string | null): SessionStore | null {
  const { api, socket, config } = useServices();
  const [store, setStore] = useState<SessionStore | null>(null);
  useEffect(() => {
    if (!sessionId) {
      setStore(null);
      return;
    }
    const feed = new SessionFeed(sessionId, { api, socket, chartPoints: config.chartPoints });
    setStore(feed.store);
    void feed.start({ snapshot: true });
    return () => feed.stop();
  }, [sessionId, api, socket, config.chartPoints]);
  return store;
}
