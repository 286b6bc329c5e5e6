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
    const buttons = screen.getAllByTestId("alert");
    expect(buttons.map((b) => b.getAttribute("aria-label")?.split(":")[1]?.split(".")[0]?.trim())).toEqual([
      "High uncertainty",
      "High uncertainty",
      "High uncertainty",
    ]);
    expect(buttons.map((b) => b.getAttribute("aria-label")?.split(" alert at")[0])).toEqual([
      "Warning",
      "Critical",
      "Info",
    ]);
    expect(buttons[1]!.textContent).toContain("Critical");
    fireEvent.click(buttons[1]!);
    expect(picked).toEqual([5]);
  });

  it("labels its count as alerts sent", () => {
    const alerts = [alert(0, 2, "info"), alert(1, 5, "critical")];
    render(<AlertsPanel alerts={alerts} count={alerts.length} selected={null} onSelect={() => {}} />);
    expect(screen.getByRole("heading", { level: 2 }).textContent).toBe("Alerts 2 sent");
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
      ["Repetition", "critical"],
      ["Low confidence", "warning"],
    ]);
    expect(chips[0]!.className).toContain("sev-critical");
    expect(screen.getAllByTestId("finding").map((f) => f.textContent)).toEqual([
      "Repetition: the text loops",
      "Low confidence: p = 0.04 below 0.3",
    ]);
    expect(screen.getByTestId("alert").getAttribute("aria-label")).toMatch(/^Critical alert at token 4: Repetition, Low confidence\. /);
  });

  it("shows rules listed without findings, and an old alert as its one rule and message", () => {
    const listed = { ...alert(1, 6, "warning"), rules: ["HIGH_UNCERTAINTY", "LOW_CONFIDENCE"] };
    const old = alert(0, 2, "info");
    render(<AlertsPanel alerts={[old, listed]} count={2} selected={null} onSelect={() => {}} />);
    const cards = screen.getAllByTestId("alert");
    expect(cards).toHaveLength(2);
    const chipsOf = (el: HTMLElement) => Array.from(el.querySelectorAll('[data-testid="rule-chip"]')).map((c) => c.textContent);
    expect(chipsOf(cards[0]!)).toEqual(["High uncertainty", "Low confidence"]);
    expect(chipsOf(cards[1]!)).toEqual(["High uncertainty"]);
    expect(cards[1]!.querySelector('[data-testid="finding"]')!.textContent).toBe("ℏₛ above 2.5");
  });
});

describe("AlertsPanel: finding one's way", () => {
  const alerts = [alert(0, 2, "info"), alert(1, 5, "critical"), alert(2, 9, "warning")];

  it("filters by severity and says how many are shown", () => {
    render(<AlertsPanel alerts={alerts} count={alerts.length} selected={null} onSelect={() => {}} />);
    expect(screen.getByTestId("alert-scope").textContent).toBe("3 alerts on 3 tokens");
    fireEvent.change(screen.getByTestId("alert-severity-filter"), { target: { value: "warning" } });
    expect(screen.getAllByTestId("alert").map((b) => b.dataset.tokenSeq)).toEqual(["9", "5"]);
    expect(screen.getByTestId("alert-scope").textContent).toBe("2 of 3 alerts shown");
    fireEvent.change(screen.getByTestId("alert-severity-filter"), { target: { value: "critical" } });
    expect(screen.getAllByTestId("alert").map((b) => b.dataset.tokenSeq)).toEqual(["5"]);
  });

  it("walks the alerts in token order with the button and the n key (shift+n back), wrapping round", () => {
    const picked: number[] = [];
    const { rerender } = render(<AlertsPanel alerts={alerts} count={3} selected={null} onSelect={(s) => picked.push(s)} />);
    fireEvent.click(screen.getByTestId("next-alert"));
    rerender(<AlertsPanel alerts={alerts} count={3} selected={2} onSelect={(s) => picked.push(s)} />);
    fireEvent.keyDown(window, { key: "n" });
    rerender(<AlertsPanel alerts={alerts} count={3} selected={9} onSelect={(s) => picked.push(s)} />);
    fireEvent.keyDown(window, { key: "n" });
    fireEvent.keyDown(window, { key: "N", shiftKey: true });
    expect(picked).toEqual([2, 5, 2, 5]);
  });

  it("names each rule in words and explains it", () => {
    render(<AlertsPanel alerts={[alert(0, 2, "warning")]} count={1} selected={null} onSelect={() => {}} />);
    const chip = screen.getByTestId("rule-chip");
    expect(chip.textContent).toBe("High uncertainty");
    expect(chip.getAttribute("title")).toMatch(/HIGH_UNCERTAINTY.*threshold/);
    expect(screen.getByTestId("rule-help").textContent).toMatch(/^High uncertainty: ℏₛ of this token is above/);
  });
});
