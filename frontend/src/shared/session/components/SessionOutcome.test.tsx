// @vitest-environment jsdom
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { SID, history, session, token } from "../../../test/factories";
import { SessionStore } from "../store/sessionStore";
import { EMPTY_EOS_DETAIL, SessionOutcome, sessionOutcome } from "./SessionOutcome";

afterEach(cleanup);

const base = { status: "finished", reason: "eos", expectedTokens: 0, tokenCount: 0 } as const;

describe("sessionOutcome", () => {
  it("explains a session that ended before its first token", () => {
    expect(sessionOutcome(base)).toStrictEqual({ kind: "empty", title: "No tokens.", detail: EMPTY_EOS_DETAIL });
    expect(EMPTY_EOS_DETAIL).toContain("The model ended the text at once");
    expect(sessionOutcome({ ...base, reason: "stop" })!.detail).toContain("ended (stop) before any token");
    expect(sessionOutcome({ ...base, status: "cancelled", reason: "cancelled" })!.detail).toContain("stopped before its first token");
  });

  it("says nothing while the end is unknown, while tokens are missing, or when there are tokens", () => {
    expect(sessionOutcome({ ...base, status: "started", expectedTokens: null })).toBeNull();
    expect(sessionOutcome({ ...base, expectedTokens: null })).toBeNull();
    expect(sessionOutcome({ ...base, expectedTokens: 5, tokenCount: 0 })).toBeNull();
    expect(sessionOutcome({ ...base, expectedTokens: 5, tokenCount: 5 })).toBeNull();
  });

  it("gives a failed session's reason, with or without tokens", () => {
    const reason = "the prompt is longer than the model's context";
    expect(sessionOutcome({ ...base, status: "failed", reason })).toStrictEqual({
      kind: "failed",
      title: "The generation failed:",
      detail: reason,
    });
    expect(sessionOutcome({ status: "failed", reason, expectedTokens: 7, tokenCount: 7 })!.detail).toBe(reason);
    expect(sessionOutcome({ ...base, status: "failed", reason: null })!.detail).toBe("No reason was given.");
  });
});

describe("SessionOutcome", () => {
  it("renders a failed session's reason as an alert", () => {
    render(<SessionOutcome status="failed" reason="model file not found" expectedTokens={0} tokenCount={0} />);
    const box = screen.getByRole("alert");
    expect(box.dataset["kind"]).toBe("failed");
    expect(box.textContent).toContain("The generation failed");
    expect(box.textContent).toContain("model file not found");
  });

  it("renders a 0-token ending as a status line, and nothing for an ordinary ending", () => {
    const { rerender } = render(<SessionOutcome {...base} />);
    expect(screen.getByRole("status").textContent).toContain(EMPTY_EOS_DETAIL);
    rerender(<SessionOutcome {...base} expectedTokens={3} tokenCount={3} />);
    expect(screen.queryByTestId("session-outcome")).toBeNull();
  });

  it("follows a store fed the way the live view feeds it", () => {
    const store = new SessionStore(SID);
    store.apply(session("started"));
    store.apply({ type: "done", session_id: SID, status: "finished", reason: "eos", tokens: 0, summary: null });
    render(<SessionOutcome status={store.status} reason={store.reason} expectedTokens={store.expectedTokens} tokenCount={store.tokenCount} />);
    expect(screen.getByTestId("session-outcome").textContent).toContain("end of sequence before any token");
    cleanup();

    // A finished snapshot with tokens: no notice.
    const full = new SessionStore(SID);
    full.applyHistory(history([token(0), token(1)], "finished"));
    render(<SessionOutcome status={full.status} reason={full.reason} expectedTokens={full.expectedTokens} tokenCount={full.tokenCount} />);
    expect(full.expectedTokens).toBe(2);
    expect(screen.queryByTestId("session-outcome")).toBeNull();
  });
});
