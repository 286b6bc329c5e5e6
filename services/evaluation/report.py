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
#: Verification agreements (SummaryEvent.verification), reported as ``verify.<name>`` = 1 - agreement.
VERIFY_AGREEMENTS = ("exact", "lexical", "embedding")


def _level_index(level: str | None) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


def rescored(rows: list[dict[str, Any]], prof: Path, model: str) -> list[dict[str, Any]]:
    """The rows as the alerter judges their recorded tokens under the profile file ``prof``: alerts,
    risk changes and summary replayed through the alerter's own engine (services/evaluation/replay.py)."""
    from services.evaluation.replay import Replayer

    with Replayer(prof) as replayer:
        return replayer.rows(rows, model)


def level_shares(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Share of sessions at each risk level, final and peak."""
    out: dict[str, dict[str, float]] = {}
    for kind in ("final", "peak"):
        levels = [str((r.get("summary") or {}).get(f"{kind}_risk") or "safe") for r in rows]
        out[kind] = {level: levels.count(level) / len(levels) for level in LEVELS}
    return out


def documented_rates(rows: list[dict[str, Any]], model: str, prof: Path | None) -> tuple[str | None, dict[str, float]]:
    """(profile id, its risk_rates): what the profile promises for ordinary text."""
    from services.alerter import profile as profiles

    p: Profile | None
    if prof is not None:
        p = load_profile(prof)
    else:
        ids = {(r.get("summary") or {}).get("profile") for r in rows}
        p = profiles.for_model(model) if ids - {None} else None
    return (p.id, dict(p.risk_rates)) if p is not None else (None, {})


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
        for name in VERIFY_AGREEMENTS:  # agreement: higher = more certain, so scored as 1 - agreement
            value = (summary.get("verification") or {}).get(name)
            if value is not None:
                table.setdefault(f"verify.{name}", [None] * len(rows))[i] = 1.0 - value
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
        rows = rescored(rows, profile, str(config.get("model")))
    profile_id, rates = documented_rates(rows, str(config.get("model")), profile)
    risk = {"shares": level_shares(rows), "documented": rates, "profile": profile_id}
    labelled = [r for r in rows if r.get("correct") is not None]
    base: dict[str, Any] = {
        "config": config,
        "items": len(rows),
        "labelled": len(labelled),
        "tokens_per_item": float(np.mean([len(r.get("tokens", [])) for r in rows])),
        "risk_levels": risk,
        "profile": str(profile) if profile else None,
    }
    if not labelled:
        return {**base, "accuracy": None, "correct": 0, "scores": {}, "best_score": None, "flags": {},
                "calibration": None, "_curves": {}, "_wrong": np.array([])}  # fmt: skip
    rows = labelled
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
        **base,
        "accuracy": measures.bootstrap(lambda s, w: float(1 - w.mean()), wrong, wrong, rounds=rounds).as_dict(),
        "correct": int((wrong == 0).sum()),
        "scores": scores,
        "best_score": best,
        "flags": flags,
        "calibration": calibration,
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


def _risk_section(result: dict[str, Any]) -> list[str]:
    risk = result["risk_levels"]
    documented = risk["documented"]
    lines = [
        "## Risk levels of the sessions",
        "",
        f"Share of the {result['items']} sessions at each level"
        + (
            f"; documented: the rates profile {risk['profile']} measured on the model's reference sessions "
            "(docs/alerts.md), and this run's peak share ÷ documented."
            if documented
            else " (no calibration profile: no documented rates)."
        ),
        "",
        "| level | final | peak | documented (peak) | peak ÷ documented |",
        "|---|---|---|---|---|",
    ]
    for level in LEVELS:
        final, peak = risk["shares"]["final"][level], risk["shares"]["peak"][level]
        doc = documented.get(level)
        ratio = "n/a" if not doc else f"{peak / doc:.2f}"
        lines.append(f"| {level} | {final:.1%} | {peak:.1%} | {_share(doc)} | {ratio} |")
    return [*lines, ""]


def markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    head = [
        f"# Evaluation: {c.get('data')}",
        "",
        f"Model {c.get('model')} ({c.get('mode')}{', ' + str(c['engine']) if c.get('engine') else ''}), prompts `{c.get('style')}`, max_tokens {c.get('max_tokens')}, "
        f"temperature {c.get('temperature')}, seed {c.get('seed')}.",
        "",
    ]
    if not result["labelled"]:
        return "\n".join(
            [*head, f"{result['items']} prompts without reference answers; "
             f"{result['tokens_per_item']:.1f} tokens per session.", "", *_risk_section(result)]
        )  # fmt: skip
    lines = [
        *head,
        f"{result['items']} items, {result['correct']} correct: accuracy "
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
    lines += ["", *_risk_section(result), "Plots: `roc.png`, `rejection.png`, `reliability.png`.", ""]
    return "\n".join(lines)


def console_summary(result: dict[str, Any]) -> str:
    best = result["best_score"]
    peak = result["risk_levels"]["shares"]["peak"]
    levels = " · peak risk " + ", ".join(f"{level} {share:.0%}" for level, share in peak.items())
    if not result["labelled"]:
        return f"{result['items']} prompts (no reference answers)" + levels
    text = f"{result['items']} items · accuracy {_fmt(result['accuracy'])}"
    if best:
        s = result["scores"][best]
        text += f" · best score {best}: AUROC {_fmt(s['auroc'])}, PRR {_fmt(s['prr'])}"
    if result["calibration"]:
        text += f" · ECE {_fmt(result['calibration']['ece'])}"
    return text + levels


def write(folder: Path, result: dict[str, Any]) -> None:
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    (folder / "report.json").write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(markdown(result), encoding="utf-8")
    plots(folder, result)


def plots(folder: Path, result: dict[str, Any]) -> None:
    if not result["labelled"]:
        return  # nothing to rank against
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
