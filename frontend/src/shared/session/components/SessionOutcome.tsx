/**
 * A plain sentence for endings the rest of the view cannot show: a session that failed (its reason,
 * prominently) and one that ended before its first token (otherwise just an empty chart and text).
 */
import type { SessionStatus } from "../../../api/types";

export interface OutcomeInput {
  status: SessionStatus | null;
  reason: string | null;
  /** Tokens the session has in all; null until the end is known. */
  expectedTokens: number | null;
  tokenCount: number;
}

export interface Outcome {
  kind: "failed" | "empty";
  title: string;
  detail: string;
}

export const EMPTY_EOS_DETAIL =
  "The model ended the text at once (end of sequence before any token). Try chat mode, another seed or a lower temperature.";

export function sessionOutcome({ status, reason, expectedTokens, tokenCount }: OutcomeInput): Outcome | null {
  if (status === "failed") {
    return { kind: "failed", title: "The generation failed:", detail: reason ?? "No reason was given." };
  }
  const empty = expectedTokens === 0 && tokenCount === 0;
  if (!empty) return null;
  if (status === "finished") {
    const detail =
      reason === null || reason === "eos"
        ? EMPTY_EOS_DETAIL
        : `The session ended (${reason}) before any token. Try chat mode, another seed or a lower temperature.`;
    return { kind: "empty", title: "No tokens.", detail };
  }
  if (status === "cancelled") {
    return { kind: "empty", title: "No tokens.", detail: "The session was stopped before its first token." };
  }
  return null;
}

export function SessionOutcome(props: OutcomeInput) {
  const outcome = sessionOutcome(props);
  if (!outcome) return null;
  return (
    <div
      className={`outcome outcome-${outcome.kind}`}
      role={outcome.kind === "failed" ? "alert" : "status"}
      data-testid="session-outcome"
      data-kind={outcome.kind}
    >
      <strong>
        {outcome.kind === "failed" ? "✕ " : "∅ "}
        {outcome.title}
      </strong>{" "}
      <span className="outcome-detail">{outcome.detail}</span>
    </div>
  );
}
