"""The generator benchmark's GPU path (``--random-mistral``), checked on the CPU with a tiny random
Mistral: it runs end to end through the real Redis and prints every ratio it promises."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.stack import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_the_random_mistral_path_prints_its_ratios(redis_url: str) -> None:
    run = subprocess.run(
        [sys.executable, "bench/generator.py", "--random-mistral", "tiny", "--tokens", "6", "--prompts", "2",
         "--rounds", "1", "--concurrent", "3", "--threads", "1", "--redis-url", redis_url],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "UQ_BENCH_RESULTS": ""},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "model random-mistral-tiny" in out
    assert "GOAL generator: tokens/s with full-logit publishing / bare generate()" in out
    assert "GOAL generator: aggregate tokens/s, 3 concurrent jobs / one job alone" in out
    assert "widest batch 3" in out  # the three jobs decoded in one batch
    assert "time to first token at 3 at once" in out
