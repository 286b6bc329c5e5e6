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
