/**
 * A loopback WebSocket server speaking the /ws protocol for one session, for the client tests: the
 * client under test talks to a real socket, and the test controls what the "gateway" publishes,
 * drops and replays, and when it drops the connection.
 */
import { WebSocketServer, type WebSocket as ServerSocket } from "ws";
import type { ServerMessage, TokenMessage } from "../api/types";

export class GatewayDouble {
  readonly server: WebSocketServer;
  readonly received: Record<string, unknown>[] = [];
  readonly published: ServerMessage[] = [];
  private readonly sockets = new Set<ServerSocket>();
  private readonly subscribed = new Map<ServerSocket, Set<string>>();
  /** When set, live messages for which this returns true are not sent (a slow socket's drops). */
  drop: ((m: ServerMessage) => boolean) | null = null;

  private constructor(server: WebSocketServer) {
    this.server = server;
    server.on("connection", (ws) => {
      this.sockets.add(ws);
      this.subscribed.set(ws, new Set());
      ws.on("close", () => {
        this.sockets.delete(ws);
        this.subscribed.delete(ws);
      });
      ws.on("message", (data) => {
        const msg = JSON.parse(String(data)) as Record<string, unknown>;
        this.received.push(msg);
        if (msg.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
        if (msg.type === "subscribe") this.replay(ws, String(msg.session_id), Number(msg.after_seq));
      });
    });
  }

  static async start(): Promise<GatewayDouble> {
    const server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    return new GatewayDouble(server);
  }

  get url(): string {
    const addr = this.server.address();
    if (typeof addr === "string" || addr === null) throw new Error("no address");
    return `ws://127.0.0.1:${addr.port}/ws`;
  }

  get connections(): number {
    return this.sockets.size;
  }

  subscribes(): { session_id: string; after_seq: number }[] {
    return this.received.filter((m) => m.type === "subscribe") as { session_id: string; after_seq: number }[];
  }

  /** Record a message as happened and send it live to every subscriber of its session. */
  publish(m: ServerMessage): void {
    this.published.push(m);
    if (this.drop?.(m)) return;
    const sid = "session_id" in m ? m.session_id : null;
    for (const [ws, subs] of this.subscribed) if (sid && subs.has(sid)) ws.send(JSON.stringify(m));
  }

  sendRaw(text: string): void {
    for (const ws of this.sockets) ws.send(text);
  }

  /** Kill every connection without a close handshake (a network loss). */
  cut(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  tokensOf(sid: string): TokenMessage[] {
    return this.published.filter((m): m is TokenMessage => m.type === "token" && m.session_id === sid);
  }

  private closed = false;

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private replay(ws: ServerSocket, sid: string, after: number): void {
    this.subscribed.get(ws)?.add(sid);
    let last = after;
    for (const m of this.published) {
      if (!("session_id" in m) || m.session_id !== sid) continue;
      if (m.type === "token") {
        if (m.seq <= after) continue;
        last = Math.max(last, m.seq);
      }
      ws.send(JSON.stringify(m));
    }
    ws.send(JSON.stringify({ type: "replayed", session_id: sid, last_seq: last }));
  }
}

export async function waitFor(cond: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
