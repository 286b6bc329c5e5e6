// @vitest-environment node
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket as NodeWebSocket } from "ws";
import { GatewayDouble, waitFor } from "../test/gatewayDouble";
import { token } from "../test/factories";
import { backoffDelay, SocketClient, type ConnectionInfo } from "./socket";
import type { ServerMessage } from "./types";

describe("backoffDelay", () => {
  it("doubles from the base up to the cap, with jitter in [0.5, 1]", () => {
    const top = () => 1;
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, 100, 1000, top))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(3, 100, 1000, () => 0)).toBe(400);
    expect(backoffDelay(500, 100, 1000, top)).toBe(1000);
  });
});

describe("SocketClient against a real WebSocket server", () => {
  let gw: GatewayDouble;
  let client: SocketClient;
  const states: ConnectionInfo[] = [];
  const messages: ServerMessage[] = [];

  beforeEach(async () => {
    gw = await GatewayDouble.start();
    states.length = 0;
    messages.length = 0;
    const url = gw.url;
    client = new SocketClient(() => url, {
      baseMs: 20,
      maxMs: 200,
      pingMs: 60_000,
      createSocket: (u) => new NodeWebSocket(u) as unknown as WebSocket,
    });
    client.onState((s) => states.push(s));
    client.onMessage((m) => messages.push(m));
  });

  afterEach(async () => {
    client.stop();
    await gw.close();
  });

  it("reconnects after the connection drops and resubscribes from the seq its owner reports", async () => {
    let after = -1;
    client.start();
    await waitFor(() => client.connection.state === "open", 10_000, "open");
    client.subscribe("s-1", () => after);
    await waitFor(() => gw.subscribes().length === 1, 10_000, "first subscribe");
    expect(gw.subscribes()[0]).toEqual({ type: "subscribe", session_id: "s-1", after_seq: -1 });

    for (let i = 0; i < 5; i++) gw.publish(token(i));
    await waitFor(() => messages.filter((m) => m.type === "token").length === 5, 10_000, "5 tokens");
    after = 4;

    gw.cut();
    await waitFor(() => client.connection.state === "reconnecting", 10_000, "reconnecting");
    expect(client.connection.lastError).toMatch(/closed|error/);
    expect(client.connection.retryAt).not.toBeNull();
    await waitFor(() => gw.subscribes().length === 2, 10_000, "resubscribe");
    expect(gw.subscribes()[1]).toEqual({ type: "subscribe", session_id: "s-1", after_seq: 4 });
    expect(client.connection).toMatchObject({ state: "open", attempt: 0 });
    expect(states.map((s) => s.state)).toContain("reconnecting");
  });

  it("backs off while the server is away and comes back when it returns", async () => {
    client.start();
    await waitFor(() => client.connection.state === "open", 10_000, "open");
    const port = Number(new URL(gw.url).port);
    await gw.close();
    await waitFor(() => client.connection.attempt >= 3, 10_000, "three failed attempts");
    const delays = states.filter((s) => s.retryAt !== null).map((s) => s.attempt);
    expect(delays.slice(0, 3)).toEqual([1, 2, 3]);
    // The server comes back on the same port.
    const { WebSocketServer } = await import("ws");
    const again = new WebSocketServer({ port, host: "127.0.0.1" });
    try {
      client.reconnectNow();
      await waitFor(() => client.connection.state === "open", 10_000, "reopen");
      expect(client.connection.attempt).toBe(0);
    } finally {
      client.stop();
      await new Promise<void>((r) => again.close(() => r()));
    }
  });

  it("counts and drops frames that do not parse, and stays open", async () => {
    client.start();
    await waitFor(() => client.connection.state === "open", 10_000, "open");
    gw.sendRaw("not json");
    gw.sendRaw(JSON.stringify({ type: "token", session_id: "s-1" }));
    gw.sendRaw(JSON.stringify({ type: "pong" }));
    await waitFor(() => messages.length === 1, 10_000, "pong");
    expect(messages[0]).toEqual({ type: "pong" });
    expect(client.connection.badFrames).toBe(2);
    expect(client.connection.state).toBe("open");
  });

  it("ignores a message type it does not know: not a bad frame, no error, the next message still arrives", async () => {
    client.start();
    await waitFor(() => client.connection.state === "open", 10_000, "open");
    gw.sendRaw(JSON.stringify({ type: "forecast", session_id: "s-1", seq: 0 }));
    gw.sendRaw(JSON.stringify({ type: "scores", session_id: "s-1", seq: 0, token_seq: 3, tokens: 4, answer_complete: true, p_wrong: 0.5 }));
    gw.sendRaw(JSON.stringify({ type: "pong" }));
    await waitFor(() => messages.length === 2, 10_000, "scores and pong");
    expect(messages.map((m) => m.type)).toEqual(["scores", "pong"]);
    expect(client.connection).toMatchObject({ state: "open", badFrames: 0, ignoredFrames: 1, lastError: null });
  });

  it("sends nothing while closed and says so", () => {
    expect(client.send({ type: "ping" })).toBe(false);
  });
});
