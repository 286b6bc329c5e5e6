import { describe, expect, it } from "vitest";
import { alert, risk, session, SID, token } from "../../../test/factories";
import { SessionStore } from "../../../shared/session/store/sessionStore";
import { ReplayPlayer } from "./replay";

function recorded(): SessionStore {
  const s = new SessionStore(SID);
  s.apply(session("started", { prompt: "p", model: "m" }));
  for (let i = 0; i < 10; i++) s.apply({ ...token(i), token_ts_ns: 1e18 + i * 100e6 }); // 100 ms apart
  s.apply(alert(0, 3));
  s.apply(risk(1, "warning"));
  s.apply({ type: "done", session_id: SID, status: "finished", reason: "eos", tokens: 10, summary: null });
  return s;
}

describe("ReplayPlayer", () => {
  it("shows tokens at their recorded spacing and alerts right after their token", () => {
    const p = new ReplayPlayer(recorded(), 1000);
    expect(p.duration).toBe(900);
    p.step(0);
    expect(p.store.tokenCount).toBe(1);
    p.step(250);
    expect(p.store.tokenCount).toBe(3);
    expect(p.store.alerts).toHaveLength(0);
    p.step(300);
    expect(p.store.tokenCount).toBe(4);
    expect(p.store.alerts.map((a) => a.token_seq)).toEqual([3]);
    expect(p.store.status).toBe("started");
    expect(p.step(900)).toBe(true);
    expect(p.store.tokenCount).toBe(10);
    expect(p.store.risks).toHaveLength(1);
    expect(p.store.status).toBe("finished");
    expect(p.store.complete).toBe(true);
  });

  it("spaces batch-pushed tokens (same timestamp) at 20 ms", () => {
    const s = new SessionStore(SID);
    for (let i = 0; i < 5; i++) s.apply({ ...token(i), token_ts_ns: 1e18 });
    expect(new ReplayPlayer(s, 100).duration).toBe(80);
  });
});

describe("a replay's store", () => {
  it("is marked as a replay (the status reads Replaying, not Generating)", () => {
    const source = new SessionStore("s1", 100);
    expect(new ReplayPlayer(source, 100).store.replay).toBe(true);
    expect(source.replay).toBe(false);
  });
});
