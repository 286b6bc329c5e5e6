/**
 * REST through TanStack Query: what the dashboard polls and caches (GET /config in services.tsx,
 * GET /sessions in the sessions feature, GET /sessions/{id} here) and what it changes (POST
 * /generate in the live feature). The query keys are in api/queryKeys.ts.
 */
import { QueryClient, useQueryClient } from "@tanstack/react-query";
import { useMemo } from "react";
import type { ApiClient } from "../api/client";
import { queryKeys } from "../api/queryKeys";
import { useServices } from "./services";

export function createQueryClient(): QueryClient {
  return new QueryClient({ defaultOptions: { queries: { refetchOnWindowFocus: false } } });
}

/** GET /sessions/{id} for a session feed: one request at a time per session, never served stale. */
export function useSessionSnapshot(): Pick<ApiClient, "session"> {
  const { api } = useServices();
  const client = useQueryClient();
  return useMemo(
    () => ({
      session: (id: string) =>
        client.fetchQuery({ queryKey: queryKeys.session(id), queryFn: () => api.session(id), staleTime: 0, retry: false }),
    }),
    [api, client],
  );
}

