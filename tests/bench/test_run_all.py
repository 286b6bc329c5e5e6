"""bench/run_all rewrites the goals table of docs/performance.md and keeps the sections written by hand."""

from __future__ import annotations

from pathlib import Path

from bench.run_all import BENCHES, sections


def test_the_sections_after_the_table_are_kept(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nheader\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Scaling\n\nby hand\n")
    assert sections(doc) == "\n## Scaling\n\nby hand\n"


def test_a_doc_without_sections_or_without_a_file_keeps_nothing(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    assert sections(doc) == ""
    doc.write_text("# Performance\n\n| a |\n|---|\n| 1 |\n")
    assert sections(doc) == ""


def test_every_benchmark_module_is_run() -> None:
    here = Path(__file__).resolve().parents[2] / "bench"
    modules = {p.stem for p in here.glob("*.py")} - {"__init__", "report", "run_all"}
    assert modules == set(BENCHES)
