"""The evaluation report: every score, rule and risk level measured against answer correctness.

:func:`build` reads ``runs.jsonl`` and computes, with bootstrap 95 % intervals:
- accuracy;
- per sequence score of the summary (both spans) and the calibrated P(wrong) where a profile applies:
  AUROC, PRR (with its random and oracle areas) and AUPRC for "the answer is wrong";
- per alert rule and per risk level (final and peak) at the settings the run used: the share of
  correct and of wrong answers flagged, and the AUROC of the risk level as an ordinal score;
- ECE and the reliability diagram of the calibrated P(wrong).
:func:`write` puts ``report.json``, ``report.md`` and the plots (``roc.png``, ``rejection.png``,
``reliability.png``) into the folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from services.alerter.profile import Profile
from services.alerter.profile import load as load_profile
from services.evaluation import measures
from services.evaluation.runner import records

LEVELS = ("safe", "warning", "critical", "emergency")
SPANS = (("answer", "answer_scores"), ("all", "scores"))


def _level_index(level: str | None) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


def rescored(rows: list[dict[str, Any]], prof: Profile) -> list[dict[str, Any]]:
    """The rows with the P(wrong) that ``prof`` gives their recorded tokens: what the alerter's summary
    says for the same tokens under that profile (the same SequenceStats and PWrongModel code)."""
    if prof.p_wrong is None:
        raise FileNotFoundError(f"profile {prof.id} has no labelled P(wrong) to score with")
    from services.evaluation.calibrate import session_features

    out = []
    for row in rows:
        summary = dict(row.get("summary") or {})
        summary["p_wrong"] = prof.p_wrong(session_features(row.get("tokens", [])))
        summary["profile"] = prof.id
        out.append({**row, "summary": summary})
    return out


def score_table(rows: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """``"<span>.<score>"`` → one value per row, from each session's summary."""
    table: dict[str, list[float | None]] = {}
    for i, row in enumerate(rows):
        summary = row.get("summary") or {}
        for span, field in SPANS:
            for name, value in (summary.get(field) or {}).items():
                if name == "tokens":
                    continue
                table.setdefault(f"{span}.{name}", [None] * len(rows))[i] = value
        if summary.get("p_wrong") is not None:
            table.setdefault("p_wrong", [None] * len(rows))[i] = summary["p_wrong"]
        table.setdefault("risk.final", [None] * len(rows))[i] = float(_level_index(summary.get("final_risk")))
        peak = summary.get("peak_risk") or max(
            (r["level"] for r in row.get("risks", [])), key=_level_index, default="safe"
        )
        table.setdefault("risk.peak", [None] * len(rows))[i] = float(_level_index(peak))
    return table


def _firings(row: dict[str, Any]) -> dict[str, int]:
    """Tokens each rule fired on (``alerts_by_rule``: its name in summaries of older alerters)."""
    summary = row.get("summary") or {}
    return dict(summary.get("firings_by_rule") or summary.get("alerts_by_rule") or {})


