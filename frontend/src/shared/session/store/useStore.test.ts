import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SID, token } from "../../../test/factories";
import { SessionStore } from "./sessionStore";
import { subscribePerFrame } from "./useStore";

describe("subscribePerFrame", () => {
  const frames: FrameRequestCallback[] = [];
  const g = globalThis as unknown as Record<string, unknown>;
  beforeEach(() => {
    frames.length = 0;
    g.requestAnimationFrame = (cb: FrameRequestCallback) => frames.push(cb);
    g.cancelAnimationFrame = (id: number) => {
      frames[id - 1] = () => {};
    };
  });
  afterEach(() => {
    delete g.requestAnimationFrame;
    delete g.cancelAnimationFrame;
  });
  const runFrame = () => frames.splice(0).forEach((cb) => cb(0));

  it("turns any number of store updates within a frame into one notification", () => {
    const store = new SessionStore(SID);
    let renders = 0;
    const off = subscribePerFrame(store, () => renders++);
    for (let i = 0; i < 100; i++) store.apply(token(i));
    expect(renders).toBe(0);
    expect(frames).toHaveLength(1);
    runFrame();
    expect(renders).toBe(1);
    runFrame();
    expect(renders).toBe(1);
    store.apply(token(100));
    runFrame();
    expect(renders).toBe(2);
    off();
    store.apply(token(101));
    runFrame();
    expect(renders).toBe(2);
  });
});
