/**
 * Build-time configuration, validated once at start. Every value has a default that works when the
 * gateway serves the dashboard (same origin); override with VITE_* variables at build time.
 */

export interface AppConfig {
  /** Prefix of REST paths; "" = same origin. */
  apiBase: string;
  /** WebSocket URL; derived from the page's origin when empty. */
  wsUrl: string;
  /** Points the live chart keeps (ring buffer capacity). */
  chartPoints: number;
  /** Reconnect backoff: first delay and cap, ms. */
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  /** Keep-alive ping interval, ms. */
  pingMs: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | boolean | undefined>;

function intVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(name, `expected an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return v;
}

function urlVar(env: Env, name: string, schemes: readonly string[]): string {
  const raw = env[name];
  if (raw === undefined || raw === "") return "";
  if (typeof raw !== "string") throw new ConfigError(name, "expected a URL");
  if (raw.startsWith("/")) return raw.replace(/\/$/, "");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `not a URL: ${JSON.stringify(raw)}`);
  }
  if (!schemes.includes(url.protocol)) {
    throw new ConfigError(name, `expected a ${schemes.join(" or ")} URL, got ${JSON.stringify(raw)}`);
  }
  return raw.replace(/\/$/, "");
}

export function loadConfig(env: Env): AppConfig {
  const cfg: AppConfig = {
    apiBase: urlVar(env, "VITE_API_BASE", ["http:", "https:"]),
    wsUrl: urlVar(env, "VITE_WS_URL", ["ws:", "wss:"]),
    chartPoints: intVar(env, "VITE_CHART_POINTS", 20_000, 100, 1_000_000),
    reconnectBaseMs: intVar(env, "VITE_RECONNECT_BASE_MS", 500, 10, 60_000),
    reconnectMaxMs: intVar(env, "VITE_RECONNECT_MAX_MS", 10_000, 100, 600_000),
    pingMs: intVar(env, "VITE_PING_MS", 15_000, 1_000, 600_000),
  };
  if (cfg.reconnectMaxMs < cfg.reconnectBaseMs) {
    throw new ConfigError("VITE_RECONNECT_MAX_MS", "must be at least VITE_RECONNECT_BASE_MS");
  }
  return cfg;
}

/** ws(s)://host/ws for the page's own origin, or the configured URL. */
export function resolveWsUrl(cfg: AppConfig, location: { protocol: string; host: string }): string {
  if (cfg.wsUrl) return cfg.wsUrl;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}
