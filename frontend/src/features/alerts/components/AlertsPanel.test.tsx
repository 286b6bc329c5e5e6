// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { alert } from "../../../test/factories";
import { AlertsPanel } from "./AlertsPanel";

afterEach(cleanup);

describe("AlertsPanel", () => {
  it("shows alerts newest first with severity in words, and jumps to the token on click", () => {
    const alerts = [alert(0, 2, "info"), alert(1, 5, "critical"), alert(2, 9, "warning")];
    const picked: number[] = [];
    render(<AlertsPanel alerts={alerts} count={alerts.length} selected={null} onSelect={(s) => picked.push(s)} />);
    const buttons = screen.getAllByRole("button");
    expect(buttons.map((b) => b.getAttribute("aria-label")?.split(" at token")[0])).toEqual([
      "Warning HIGH_UNCERTAINTY",
      "Critical HIGH_UNCERTAINTY",
      "Info HIGH_UNCERTAINTY",
    ]);
    expect(buttons[1]!.textContent).toContain("Critical");
    fireEvent.click(buttons[1]!);
    expect(picked).toEqual([5]);
  });

  it("labels its count as alerts sent", () => {
    const alerts = [alert(0, 2, "info"), alert(1, 5, "critical")];
    render(<AlertsPanel alerts={alerts} count={alerts.length} selected={null} onSelect={() => {}} />);
    expect(screen.getByRole("heading", { level: 2 }).textContent).toBe("Alerts sent 2");
  });
});

describe("AlertsPanel: one alert per token", () => {
  it("shows every rule that fired as a chip with its severity, and each finding's message, in one card", () => {
    const a = {
      ...alert(0, 4, "critical"),
      rule: "REPETITION",
      message: "the text loops; p = 0.04 below 0.3",
      rules: ["REPETITION", "LOW_CONFIDENCE"],
      findings: [
        { rule: "REPETITION", severity: "critical" as const, message: "the text loops", values: {} },
        { rule: "LOW_CONFIDENCE", severity: "warning" as const, message: "p = 0.04 below 0.3", values: {} },
      ],
    };
    render(<AlertsPanel alerts={[a]} count={1} selected={null} onSelect={() => {}} />);
    expect(screen.getAllByTestId("alert")).toHaveLength(1);
    const chips = screen.getAllByTestId("rule-chip");
    expect(chips.map((c) => [c.textContent, c.dataset.severity])).toEqual([
      ["REPETITION", "critical"],
      ["LOW_CONFIDENCE", "warning"],
    ]);
    expect(chips[0]!.className).toContain("sev-critical");
    expect(screen.getAllByTestId("finding").map((f) => f.textContent)).toEqual([
      "REPETITION: the text loops",
      "LOW_CONFIDENCE: p = 0.04 below 0.3",
    ]);
    expect(screen.getByRole("button").getAttribute("aria-label")).toMatch(/^Critical REPETITION, LOW_CONFIDENCE at token 4: /);
  });

  it("shows rules listed without findings, and an old alert as its one rule and message", () => {
    const listed = { ...alert(1, 6, "warning"), rules: ["HIGH_UNCERTAINTY", "LOW_CONFIDENCE"] };
    const old = alert(0, 2, "info");
    render(<AlertsPanel alerts={[old, listed]} count={2} selected={null} onSelect={() => {}} />);
    const cards = screen.getAllByTestId("alert");
    expect(cards).toHaveLength(2);
    const chipsOf = (el: HTMLElement) => Array.from(el.querySelectorAll('[data-testid="rule-chip"]')).map((c) => c.textContent);
    expect(chipsOf(cards[0]!)).toEqual(["HIGH_UNCERTAINTY", "LOW_CONFIDENCE"]);
    expect(chipsOf(cards[1]!)).toEqual(["HIGH_UNCERTAINTY"]);
    expect(cards[1]!.querySelector('[data-testid="finding"]')!.textContent).toBe("ℏₛ above 2.5");
  });
});
