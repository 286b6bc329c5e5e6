/**
 * The one WebSocket client of the dashboard.
 *
 * - Reconnects on its own with exponential backoff and jitter (base · 2^attempt, capped), at once
 *   when the browser comes back online, or when asked (`reconnectNow`).
 * - Keeps a set of subscriptions; after every (re)connect it resubscribes each one with the
 *   `after_seq` its owner reports, so the server replays only what the page has not seen.
 * - Pings; a socket silent for two ping intervals is presumed dead and replaced.
 * - A frame that does not parse is counted and dropped; the connection stays up.
 * - A message of a type this dashboard does not know is ignored (counted apart, not an error):
 *   the gateway adds types without a new protocol version (docs/api.md).
 */
import { parseServerMessage } from "./validate";
import type { ClientMessage, ServerMessage } from "./types";

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface ConnectionInfo {
  state: ConnectionState;
  /** Failed attempts since the last successful open. */
  attempt: number;
  /** When the next attempt starts (ms since epoch), while reconnecting. */
  retryAt: number | null;
  lastError: string | null;
  /** Frames that did not parse (dropped). */
  badFrames: number;
  /** Messages of a type this dashboard does not know (ignored; not an error). */
  ignoredFrames: number;
}

export interface SocketOptions {
  baseMs: number;
  maxMs: number;
  pingMs: number;
  /** Injected for tests. */
  createSocket?: (url: string) => WebSocket;
  random?: () => number;
  now?: () => number;
}

type MessageListener = (msg: ServerMessage) => void;
type StateListener = (info: ConnectionInfo) => void;

/** Delay before reconnect attempt n (0-based): base·2^n capped at max, times a jitter in [0.5, 1]. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(raw * (0.5 + 0.5 * random()));
}

export class SocketClient {
  private ws: WebSocket | null = null;
  private info: ConnectionInfo = { state: "idle", attempt: 0, retryAt: null, lastError: null, badFrames: 0, ignoredFrames: 0 };
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private readonly subs = new Map<string, () => number>();
  private readonly messageListeners = new Set<MessageListener>();
  private readonly stateListeners = new Set<StateListener>();
  private readonly opts: Required<SocketOptions>;
  private stopped = true;

  constructor(
    /** Asked on every connect, so a changed API key takes effect on the next reconnect. */
    private readonly url: () => string,
    opts: SocketOptions,
  ) {
    this.opts = {
      createSocket: (u) => new WebSocket(u),
      random: Math.random,
      now: Date.now,
      ...opts,
    };
  }

  get connection(): ConnectionInfo {
    return this.info;
  }

  onMessage(l: MessageListener): () => void {
    this.messageListeners.add(l);
    return () => this.messageListeners.delete(l);
  }

  onState(l: StateListener): () => void {
    this.stateListeners.add(l);
    l(this.info);
    return () => this.stateListeners.delete(l);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (typeof window !== "undefined") window.addEventListener("online", this.handleOnline);
    this.open();
  }

  stop(): void {
    this.stopped = true;
    if (typeof window !== "undefined") window.removeEventListener("online", this.handleOnline);
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      this.detach(ws);
      ws.close(1000, "client stopped");
    }
    this.setInfo({ state: "closed", retryAt: null });
  }

  /** Skip the remaining backoff and try now. */
  reconnectNow(): void {
    if (this.stopped || this.info.state === "open" || this.info.state === "connecting") return;
    this.open();
  }

  /** Follow a session; `afterSeq` is asked again on every reconnect. */
  subscribe(sessionId: string, afterSeq: () => number): void {
    this.subs.set(sessionId, afterSeq);
    this.send({ type: "subscribe", session_id: sessionId, after_seq: afterSeq() });
  }

  unsubscribe(sessionId: string): void {
    if (this.subs.delete(sessionId)) this.send({ type: "unsubscribe", session_id: sessionId });
  }

  /** Sends when open; returns false (and sends nothing) otherwise. */
  send(msg: ClientMessage): boolean {
    if (!this.ws || this.info.state !== "open") return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  private handleOnline = (): void => this.reconnectNow();

  private open(): void {
    this.clearTimers();
    if (this.ws) {
      this.detach(this.ws);
      this.ws.close();
    }
    this.setInfo({ state: this.info.attempt > 0 ? "reconnecting" : "connecting", retryAt: null });
    let ws: WebSocket;
    try {
      ws = this.opts.createSocket(this.url());
    } catch (e) {
      this.scheduleRetry(String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastFrameAt = this.opts.now();
      this.setInfo({ state: "open", attempt: 0, retryAt: null, lastError: null });
      for (const [id, afterSeq] of this.subs) this.send({ type: "subscribe", session_id: id, after_seq: afterSeq() });
      this.pingTimer = setInterval(() => this.keepAlive(), this.opts.pingMs);
    };
    ws.onmessage = (ev: MessageEvent) => {
      this.lastFrameAt = this.opts.now();
      if (typeof ev.data !== "string") return;
      let msg: ServerMessage | null;
      try {
        msg = parseServerMessage(ev.data);
      } catch (e) {
        this.setInfo({ badFrames: this.info.badFrames + 1, lastError: String(e) });
        return;
      }
      if (msg === null) {
        // Counted quietly: no state listener is woken for a message nobody shows.
        this.info = { ...this.info, ignoredFrames: this.info.ignoredFrames + 1 };
        return;
      }
      for (const l of this.messageListeners) l(msg);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.scheduleRetry(ev.reason || `connection closed (code ${ev.code})`);
    };
    ws.onerror = () => {
      // A close event follows; nothing to do here but keep the reason readable.
      this.setInfo({ lastError: "connection error" });
    };
  }

  private keepAlive(): void {
    if (this.opts.now() - this.lastFrameAt > 2 * this.opts.pingMs) {
      const ws = this.ws;
      this.ws = null;
      if (ws) {
        this.detach(ws);
        ws.close();
      }
      this.scheduleRetry("no answer from the gateway");
      return;
    }
    this.send({ type: "ping" });
  }

  private scheduleRetry(reason: string): void {
    this.clearTimers();
    if (this.stopped) return;
    const delay = backoffDelay(this.info.attempt, this.opts.baseMs, this.opts.maxMs, this.opts.random);
    this.setInfo({
      state: "reconnecting",
      attempt: this.info.attempt + 1,
      retryAt: this.opts.now() + delay,
      lastError: reason,
    });
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  private detach(ws: WebSocket): void {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }

  private clearTimers(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.retryTimer = this.pingTimer = null;
  }

  private setInfo(patch: Partial<ConnectionInfo>): void {
    this.info = { ...this.info, ...patch };
    for (const l of this.stateListeners) l(this.info);
  }
}
