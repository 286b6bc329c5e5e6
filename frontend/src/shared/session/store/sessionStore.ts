/**
 * The live-stream store of one session: everything the views show, built from WebSocket messages
 * and REST snapshots in any order, any number of times.
 *
 * Invariants (tested in sessionStore.test.ts):
 * - a message is applied at most once: tokens, alerts and risks are keyed by (type, seq);
 * - tokens are kept by position, so out-of-order arrival yields the same text as in-order arrival;
 * - `contiguous` is the last seq up to which every token is present; it is the `after_seq` a
 *   resubscribe asks for, and the chart is fed in seq order from it, never with a gap or a repeat;
 * - the chart's ring buffer holds at most `chartPoints` points;
 * - `scores` is the live scores message with the highest seq seen (WebSocket or REST `live_scores`).
 */
import type {
  AlertMessage,
  RiskLevel,
  RiskMessage,
  ScoresMessage,
  SequenceScores,
  ServerMessage,
  SessionHistory,
  SessionStatus,
  Severity,
  Summary,
  TokenMessage,
} from "../../../api/types";
import { TERMINAL_STATUSES } from "../../../api/types";
import { peakRisk } from "../../../lib/metrics";
import { RingBuffer } from "../../../lib/ringBuffer";

export const CHART_COLUMNS = ["seq", "hbar_s", "entropy", "surprisal"] as const;
export type ChartColumn = (typeof CHART_COLUMNS)[number];

const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };
const RISK_RANK: Record<RiskLevel, number> = { safe: 0, warning: 1, critical: 2, emergency: 3 };
const RATE_WINDOW = 32;

export type Listener = () => void;

export class SessionStore {
  readonly sessionId: string;
  status: SessionStatus | null = null;
  model: string | null = null;
  prompt: string | null = null;
  reason: string | null = null;
  summary: Summary | null = null;
  /** Tokens the session has in all, once known (from `done` or a finished snapshot). */
  expectedTokens: number | null = null;
  error: string | null = null;
  /** GET /sessions/{id} answered 404 and nothing has arrived since: no such session (yet). */
  notFound = false;
  /** A replay of a recorded session (features/sessions/store/replay.ts): "started" means replaying. */
  replay = false;
  /** The latest live sequence scores (highest seq), while the session runs; the summary has the final ones. */
  scores: ScoresMessage | null = null;

  /** Tokens by seq; holes are tokens not received yet. */
  readonly tokens: (TokenMessage | undefined)[] = [];
  /** Alerts in seq order (the alerter's order), and risk changes likewise. */
  readonly alerts: AlertMessage[] = [];
  readonly risks: RiskMessage[] = [];
  /** Highest alert severity per token seq. */
  readonly alertByToken = new Map<number, Severity>();
  readonly chart: RingBuffer<ChartColumn>;

  private received = 0;
  private contiguousSeq = -1;
  private readonly alertSeqs = new Set<number>();
  private readonly riskSeqs = new Set<number>();
  private hbarSum = 0;
  private hbarCount = 0;
  private _version = 0;
  private readonly listeners = new Set<Listener>();

  constructor(sessionId: string, chartPoints = 20_000) {
    this.sessionId = sessionId;
    this.chart = new RingBuffer(CHART_COLUMNS, chartPoints);
  }

  // --- reading -------------------------------------------------------------------------------

