"""The scaling benchmark on a tiny workload: one node with one partition, one node and a Redis Cluster
with four partitions and two alerters, side by side; every token audited once, the same alerts in
each, and every ratio and prediction it promises printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.stack import ROOT

pytestmark = pytest.mark.slow


def test_the_quick_path_measures_three_configurations_side_by_side() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.scaling", "--quick", "--only", "a,c,e", "--tokens", "600",
         "--sessions", "20", "--rate", "500", "--seconds", "1", "--paced-sessions", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "UQ_BENCH_RESULTS": ""},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    rows = [line for line in out.splitlines() if line.startswith("| (")]
    assert [row.split(" ")[1] for row in rows] == ["(a)", "(c)", "(e)"]
    assert rows[0].split("|")[3].strip() == "1.00"  # (a) ÷ (a)
    for label in ("one node, 1 partition, 1 alerter", "one node, 4 partitions, 2 alerters"):
        assert f"{label}: audited 600 of 600 per round, 0 duplicates" in out
    assert "cluster 3 masters, 4 partitions, 2 alerters: audited 600 of 600 per round, 0 duplicates" in out
    assert "differs from (a)" not in out
    assert "GOAL scaling: configurations audited exactly once, with (a)'s alerts: 1 ratio" in out
    assert re.search(r"cluster ÷ one node, 4 partitions, 2 alerters: tokens/s ×\d+\.\d\d, CPU per token ×\d", out)
    assert "GOAL scaling: cluster ÷ one node CPU per token (4 partitions, 2 alerters)" in out
    assert re.search(r"\(e\) cluster 3 masters, 4 partitions, 2 alerters: [\d,]+ tokens/s per core", out)
    assert "every 10,000 tokens/s takes" in out
    # the alerts counted are real: the workload fires some in each configuration
    alerts = re.findall(r"0 duplicates; alerts: (\d[\d,]*) alert", out)
    assert len(alerts) == 3 and len(set(alerts)) == 1 and int(alerts[0].replace(",", "")) > 0
