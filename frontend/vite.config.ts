/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The gateway serves the built dashboard and the API on one origin; in dev, Vite proxies to it.
const gateway = process.env.UQ_GATEWAY_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/ws": { target: gateway.replace(/^http/, "ws"), ws: true },
      "^/(generate|sessions|config|health|metrics|push|openapi.json)": gateway,
    },
  },
  build: { outDir: "dist", sourcemap: true, chunkSizeWarningLimit: 800 },
  test: {
    environment: "node",
    include: ["src/**/*.test.{ts,tsx}"],
    testTimeout: 20_000,
  },
});
