// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { alert, token } from "../../../test/factories";
import { historyRows, sortRows, toTsv, TokenHistory } from "./TokenHistory";

afterEach(cleanup);

const tokens = [token(0, " a", 0.5), token(1, " b", 3.2), token(2, " c", 1.1)];

describe("token history rows", () => {
  it("carry each token's metrics and the readable names of the rules that fired on it", () => {
    const rows = historyRows(tokens, [{ ...alert(0, 1, "warning"), rules: ["HIGH_UNCERTAINTY", "ANOMALY"] }]);
    expect(rows.map((r) => r.seq)).toEqual([0, 1, 2]);
    expect(rows[1]!.alerts).toEqual(["High uncertainty", "Anomaly"]);
    expect(rows[0]!.alerts).toEqual([]);
  });
  it("sort by any column, unknown values last, ties by position", () => {
    const rows = historyRows(tokens, []);
    expect(sortRows(rows, "hbar_s", true).map((r) => r.seq)).toEqual([1, 2, 0]);
    expect(sortRows(rows, "hbar_s", false).map((r) => r.seq)).toEqual([0, 2, 1]);
    const withUnknown = [...rows, { ...rows[0]!, seq: 3, hbar_s: null }];
    expect(sortRows(withUnknown, "hbar_s", true).map((r) => r.seq).at(-1)).toBe(3);
  });
  it("copy as tab-separated text with a header, newlines escaped", () => {
    const tsv = toTsv(historyRows([{ ...tokens[0]!, text: "a\nb" }], []));
    const [head, line] = tsv.trimEnd().split("\n");
    expect(head!.split("\t")).toEqual(["seq", "token", "p", "hbar_s_bits", "entropy_bits", "surprisal_bits", "rank", "alerts"]);
    expect(line!.split("\t")[1]).toBe("a\\nb");
  });
});

describe("TokenHistory", () => {
  it("sorts on a header click (aria-sort says how), selects on a row click, and copies", async () => {
    const picked: number[] = [];
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.assign(navigator, { clipboard: { writeText } });
    render(<TokenHistory tokens={tokens} alerts={[]} version={1} selected={null} onSelect={(s) => picked.push(s)} />);
    fireEvent.click(screen.getByTestId("sort-hbar_s"));
    expect(screen.getByTestId("sort-hbar_s").closest("th")!.getAttribute("aria-sort")).toBe("descending");
    fireEvent.click(screen.getByTestId("copy-history"));
    await screen.findByTestId("copy-status");
    expect(writeText.mock.calls[0]![0].split("\n")[1].split("\t")[0]).toBe("1"); // the sorted order
  });
});
