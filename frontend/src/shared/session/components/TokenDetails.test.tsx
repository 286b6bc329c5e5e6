// @vitest-environment jsdom
import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { token } from "../../../test/factories";
import { TokenDetails } from "./TokenDetails";

afterEach(cleanup);

describe("TokenDetails", () => {
  it("lists the alternatives with probabilities, marks the chosen one, and gives the tail mass", () => {
    const t = token(7, " Paris", 2.7);
    render(<TokenDetails token={t} alert="critical" />);
    const rows = within(screen.getByTestId("alternatives")).getAllByRole("row");
    // header + two alternatives + tail
    expect(rows).toHaveLength(4);
    expect(rows[1]!.textContent).toContain("·Paris");
    expect(rows[1]!.textContent).toContain("← chosen");
    expect(rows[1]!.textContent).toContain("50.0%");
    expect(rows[2]!.textContent).toContain("30.0%");
    expect(rows[3]!.textContent).toContain("rest of the vocabulary");
    expect(rows[3]!.textContent).toContain("20.0%");
    expect(screen.getByText(/Critical alert/)).toBeTruthy();
    expect(screen.getByText("2.70 bits")).toBeTruthy();
  });

  it("says so when no alternatives were recorded", () => {
    render(<TokenDetails token={{ ...token(0), top_k: [] }} alert={undefined} />);
    expect(screen.getByText(/No alternatives were recorded/)).toBeTruthy();
  });
});
