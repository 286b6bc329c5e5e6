import { keepPreviousData, useQuery } from "@tanstack/react-query";
import type { SessionQuery } from "../../../api/client";
import { queryKeys } from "../../../api/queryKeys";
import { useServices } from "../../../app/services";

/** GET /sessions, refreshed every few seconds while shown (running sessions change); the last page stays while the next loads. */
export function useSessions(query: SessionQuery, refreshMs = 4000) {
  const { api } = useServices();
  const q = useQuery({
    queryKey: queryKeys.sessions(query),
    queryFn: () => api.sessions(query),
    refetchInterval: refreshMs,
    placeholderData: keepPreviousData,
    // It polls anyway: an error shows until the next poll answers.
    retry: false,
  });
  const error = q.error ? (q.error instanceof Error ? q.error.message : String(q.error)) : null;
  return { data: q.data ?? null, error };
}
