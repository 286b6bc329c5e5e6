/** Number and text formatting shared by the views. */

const SUPERSCRIPT = "⁰¹²³⁴⁵⁶⁷⁸⁹";

/**
 * A number with ``digits`` decimals; never in scientific notation: from a million on, as
 * "1.07 × 10³⁰¹" (a perplexity can be that large), and "∞" for infinity.
 */
export function fmt(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  if (Math.abs(v) >= 1e6) {
    const exp = Math.floor(Math.log10(Math.abs(v)));
    const mantissa = v / 10 ** exp;
    const sup = String(exp).split("").map((d) => SUPERSCRIPT[Number(d)]).join("");
    return `${mantissa.toFixed(2)} × 10${sup}`;
  }
  return v.toFixed(digits);
}

export function pct(p: number | null | undefined, digits = 1): string {
  if (p === null || p === undefined || Number.isNaN(p)) return "—";
  if (p > 0 && p < 0.001) return "<0.1%";
  return `${(p * 100).toFixed(digits)}%`;
}

/** A token's text made visible: spaces as ·, newlines as ↵, tabs as →. */
export function visibleToken(text: string): string {
  if (text === "") return "∅";
  return text.replace(/ /g, "·").replace(/\n/g, "↵").replace(/\t/g, "→");
}

export function ago(ns: number, now = Date.now()): string {
  if (!ns) return "—";
  const s = Math.max(0, (now - ns / 1e6) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ns / 1e6).toLocaleString();
}

export function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}
