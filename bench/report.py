"""Goals measured by the benchmarks, collected by ``bench/run_all``.

A benchmark calls :func:`goal` once per goal it measures. When ``UQ_BENCH_RESULTS`` names a file
(``bench/run_all`` sets it), each call appends one JSON line there; the line is also printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def goal(
    bench: str, name: str, measured: float, target: float, unit: str, *, higher_is_better: bool = True, detail: str = ""
) -> bool:
    """Record one goal; returns whether it was met."""
    met = measured >= target if higher_is_better else measured <= target
    row = {
        "bench": bench,
        "goal": name,
        "measured": measured,
        "target": target,
        "unit": unit,
        "higher_is_better": higher_is_better,
        "met": met,
        "detail": detail,
    }
    op = "≥" if higher_is_better else "≤"
    print(f"GOAL {bench}: {name}: {measured:,.3g} {unit} (goal {op} {target:,.3g}) -> {'MET' if met else 'NOT MET'}")
    path = os.environ.get("UQ_BENCH_RESULTS")
    if path:
        with Path(path).open("a") as f:
            f.write(json.dumps(row) + "\n")
    return met
