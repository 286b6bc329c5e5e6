import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { ApiClient } from "./api/client";
import { SocketClient } from "./api/socket";
import { App } from "./app/App";
import { createQueryClient } from "./app/queries";
import { ServicesProvider, type Services } from "./app/services";
import { ConfigError, loadConfig, resolveWsUrl } from "./config/env";
import { getApiKey, withApiKey } from "./lib/apiKey";
import "./styles/app.css";

const root = createRoot(document.getElementById("root")!);

let services: Services;
try {
  const config = loadConfig(import.meta.env);
  services = {
    config,
    api: new ApiClient(config.apiBase, getApiKey),
    socket: new SocketClient(() => withApiKey(resolveWsUrl(config, window.location), getApiKey()), {
      baseMs: config.reconnectBaseMs,
      maxMs: config.reconnectMaxMs,
      pingMs: config.pingMs,
    }),
    queries: createQueryClient(),
  };
} catch (e) {
  root.render(
    <main className="fatal" role="alert">
      <h1>The dashboard is misconfigured</h1>
      <p>{e instanceof ConfigError ? e.message : String(e)}</p>
      <p>Fix the VITE_* variable named above and rebuild (npm run build).</p>
    </main>,
  );
  throw e;
}

root.render(
  <StrictMode>
    <ServicesProvider services={services}>
      <App />
    </ServicesProvider>
  </StrictMode>,
);
