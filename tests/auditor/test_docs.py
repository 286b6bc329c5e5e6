"""docs/metrics.md documents every metric of the audit contract and of the library."""

from __future__ import annotations

import re
from pathlib import Path

from services.auditor.metrics import METRIC_NAMES
from services.common.contracts import Metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_every_metric_has_a_row_in_the_definitions_table() -> None:
    text = DOC.read_text()
    rows = set(re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE))
    assert set(Metrics.model_fields) <= rows, set(Metrics.model_fields) - rows
    assert set(METRIC_NAMES) <= rows


def test_hbar_s_is_labelled_experimental() -> None:
    text = DOC.read_text()
    assert "### ℏₛ is this project's definition, and experimental" in text
