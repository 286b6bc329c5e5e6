/**
 * Replays a recorded session into a fresh SessionStore at its original pace (or faster), so the
 * same live views show how it unfolded: tokens at their recorded spacing (capped at 2 s, at least
 * 20 ms so a batch-pushed session still animates at 50 tokens/s), each alert and risk change right
 * after its token, and the summary at the end.
 */
import type { ServerMessage } from "../../../api/types";
import { SessionStore } from "../../../shared/session/store/sessionStore";

const MIN_GAP_MS = 20;
const MAX_GAP_MS = 2000;

export class ReplayPlayer {
  readonly store: SessionStore;
  /** Virtual ms at which token i is shown. */
  private readonly due: number[] = [];
  private next = 0;
  private alertIdx = 0;
  private riskIdx = 0;
  private finished = false;
  /** Virtual ms reached so far. */
  private position = -1;

  constructor(
    private readonly source: SessionStore,
    chartPoints: number,
  ) {
    this.store = new SessionStore(source.sessionId, chartPoints);
    this.store.replay = true;
    this.store.apply({
      schema_version: 1,
      type: "session",
      session_id: source.sessionId,
      seq: 1,
      status: "started",
      reason: null,
      model: source.model,
      provider: null,
      prompt: source.prompt,
      tokens: null,
      prompt_tokens: null,
      verification: null,
    });
    let t = 0;
    for (let s = 0; s <= source.contiguous; s++) {
      if (s > 0) {
        const gap = (source.tokens[s]!.token_ts_ns - source.tokens[s - 1]!.token_ts_ns) / 1e6;
        t += Math.min(MAX_GAP_MS, Math.max(MIN_GAP_MS, gap));
      }
      this.due.push(t);
    }
  }

  /** Total virtual duration, ms. */
  get duration(): number {
    return this.due[this.due.length - 1] ?? 0;
  }

  get done(): boolean {
    return this.finished;
  }

  /** Show everything due at virtual time `ms`; returns whether the replay is over. */
  step(ms: number): boolean {
    if (this.finished) return true;
    this.position = Math.max(this.position, ms);
    const out: ServerMessage[] = [];
    while (this.next < this.due.length && this.due[this.next]! <= ms) {
      const seq = this.next++;
      out.push(this.source.tokens[seq]!);
      while (this.alertIdx < this.source.alerts.length && this.source.alerts[this.alertIdx]!.token_seq <= seq) {
        out.push(this.source.alerts[this.alertIdx++]!);
      }
      while (this.riskIdx < this.source.risks.length && this.source.risks[this.riskIdx]!.token_seq <= seq) {
        out.push(this.source.risks[this.riskIdx++]!);
      }
    }
    if (this.next >= this.due.length) {
      for (const a of this.source.alerts.slice(this.alertIdx)) out.push(a);
      for (const r of this.source.risks.slice(this.riskIdx)) out.push(r);
      this.alertIdx = this.source.alerts.length;
      this.riskIdx = this.source.risks.length;
      out.push({
        type: "done",
        session_id: this.source.sessionId,
        status: this.source.status && this.source.terminal ? this.source.status : "finished",
        reason: this.source.reason,
        tokens: this.source.contiguous + 1,
        summary: this.source.summary,
      });
      this.finished = true;
    }
    for (const m of out) this.store.apply(m);
    return this.finished;
  }

  /** Run on animation frames at `speed`× from where it is, until over or stopped; returns the stop function. */
  play(speed: number, onEnd: () => void): () => void {
    const from = Math.max(0, this.position);
    const start = performance.now();
    let frame = 0;
    const tick = (now: number) => {
      if (this.step(from + Math.max(0, now - start) * speed)) onEnd();
      else frame = requestAnimationFrame(tick);
    };
    frame = requestAnimationFrame(tick);
    return () => cancelAnimationFrame(frame);
  }
}
