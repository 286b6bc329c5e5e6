/** The app's long-lived services (config, REST client and its query cache, WebSocket client), provided by context. */
import { QueryClientProvider, useQuery, type QueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useState } from "react";
import type { ReactNode } from "react";
import { DEFAULT_SERVER_CONFIG, type ApiClient } from "../api/client";
import { queryKeys } from "../api/queryKeys";
import type { ConnectionInfo, SocketClient } from "../api/socket";
import type { ServerConfig } from "../api/types";
import type { AppConfig } from "../config/env";

export interface Services {
  config: AppConfig;
  api: ApiClient;
  socket: SocketClient;
  queries: QueryClient;
}

const ServicesContext = createContext<Services | null>(null);

export function ServicesProvider({ services, children }: { services: Services; children: ReactNode }) {
  useEffect(() => {
    services.socket.start();
    return () => services.socket.stop();
  }, [services]);
  return (
    <ServicesContext.Provider value={services}>
      <QueryClientProvider client={services.queries}>{children}</QueryClientProvider>
    </ServicesContext.Provider>
  );
}

export function useServices(): Services {
  const s = useContext(ServicesContext);
  if (!s) throw new Error("useServices outside ServicesProvider");
  return s;
}

/** GET /config: loaded once, retried with backoff (1 s · 2^n, at most 10 s) until it answers. */
export function useServerConfig(): { config: ServerConfig; error: string | null } {
  const { api } = useServices();
  const q = useQuery({
    queryKey: queryKeys.config,
    queryFn: () => api.config(),
    staleTime: Infinity,
    retry: true,
    retryDelay: (attempt) => Math.min(10_000, 1000 * 2 ** attempt),
  });
  // failureReason: the last failed attempt's error while it is still retrying.
  const failed = q.data === undefined ? (q.failureReason ?? q.error) : null;
  return { config: q.data ?? DEFAULT_SERVER_CONFIG, error: failed ? `Could not load /config: ${String(failed)}` : null };
}

export function useConnection(): ConnectionInfo {
  const { socket } = useServices();
  const [info, setInfo] = useState(socket.connection);
  useEffect(() => socket.onState(setInfo), [socket]);
  return info;
}
