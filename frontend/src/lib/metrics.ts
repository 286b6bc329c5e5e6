/** How each metric is shown: label, unit, direction and the five colour bands of the heatmap. */
import type { RiskLevel, Severity, Summary, TopKAlternative } from "../api/types";
import { RISK_LEVELS } from "../api/types";

export type HeatMetric = "hbar_s" | "entropy" | "surprisal" | "rank";

export interface MetricInfo {
  key: HeatMetric;
  label: string;
  unit: string;
  /** Four ascending cut points → five bands, 0 = most certain, 4 = least. */
  cuts: readonly [number, number, number, number];
  help: string;
}

export const METRICS: Record<HeatMetric, MetricInfo> = {
  hbar_s: {
    key: "hbar_s",
    label: "ℏₛ",
    unit: "bits",
    cuts: [0.5, 1.5, 2.5, 3.5],
    help: "ℏₛ = √(entropy · surprisal), experimental. Higher = more uncertain.",
  },
  entropy: {
    key: "entropy",
    label: "Entropy",
    unit: "bits",
    cuts: [0.5, 1.5, 2.5, 4],
    help: "H = −Σ p log₂ p of the next-token distribution. Higher = more uncertain.",
  },
  surprisal: {
    key: "surprisal",
    label: "Surprisal",
    unit: "bits",
    cuts: [1, 2, 4, 7],
    help: "−log₂ p of the emitted token. Higher = more surprising.",
  },
  rank: {
    key: "rank",
    label: "Rank (GLTR)",
    unit: "",
    cuts: [1.5, 3.5, 10.5, 100.5],
    help: "1 + tokens the model found more likely than the emitted one.",
  },
};

export const CHART_METRICS = ["hbar_s", "entropy", "surprisal"] as const;
export type ChartMetricKey = (typeof CHART_METRICS)[number];

/** Band 0–4 of a value, or null when the metric is unknown for this token. */
export function band(value: number | null, info: MetricInfo): number | null {
  if (value === null || Number.isNaN(value)) return null;
  let b = 0;
  for (const c of info.cuts) if (value >= c) b++;
  return b;
}

export function bandLabel(info: MetricInfo, b: number): string {
  const c = info.cuts;
  const f = (x: number) => (info.key === "rank" ? String(Math.round(x)) : x.toString());
  if (info.key === "rank") {
    const ranges = ["1", `2–${f(c[1] - 0.5)}`, `${f(c[1] + 0.5)}–${f(c[2] - 0.5)}`, `${f(c[2] + 0.5)}–${f(c[3] - 0.5)}`, `> ${f(c[3] - 0.5)}`];
    return ranges[b] ?? "";
  }
  if (b === 0) return `< ${f(c[0])}`;
  if (b === 4) return `≥ ${f(c[3])}`;
  return `${f(c[b - 1]!)}–${f(c[b]!)}`;
}

export interface Alternative {
  text: string;
  prob: number;
  emitted: boolean;
}

/** Top alternatives with p = exp(logprob), and the mass they leave to the rest of the vocabulary. */
export function alternatives(topK: readonly TopKAlternative[], emittedId: number | null, emittedText: string) {
  const items: Alternative[] = topK.map((a) => ({
    text: a.text,
    prob: Math.exp(a.logprob),
    emitted: emittedId !== null && a.token_id !== null ? a.token_id === emittedId : a.text === emittedText,
  }));
  const covered = items.reduce((s, a) => s + a.prob, 0);
  return { items, tail: Math.max(0, 1 - covered) };
}

/**
 * Risk levels read as levels of *risk* ("Elevated", "High", "Severe"), so they never share a word with
 * alert severities (info, warning, critical), which grade one rule's finding. The contract's values
 * stay safe / warning / critical / emergency (docs/alerts.md).
 */
export const RISK_LABEL: Record<RiskLevel, string> = {
  safe: "Safe",
  warning: "Elevated",
  critical: "High",
  emergency: "Severe",
};
export const RISK_HELP: Record<RiskLevel, string> = {
  safe: "Safe: no evidence that the answer is wrong or the text is derailing",
  warning: "Elevated risk (level 'warning'): some evidence the answer may be wrong; check it",
  critical: "High risk (level 'critical'): strong evidence the answer is wrong or the text is derailing",
  emergency: "Severe risk (level 'emergency'): the answer is very likely wrong or the text has broken down",
};
export const RISK_ICON: Record<RiskLevel, string> = { safe: "✓", warning: "!", critical: "‼", emergency: "✖" };

/** The higher of two risk levels. */
export function higherRisk(a: RiskLevel, b: RiskLevel): RiskLevel {
  return RISK_LEVELS.indexOf(a) >= RISK_LEVELS.indexOf(b) ? a : b;
}

/**
 * The highest level a summary says its session reached: its peak, never below its final level (a
 * summary from an alerter older than `peak_risk` reads as the schema's default, safe).
 */
export function peakRisk(summary: Pick<Summary, "peak_risk" | "final_risk">): RiskLevel {
  return higherRisk(summary.peak_risk, summary.final_risk);
}

export const SEVERITY_LABEL: Record<Severity, string> = { info: "Info", warning: "Warning", critical: "Critical" };
export const SEVERITIES: readonly Severity[] = ["info", "warning", "critical"];

/** The built-in rules (docs/alerts.md, "Built-in rules"): a readable name and what makes each fire. */
export const RULE_INFO: Record<string, { name: string; help: string }> = {
  HIGH_UNCERTAINTY: {
    name: "High uncertainty",
    help: "ℏₛ of this token is above the model's threshold (the chart's dashed line): the model was unsure which token to write.",
  },
  LOW_CONFIDENCE: {
    name: "Low confidence",
    help: "The emitted token's probability is below the model's threshold: the model wrote a token it found unlikely.",
  },
  UNCERTAINTY_SPIKE: {
    name: "Uncertainty spike",
    help: "ℏₛ jumped to more than 1.5× the session's running baseline: a sudden change of confidence.",
  },
  ANOMALY: {
    name: "Anomaly",
    help: "ℏₛ is an outlier against the session's last 32 tokens (robust z-score above 3.5).",
  },
  REPETITION: {
    name: "Repetition",
    help: "The text loops: the last 3 tokens already occurred 3 times within the last 48 tokens.",
  },
};

/** A rule's readable name (custom rules: their id in words) and its explanation. */
export function ruleInfo(rule: string): { name: string; help: string } {
  const known = RULE_INFO[rule];
  if (known) return known;
  const words = rule.toLowerCase().replace(/[_-]+/g, " ").trim();
  return { name: words.charAt(0).toUpperCase() + words.slice(1), help: `Custom rule ${rule} (see the alerter's rules file).` };
}
export const SEVERITY_ICON: Record<Severity, string> = { info: "ℹ", warning: "⚠", critical: "✖" };
