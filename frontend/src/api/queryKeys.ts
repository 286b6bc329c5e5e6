/** TanStack Query's cache keys for the REST answers, in one place (app/queries.ts). */
import type { SessionQuery } from "./client";

export const queryKeys = {
  config: ["config"] as const,
  allSessions: ["sessions"] as const,
  sessions: (q: SessionQuery) => ["sessions", q] as const,
  session: (id: string) => ["session", id] as const,
};
