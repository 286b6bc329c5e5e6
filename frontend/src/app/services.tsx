/** The app's long-lived services (config, REST client, WebSocket client), provided by context. */
import { createContext, useContext, useEffect, useState } from "react";
import type { ReactNode } from "react";
import type { ApiClient } from "../api/client";
import { DEFAULT_SERVER_CONFIG } from "../api/parse";
import type { ConnectionInfo, SocketClient } from "../api/socket";
import type { ServerConfig } from "../api/types";
import type { AppConfig } from "../config/env";

export interface Services {
  config: AppConfig;
  api: ApiClient;
  socket: SocketClient;
}

const ServicesContext = createContext<Services | null>(null);
const ServerConfigContext = createContext<{ config: ServerConfig; error: string | null }>({
  config: DEFAULT_SERVER_CONFIG,
  error: null,
});

export function ServicesProvider({ services, children }: { services: Services; children: ReactNode }) {
  const [server, setServer] = useState<{ config: ServerConfig; error: string | null }>({
    config: DEFAULT_SERVER_CONFIG,
    error: null,
  });
  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const load = (attempt: number) => {
      services.api.config().then(
        (config) => !cancelled && setServer({ config, error: null }),
        (e: unknown) => {
          if (cancelled) return;
          setServer((s) => ({ ...s, error: `Could not load /config: ${String(e)}` }));
          timer = setTimeout(() => load(attempt + 1), Math.min(10_000, 1000 * 2 ** attempt));
        },
      );
    };
    load(0);
    services.socket.start();
    return () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
      services.socket.stop();
    };
  }, [services]);
  return (
    <ServicesContext.Provider value={services}>
      <ServerConfigContext.Provider value={server}>{children}</ServerConfigContext.Provider>
    </ServicesContext.Provider>
  );
}

export function useServices(): Services {
  const s = useContext(ServicesContext);
  if (!s) throw new Error("useServices outside ServicesProvider");
  return s;
}

export function useServerConfig() {
  return useContext(ServerConfigContext);
}

export function useConnection(): ConnectionInfo {
  const { socket } = useServices();
  const [info, setInfo] = useState(socket.connection);
  useEffect(() => socket.onState(setInfo), [socket]);
  return info;
}
