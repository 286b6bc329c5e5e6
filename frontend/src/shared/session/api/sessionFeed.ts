/**
 * Keeps one SessionStore in step with the gateway: subscribes over the WebSocket (resubscribing
 * from the store's contiguous seq after a reconnect) and fills gaps from GET /sessions/{id} when the
 * server says it dropped messages (`missed`), when a replay leaves holes, or when a session ends
 * with tokens still missing.
 */
import { ApiError } from "../../../api/client";
import type { ApiClient } from "../../../api/client";
import type { SocketClient } from "../../../api/socket";
import type { ServerMessage } from "../../../api/types";
import { SessionStore } from "../store/sessionStore";

export interface FeedDeps {
  api: Pick<ApiClient, "session">;
  socket: Pick<SocketClient, "subscribe" | "unsubscribe" | "onMessage">;
  chartPoints: number;
  /** Delays between snapshot retries while tokens are still missing, ms. */
  retryDelaysMs?: readonly number[];
  /** How long a hole in the token sequence may last before the snapshot is fetched, ms. */
  gapWaitMs?: number;
}

export class SessionFeed {
  readonly store: SessionStore;
  private offMessage: (() => void) | null = null;
  private filling: Promise<void> | null = null;
  private fillAgain = false;
  private closed = false;
  /** Bumped by every start and stop: a start that a stop (and a new start) overtook gives up. */
  private run = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private retries = 0;
  private gapTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    sessionId: string,
    private readonly deps: FeedDeps,
  ) {
    this.store = new SessionStore(sessionId, deps.chartPoints);
  }

  /**
   * Start following. With `snapshot`, load GET /sessions/{id} first (opening a past or running
   * session, or after a reload), then subscribe from what it held. A stopped feed can start again
   * (React's StrictMode runs an effect, its cleanup, and the effect again on one feed).
   */
  async start({ snapshot }: { snapshot: boolean }): Promise<void> {
    const run = ++this.run;
    this.closed = false;
    this.offMessage?.();
    this.offMessage = this.deps.socket.onMessage((m) => this.onMessage(m));
    if (snapshot) {
      try {
        this.store.applyHistory(await this.deps.api.session(this.store.sessionId));
      } catch (e) {
        // 404: no such session (the gateway knows live ones before the recorder does); anything
        // else (the recorder away): the subscription's replay covers it.
        if (e instanceof ApiError && e.status === 404 && run === this.run) this.store.markNotFound();
      }
    }
    if (this.closed || run !== this.run || this.store.complete) return;
    this.deps.socket.subscribe(this.store.sessionId, () => this.store.contiguous);
  }

  stop(): void {
    this.closed = true;
    this.run++;
    this.offMessage?.();
    this.offMessage = null;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.gapTimer !== null) clearTimeout(this.gapTimer);
    this.retryTimer = this.gapTimer = null;
    this.deps.socket.unsubscribe(this.store.sessionId);
  }

  private onMessage(m: ServerMessage): void {
    if (!("session_id" in m) || m.session_id !== this.store.sessionId) return;
    this.store.apply(m);
    switch (m.type) {
      case "token":
        // A hole behind the newest token: give a late frame a moment, then fetch what is missing.
        if (this.gapTimer === null && this.filling === null && m.seq > this.store.contiguous + 1) {
          this.gapTimer = setTimeout(() => {
            this.gapTimer = null;
            if (this.store.missingRanges().length > 0) void this.fill();
          }, this.deps.gapWaitMs ?? 1000);
        }
        break;
      case "missed":
        void this.fill();
        break;
      case "replayed":
      case "done":
        if (this.store.missingRanges().length > 0) void this.fill();
        break;
    }
  }

  /** Fetch the snapshot and merge it; one request at a time, retried while tokens are missing. */
  fill(): Promise<void> {
    if (this.filling) {
      this.fillAgain = true;
      return this.filling;
    }
    this.filling = (async () => {
      do {
        this.fillAgain = false;
        try {
          this.store.applyHistory(await this.deps.api.session(this.store.sessionId));
        } catch {
          /* retried below */
        }
      } while (this.fillAgain && !this.closed);
      this.filling = null;
      this.scheduleRetryIfMissing();
    })();
    return this.filling;
  }

  private scheduleRetryIfMissing(): void {
    const delays = this.deps.retryDelaysMs ?? [500, 1000, 2000, 4000, 8000];
    if (this.closed || this.store.missingRanges().length === 0 || this.retries >= delays.length) return;
    const delay = delays[this.retries++]!;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.fill();
    }, delay);
  }
}