  /** Changes on every applied change; views compare it to know when to redraw. */
  get version(): number {
    return this._version;
  }
  /** Unique tokens received. */
  get tokenCount(): number {
    return this.received;
  }
  /** Every token with seq ≤ this is present. -1 when token 0 is missing. */
  get contiguous(): number {
    return this.contiguousSeq;
  }
  get maxSeq(): number {
    return this.tokens.length - 1;
  }
  get latest(): TokenMessage | undefined {
    return this.tokens[this.contiguousSeq];
  }
  get meanHbar(): number | null {
    return this.hbarCount ? this.hbarSum / this.hbarCount : null;
  }
  get risk(): RiskLevel {
    return this.riskLevel ?? "safe";
  }
  /**
   * The current risk level, or null while nothing has been judged yet (no token, no risk change,
   * no summary): the card then says it is waiting instead of claiming "safe".
   */
  get riskLevel(): RiskLevel | null {
    if (this.risks.length) return this.risks[this.risks.length - 1]!.level;
    if (this.summary) return this.summary.final_risk;
    return this.received > 0 ? "safe" : null;
  }
  /** The latest risk change (its reason names the evidence), if any. */
  get latestRisk(): RiskMessage | undefined {
    return this.risks[this.risks.length - 1];
  }
  /** Highest level reached so far: the summary's peak, else the highest risk change. */
  get peakRisk(): RiskLevel | null {
    let peak: RiskLevel | null = this.summary ? peakRisk(this.summary) : null;
    for (const r of this.risks) if (peak === null || RISK_RANK[r.level] > RISK_RANK[peak]) peak = r.level;
    return peak ?? this.riskLevel;
  }
  /**
   * Calibrated P(answer wrong) when known: the summary's (the final judgement) once the session
   * ended, else the latest live scores', else the latest risk change that carries one.
   */
  get pWrong(): number | null {
    if (this.summary?.p_wrong != null) return this.summary.p_wrong;
    if (!this.summary && this.scores?.p_wrong != null) return this.scores.p_wrong;
    for (let i = this.risks.length - 1; i >= 0; i--) {
      const p = this.risks[i]!.p_wrong;
      if (p != null) return p;
    }
    return null;
  }
  /**
   * Sequence scores of the answer span: the summary's (final) once it is here, else the latest live
   * scores' (so far, until `answerComplete`). Null before the alerter sent any.
   */
  get answerScores(): SequenceScores | null {
    return this.summary?.answer_scores ?? this.scores?.answer_scores ?? null;
  }
  /** Whether the answer span's scores are final. */
  get answerComplete(): boolean {
    return this.summary?.answer_scores != null || this.scores?.answer_complete === true;
  }
  get terminal(): boolean {
    return this.status !== null && TERMINAL_STATUSES.includes(this.status);
  }
  /** True when the session ended and every one of its tokens is here. */
  get complete(): boolean {
    return this.terminal && this.expectedTokens !== null && this.contiguousSeq + 1 >= this.expectedTokens;
  }

  /**
   * Tokens per second from the producer's timestamps: over the last few tokens while the session
   * runs, over the whole session once it ended.
   */
  get tokensPerSecond(): number | null {
    const last = this.contiguousSeq;
    const first = this.terminal ? 0 : Math.max(0, last - RATE_WINDOW + 1);
    if (last - first < 1) return null;
    const dt = (this.tokens[last]!.token_ts_ns - this.tokens[first]!.token_ts_ns) / 1e9;
    return dt > 0 ? (last - first) / dt : null;
  }

