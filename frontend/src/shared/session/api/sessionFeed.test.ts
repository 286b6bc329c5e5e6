// @vitest-environment node
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket as NodeWebSocket } from "ws";
import { SocketClient } from "../../../api/socket";
import type { SessionHistory } from "../../../api/types";
import { alert, history, missed, SID, token } from "../../../test/factories";
import { GatewayDouble, waitFor } from "../../../test/gatewayDouble";
import { SessionFeed } from "./sessionFeed";

describe("SessionFeed: live stream, reconnect and gap filling end to end over a socket", () => {
  let gw: GatewayDouble;
  let socket: SocketClient;
  let snapshots: number;
  let feed: SessionFeed;
  /** The REST side: what GET /sessions/{id} would return, built from what the gateway published. */
  const api = {
    session: async (): Promise<SessionHistory> => {
      snapshots++;
      const h = history(gw.tokensOf(SID));
      const done = gw.published.find((m) => m.type === "done");
      if (done) h.session.status = "finished";
      return h;
    },
  };

  beforeEach(async () => {
    gw = await GatewayDouble.start();
    snapshots = 0;
    const url = gw.url;
    socket = new SocketClient(() => url, {
      baseMs: 10,
      maxMs: 50,
      pingMs: 60_000,
      createSocket: (u) => new NodeWebSocket(u) as unknown as WebSocket,
    });
    socket.start();
    await waitFor(() => socket.connection.state === "open", 10_000, "open");
    feed = new SessionFeed(SID, { api, socket, chartPoints: 1000, retryDelaysMs: [10, 20, 40], gapWaitMs: 50 });
  });

  afterEach(async () => {
    feed.stop();
    socket.stop();
    await gw.close();
  });

  const seqs = () => feed.store.tokens.map((t) => t?.seq);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);

  it("loads the snapshot, then subscribes after its last seq", async () => {
    for (let i = 0; i < 3; i++) gw.publish(token(i));
    await feed.start({ snapshot: true });
    await waitFor(() => gw.subscribes().length === 1, 10_000, "subscribe");
    expect(gw.subscribes()[0]!.after_seq).toBe(2);
    for (let i = 3; i < 6; i++) gw.publish(token(i));
    await waitFor(() => feed.store.tokenCount === 6, 10_000, "6 tokens");
    expect(seqs()).toEqual(range(6));
  });

  it("starts again after a stop (StrictMode's effect, cleanup, effect) and subscribes once, from the second start", async () => {
    for (let i = 0; i < 3; i++) gw.publish(token(i));
    const first = feed.start({ snapshot: true });
    feed.stop();
    await feed.start({ snapshot: true });
    await first;
    await waitFor(() => gw.subscribes().length === 1, 10_000, "subscribe");
    expect(gw.subscribes()[0]!.after_seq).toBe(2);
    gw.publish(token(3));
    await waitFor(() => feed.store.tokenCount === 4, 10_000, "4 tokens");
    expect(seqs()).toEqual(range(4));
    // The overtaken start did not subscribe too (a second subscribe would replay everything again):
    // a ping sent now arrives after anything the feed sent before it.
    socket.send({ type: "ping" });
    await waitFor(() => gw.received.some((m) => m.type === "ping"), 10_000, "ping");
    expect(gw.received.filter((m) => m.type === "subscribe")).toHaveLength(1);
  });

  it("survives a dropped connection mid-stream with no duplicate and no missing token", async () => {
    await feed.start({ snapshot: false });
    await waitFor(() => gw.subscribes().length === 1, 10_000, "subscribe");
    for (let i = 0; i < 20; i++) gw.publish(token(i));
    gw.publish(alert(0, 4));
    await waitFor(() => feed.store.tokenCount === 20, 10_000, "20 tokens");
    gw.cut();
    // Published while the socket is down: the page never saw these live.
    for (let i = 20; i < 30; i++) gw.publish(token(i));
    gw.publish(alert(1, 25, "critical"));
    await waitFor(() => gw.subscribes().length === 2, 10_000, "resubscribe");
    expect(gw.subscribes()[1]!.after_seq).toBe(19);
    for (let i = 30; i < 40; i++) gw.publish(token(i));
    gw.publish({ type: "done", session_id: SID, status: "finished", reason: "max_tokens", tokens: 40, summary: null });
    await waitFor(() => feed.store.complete, 10_000, "complete");
    expect(seqs()).toEqual(range(40));
    expect(feed.store.tokenCount).toBe(40);
    expect(feed.store.alerts.map((a) => a.seq)).toEqual([0, 1]);
    expect(feed.store.chart.column("seq")).toEqual(range(40));
    expect(snapshots).toBe(0);
  });

  it("fills what the server dropped from the REST snapshot when told `missed`", async () => {
    await feed.start({ snapshot: false });
    await waitFor(() => gw.subscribes().length === 1, 10_000, "subscribe");
    gw.drop = (m) => m.type === "token" && m.seq >= 5 && m.seq <= 9;
    for (let i = 0; i < 15; i++) gw.publish(token(i));
    gw.drop = null;
    await waitFor(() => feed.store.tokenCount === 10, 10_000, "10 tokens");
    expect(feed.store.contiguous).toBe(4);
    expect(feed.store.missingRanges()).toEqual([[5, 9]]);
    gw.publish(missed(5, 9, 5));
    await waitFor(() => feed.store.tokenCount === 15, 10_000, "gap filled");
    expect(snapshots).toBeGreaterThanOrEqual(1);
    expect(seqs()).toEqual(range(15));
    expect(feed.store.chart.column("seq")).toEqual(range(15));
  });

  it("fills a hole the server never reported once it has lasted gapWaitMs", async () => {
    await feed.start({ snapshot: false });
    await waitFor(() => gw.subscribes().length === 1, 10_000, "subscribe");
    gw.drop = (m) => m.type === "token" && (m.seq === 2 || m.seq === 3);
    for (let i = 0; i < 8; i++) gw.publish(token(i));
    gw.drop = null;
    await waitFor(() => feed.store.tokenCount === 8, 10_000, "hole filled without a missed message");
    expect(snapshots).toBe(1);
    expect(seqs()).toEqual(range(8));
  });

  it("fetches the rest when a session ends with tokens still missing", async () => {
    await feed.start({ snapshot: false });
    await waitFor(() => gw.subscribes().length === 1, 10_000, "subscribe");
    gw.drop = (m) => m.type === "token" && m.seq === 3;
    for (let i = 0; i < 6; i++) gw.publish(token(i));
    gw.drop = null;
    gw.publish({ type: "done", session_id: SID, status: "finished", reason: "eos", tokens: 6, summary: null });
    await waitFor(() => feed.store.complete, 10_000, "complete");
    expect(seqs()).toEqual(range(6));
  });
});
