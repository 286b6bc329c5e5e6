/**
 * React binding of a SessionStore: components re-render at most once per animation frame, however
 * many messages arrive in between (50 tokens/s stays 50 store updates, ≤ 60 renders).
 */
import { useCallback, useSyncExternalStore } from "react";
import type { SessionStore } from "./sessionStore";

export function subscribePerFrame(store: SessionStore, onChange: () => void): () => void {
  let frame: number | null = null;
  const off = store.subscribe(() => {
    if (frame !== null) return;
    frame = requestAnimationFrame(() => {
      frame = null;
      onChange();
    });
  });
  return () => {
    off();
    if (frame !== null) cancelAnimationFrame(frame);
  };
}

/** The store's version, updated once per frame; read the store's fields directly. */
export function useStoreVersion(store: SessionStore | null): number {
  const subscribe = useCallback(
    (onChange: () => void) => (store ? subscribePerFrame(store, onChange) : () => {}),
    [store],
  );
  return useSyncExternalStore(subscribe, () => store?.version ?? -1);
}