  /** Seq ranges [from, to] (inclusive) known to be missing. */
  missingRanges(): [number, number][] {
    const end = Math.max(this.maxSeq, (this.expectedTokens ?? 0) - 1);
    const out: [number, number][] = [];
    let from = -1;
    for (let s = this.contiguousSeq + 1; s <= end; s++) {
      if (this.tokens[s] === undefined) {
        if (from < 0) from = s;
      } else if (from >= 0) {
        out.push([from, s - 1]);
        from = -1;
      }
    }
    if (from >= 0) out.push([from, end]);
    return out;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // --- writing -------------------------------------------------------------------------------

  /** Apply one server message; returns whether anything changed. */
  apply(msg: ServerMessage): boolean {
    if ("session_id" in msg && msg.session_id && msg.session_id !== this.sessionId) return false;
    const changed = this.applyQuiet(msg);
    if (changed) this.changed();
    return changed;
  }

  /** The gateway knows no session by this id (its snapshot said 404); cleared by anything that arrives. */
  markNotFound(): void {
    if (this.notFound || this.status !== null || this.tokenCount > 0) return;
    this.notFound = true;
    this.changed();
  }

  /** Apply a REST snapshot (GET /sessions/{id}); merges with what is already here. */
  applyHistory(h: SessionHistory): boolean {
    let changed = false;
    const s = h.session;
    if (s.session_id !== this.sessionId) return false;
    changed = this.setStatus(s.status) || changed;
    if (s.model && this.model !== s.model) {
      this.model = s.model;
      changed = true;
    }
    if (s.prompt && this.prompt !== s.prompt) {
      this.prompt = s.prompt;
      changed = true;
    }
    if (s.reason && this.reason !== s.reason) {
      this.reason = s.reason;
      changed = true;
    }
    for (const t of h.tokens) changed = this.addToken(t) || changed;
    for (const a of h.alerts) changed = this.addAlert(a) || changed;
    for (const r of h.risks) changed = this.addRisk(r) || changed;
    if (h.summary && !this.summary) {
      this.summary = h.summary;
      changed = true;
    }
    // The gateway sends live_scores only while there is no summary; the summary's scores win anyway.
    if (!h.summary && h.live_scores) changed = this.setScores(h.live_scores) || changed;
    if (this.terminal && this.expectedTokens === null) {
      this.expectedTokens = h.summary?.tokens ?? s.tokens;
      changed = true;
    }
    if (changed) this.changed();
    return changed;
  }

  private applyQuiet(msg: ServerMessage): boolean {
    switch (msg.type) {
      case "token":
        return this.addToken(msg);
      case "alert":
        return this.addAlert(msg);
      case "risk":
        return this.addRisk(msg);
      case "scores":
        return this.setScores(msg);
      case "session": {
        let c = this.setStatus(msg.status);
        if (msg.model && msg.model !== this.model) {
          this.model = msg.model;
          c = true;
        }
        if (msg.prompt && msg.prompt !== this.prompt) {
          this.prompt = msg.prompt;
          c = true;
        }
        if (msg.reason && msg.reason !== this.reason) {
          this.reason = msg.reason;
          c = true;
        }
        return c;
      }
      case "done": {
        let c = this.setStatus(msg.status);
        if (msg.reason !== this.reason && msg.reason) {
          this.reason = msg.reason;
          c = true;
        }
        if (this.expectedTokens !== msg.tokens) {
          this.expectedTokens = msg.tokens;
          c = true;
        }
        if (msg.summary) {
          this.summary = msg.summary;
          c = true;
        }
        return c;
      }
      case "error":
        if (this.error === msg.error.message) return false;
        this.error = msg.error.message;
        return true;
      default:
        return false;
    }
  }

  private setStatus(status: SessionStatus): boolean {
    // Lifecycle only moves forward: a late "started" never overrides "finished".
    const order: Record<SessionStatus, number> = { queued: 0, started: 1, finished: 2, failed: 2, cancelled: 2 };
    if (this.status !== null && order[status] <= order[this.status]) return false;
    this.status = status;
    return true;
  }

  private addToken(t: TokenMessage): boolean {
    if (t.seq < 0 || this.tokens[t.seq] !== undefined) return false;
    this.tokens[t.seq] = t;
    this.received++;
    // Advance the contiguous prefix, feeding the chart in seq order.
    while (this.tokens[this.contiguousSeq + 1] !== undefined) {
      this.contiguousSeq++;
      const tok = this.tokens[this.contiguousSeq]!;
      const m = tok.metrics;
      this.chart.push({
        seq: tok.seq,
        hbar_s: m.hbar_s ?? Number.NaN,
        entropy: m.entropy ?? Number.NaN,
        surprisal: m.surprisal ?? Number.NaN,
      });
      if (m.hbar_s !== null) {
        this.hbarSum += m.hbar_s;
        this.hbarCount++;
      }
    }
    if (this.status === null || this.status === "queued") this.setStatus("started");
    return true;
  }

  private addAlert(a: AlertMessage): boolean {
    if (this.alertSeqs.has(a.seq)) return false;
    this.alertSeqs.add(a.seq);
    insertBySeq(this.alerts, a);
    const prev = this.alertByToken.get(a.token_seq);
    if (prev === undefined || SEVERITY_RANK[a.severity] > SEVERITY_RANK[prev]) {
      this.alertByToken.set(a.token_seq, a.severity);
    }
    return true;
  }

  private addRisk(r: RiskMessage): boolean {
    if (this.riskSeqs.has(r.seq)) return false;
    this.riskSeqs.add(r.seq);
    insertBySeq(this.risks, r);
    return true;
  }

  /** Keep the scores message with the highest seq (a replay repeats the latest; REST may lag the socket). */
  private setScores(sc: ScoresMessage): boolean {
    if (sc.session_id !== this.sessionId) return false;
    if (this.scores !== null && sc.seq <= this.scores.seq) return false;
    this.scores = sc;
    return true;
  }

  private changed(): void {
    if (this.notFound && (this.status !== null || this.tokenCount > 0)) this.notFound = false;
    this._version++;
    for (const l of this.listeners) l();
  }
}

function insertBySeq<T extends { seq: number }>(list: T[], item: T): void {
  let i = list.length;
  while (i > 0 && list[i - 1]!.seq > item.seq) i--;
  list.splice(i, 0, item);
}
