import { useEffect, useState } from "react";
import { useServices } from "../../../app/services";
import type { SessionQuery } from "../../../api/client";
import type { SessionList } from "../../../api/types";

/** GET /sessions, refreshed every few seconds while shown (running sessions change). */
export function useSessions(query: SessionQuery, refreshMs = 4000) {
  const { api } = useServices();
  const [data, setData] = useState<SessionList | null>(null);
  const [error, setError] = useState<string | null>(null);
  const key = JSON.stringify(query);
  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const load = async () => {
      try {
        const list = await api.sessions(JSON.parse(key) as SessionQuery);
        if (!cancelled) {
          setData(list);
          setError(null);
        }
      } catch (e) {
        if (!cancelled) setError(e instanceof Error ? e.message : String(e));
      }
      if (!cancelled) timer = setTimeout(load, refreshMs);
    };
    void load();
    return () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
    };
  }, [api, key, refreshMs]);
  return { data, error };
}
