/**
 * Starts the whole real system for the browser tests: `.venv/bin/python -m tests.stack --port N`
 * (from the repository root) on a free port, waits for its `READY <url>` line, and stops it with
 * SIGTERM (then SIGKILL) when done, also on failure. UQ_E2E_URL=<url> uses a stack already running.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "..", "..");

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function startStack({ readyTimeoutMs = 240_000, log = () => {} } = {}) {
  if (process.env.UQ_E2E_URL) return { url: process.env.UQ_E2E_URL.replace(/\/$/, ""), stop: async () => {}, output: () => "" };
  if (!existsSync(path.join(ROOT, "tests", "stack.py"))) {
    throw new Error("tests/stack.py is missing: the browser tests start the system with `python -m tests.stack --port N`");
  }
  const port = await freePort();
  const python = path.join(ROOT, ".venv", "bin", "python");
  const child = spawn(python, ["-m", "tests.stack", "--port", String(port)], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so stopping it reaches every service it started
  });
  let output = "";
  const onData = (d) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }, 20_000);
    await exited;
    clearTimeout(timer);
  };

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the stack did not print READY within ${readyTimeoutMs / 1000} s`)), readyTimeoutMs);
    const check = () => {
      const m = output.match(/^READY (\S+)/m);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on("data", check);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the stack exited before READY (code ${code}, signal ${signal})`));
    });
  }).catch(async (e) => {
    await stop();
    throw new Error(`${e.message}\n--- stack output (tail) ---\n${output.slice(-4000)}`);
  });
  log(`stack ready at ${url}`);
  return { url, stop, output: () => output };
}
