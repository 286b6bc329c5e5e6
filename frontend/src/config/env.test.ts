import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, resolveWsUrl } from "./env";

describe("loadConfig", () => {
  it("has defaults that work behind the gateway", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ apiBase: "", wsUrl: "", chartPoints: 20_000, reconnectBaseMs: 500 });
    expect(resolveWsUrl(c, { protocol: "http:", host: "127.0.0.1:8080" })).toBe("ws://127.0.0.1:8080/ws");
    expect(resolveWsUrl(c, { protocol: "https:", host: "uq.example" })).toBe("wss://uq.example/ws");
  });

  it("rejects bad values, naming the variable", () => {
    expect(() => loadConfig({ VITE_CHART_POINTS: "lots" })).toThrow(/VITE_CHART_POINTS/);
    expect(() => loadConfig({ VITE_WS_URL: "http://x/ws" })).toThrow(ConfigError);
    expect(() => loadConfig({ VITE_RECONNECT_BASE_MS: "5000", VITE_RECONNECT_MAX_MS: "1000" })).toThrow(/MAX_MS/);
  });

  it("takes explicit URLs", () => {
    const c = loadConfig({ VITE_API_BASE: "http://gw:8080/", VITE_WS_URL: "wss://gw/ws" });
    expect(c.apiBase).toBe("http://gw:8080");
    expect(resolveWsUrl(c, { protocol: "http:", host: "x" })).toBe("wss://gw/ws");
  });
});