def _filled(values: list[float | None]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Missing scores (an empty span) rank as the most uncertain: no evidence is not reassurance."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    top = (max(known) + 1.0) if known else 0.0
    return np.array([v if v is not None and math.isfinite(v) else top for v in values], dtype=np.float64)


def build(
    folder: Path, ids: list[str] | None = None, profile: Path | None = None, rounds: int = 1000
) -> dict[str, Any]:
    """The report of the runs in ``folder`` (only ``ids``, when given, in that order)."""
    rows = list(records(folder))
    if ids is not None:
        by_id = {str(r["id"]): r for r in rows}
        rows = [by_id[i] for i in ids if i in by_id]
    if not rows:
        raise FileNotFoundError(f"no runs in {folder} for these items")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if profile is not None:
        rows = rescored(rows, load_profile(profile))
    wrong = np.array([0.0 if r["correct"] else 1.0 for r in rows])
    table = score_table(rows)
    scores: dict[str, Any] = {}
    for name, values in table.items():
        s = _filled(values)
        p = measures.prr(s, wrong)
        scores[name] = {
            "auroc": measures.bootstrap(measures.auroc, s, wrong, rounds=rounds).as_dict(),
            "prr": measures.bootstrap(measures.prr_value, s, wrong, rounds=rounds).as_dict(),
            "prr_random_area": p["random"],
            "prr_oracle_area": p["oracle"],
            "auprc": measures.bootstrap(measures.auprc, s, wrong, rounds=rounds).as_dict(),
            "missing": sum(v is None for v in values),
        }
    rules = sorted({rule for r in rows for rule in _firings(r)})
    flags: dict[str, Any] = {}
    for rule in rules:
        fired = [bool(_firings(r).get(rule)) for r in rows]
        flags[f"rule {rule}"] = measures.flagged_share(fired, wrong)
    for kind in ("final", "peak"):
        levels = table[f"risk.{kind}"]
        for level in LEVELS[1:]:
            flagged = [(v or 0) >= LEVELS.index(level) for v in levels]
            flags[f"risk.{kind} ≥ {level}"] = measures.flagged_share(flagged, wrong)
    calibration = None
    if "p_wrong" in table and all(v is not None for v in table["p_wrong"]):
        p_wrong = np.array(table["p_wrong"], dtype=np.float64)
        calibration = {
            "ece": measures.bootstrap(measures.ece, p_wrong, wrong, rounds=rounds).as_dict(),
            "reliability": measures.reliability(p_wrong, wrong),
            "mean_p_wrong": float(p_wrong.mean()),
        }
    best = max(
        (n for n in scores if not n.startswith("risk.")),
        key=lambda n: scores[n]["auroc"]["value"] or 0.0,
        default=None,
    )
    return {
        "config": config,
        "items": len(rows),
        "accuracy": measures.bootstrap(lambda s, w: float(1 - w.mean()), wrong, wrong, rounds=rounds).as_dict(),
        "correct": int((wrong == 0).sum()),
        "tokens_per_item": float(np.mean([len(r.get("tokens", [])) for r in rows])),
        "scores": scores,
        "best_score": best,
        "flags": flags,
        "calibration": calibration,
        "profile": str(profile) if profile else None,
        "_curves": {name: _filled(values) for name, values in table.items()},
        "_wrong": wrong,
    }


def _fmt(interval: dict[str, float | None]) -> str:
    v, lo, hi = interval["value"], interval["low"], interval["high"]
    if v is None:
        return "n/a"
    if lo is None or hi is None:
        return f"{v:.3f}"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _share(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [
        f"# Evaluation: {c.get('data')}",
        "",
        f"Model {c.get('model')} ({c.get('mode')}), prompts `{c.get('style')}`, max_tokens {c.get('max_tokens')}, "
        f"temperature {c.get('temperature')}. {result['items']} items, {result['correct']} correct: accuracy "
        f"{_fmt(result['accuracy'])}; {result['tokens_per_item']:.1f} tokens per answer.",
        "",
        '## Sequence scores for "the answer is wrong" (95 % bootstrap intervals)',
        "",
        "| score | AUROC | PRR | AUPRC |",
        "|---|---|---|---|",
    ]
    ordered = sorted(result["scores"].items(), key=lambda kv: -(kv[1]["auroc"]["value"] or 0.0))
    for name, s in ordered:
        lines.append(f"| `{name}` | {_fmt(s['auroc'])} | {_fmt(s['prr'])} | {_fmt(s['auprc'])} |")
    lines += [
        "",
        f"PRR baselines: random area {next(iter(result['scores'].values()))['prr_random_area']:.3f}, "
        f"oracle area {next(iter(result['scores'].values()))['prr_oracle_area']:.3f}. "
        f"AUPRC chance level = share wrong = {1 - (result['accuracy']['value'] or 0):.3f}.",
        "",
        "## Alerts and risk at the run's settings",
        "",
        "| signal | correct answers flagged | wrong answers flagged | all flagged |",
        "|---|---|---|---|",
    ]
    for name, f in result["flags"].items():
        lines.append(
            f"| {name} | {_share(f['correct_flagged'])} | {_share(f['wrong_flagged'])} | {_share(f['flagged'])} |"
        )
    cal = result["calibration"]
    lines += ["", "## Calibration of P(wrong)", ""]
    if cal is None:
        lines.append("No calibrated P(wrong) in these sessions (the model has no labelled calibration profile).")
    else:
        lines += [
            f"ECE {_fmt(cal['ece'])}; mean P(wrong) {cal['mean_p_wrong']:.3f}.",
            "",
            "| predicted P(wrong) | observed share wrong | answers |",
            "|---|---|---|",
        ]
        lines += [f"| {b['predicted']:.3f} | {b['observed']:.3f} | {b['n']} |" for b in cal["reliability"]]
    lines += ["", "Plots: `roc.png`, `rejection.png`, `reliability.png`.", ""]
    return "\n".join(lines)


def console_summary(result: dict[str, Any]) -> str:
    best = result["best_score"]
    text = f"{result['items']} items · accuracy {_fmt(result['accuracy'])}"
    if best:
        s = result["scores"][best]
        text += f" · best score {best}: AUROC {_fmt(s['auroc'])}, PRR {_fmt(s['prr'])}"
    if result["calibration"]:
        text += f" · ECE {_fmt(result['calibration']['ece'])}"
    return text


def write(folder: Path, result: dict[str, Any]) -> None:
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    (folder / "report.json").write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(markdown(result), encoding="utf-8")
    plots(folder, result)


def plots(folder: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    wrong = result["_wrong"]
    curves = result["_curves"]
    ranked = sorted(result["scores"], key=lambda n: -(result["scores"][n]["auroc"]["value"] or 0.0))
    shown = [n for n in ranked if not n.startswith("risk.")][:6] + [n for n in ("risk.peak",) if n in curves]
    if wrong.min() != wrong.max():
        fig, ax = plt.subplots(figsize=(6, 5))
        for name in shown:
            fpr, tpr, _ = roc_curve(wrong, curves[name])
            ax.plot(fpr, tpr, label=f"{name} ({result['scores'][name]['auroc']['value']:.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
        ax.set(xlabel="false positive rate (correct answers flagged)", ylabel="true positive rate (wrong flagged)")
        ax.set_title("ROC: the answer is wrong")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(folder / "roc.png", dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 5))
    quality = 1.0 - wrong
    n = len(quality)
    rate = np.arange(n) / n
    for name in shown:
        ax.plot(rate, measures.rejection_curve(curves[name], quality), label=name)
    ax.plot(rate, measures.rejection_curve(-quality, quality), "k--", lw=1, label="oracle")
    ax.axhline(float(quality.mean()), color="k", ls=":", lw=1, label="random")
    ax.set(xlabel="share of answers rejected (most uncertain first)", ylabel="accuracy of the answers kept")
    ax.set_title("Prediction–rejection curve")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(folder / "rejection.png", dpi=110)
    plt.close(fig)
    cal = result["calibration"]
    fig, ax = plt.subplots(figsize=(5, 5))
    if cal is not None:
        bins = cal["reliability"]
        ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-", label="P(wrong)")
        ax.set_title(f"Reliability (ECE {cal['ece']['value']:.3f})")
    else:
        ax.set_title("Reliability: no calibrated P(wrong) in this run")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect")
    ax.set(xlabel="predicted P(wrong)", ylabel="observed share wrong", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "reliability.png", dpi=110)
    plt.close(fig)
