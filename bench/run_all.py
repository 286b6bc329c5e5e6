"""Runs every benchmark under bench/, prints one table of goals beside what was measured, and writes
it to docs/performance.md. What follows the table there (``## `` sections written by hand about one
benchmark each: what it measures, its command, its figures) is kept.

    bench/run_all [--quick] [--only bus,auditor]

Each benchmark runs as its own process (``python -m bench.<name>``), one after another, so they do
not compete for the two cores; each reports its goals through ``bench.report.goal``. Its full output
is kept in ``test-output/bench/<name>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ["bus", "auditor", "alerter", "recorder", "gateway", "generator", "llamacpp", "upstream", "load", "scaling"]
TIMEOUT_S = 900


def run(name: str, quick: bool, results: Path) -> tuple[int, float]:
    log_dir = ROOT / "test-output" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", f"bench.{name}"] + (["--quick"] if quick else [])
    env = {**os.environ, "UQ_BENCH_RESULTS": str(results)}
    t0 = time.time()
    with (log_dir / f"{name}.log").open("w") as log:
        try:
            rc = subprocess.run(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=TIMEOUT_S
            ).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.time() - t0


def num(v: object) -> str:
    x = float(v)  # type: ignore[arg-type]
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def table(rows: list[dict[str, object]], status: dict[str, str]) -> str:
    lines = ["| benchmark | goal | target | measured | met | detail |", "|---|---|---|---|---|---|"]
    for r in rows:
        op = "≥" if r["higher_is_better"] else "≤"
        lines.append(
            f"| {r['bench']} | {r['goal']} | {op} {num(r['target'])} {r['unit']} | {num(r['measured'])} {r['unit']} "
            f"| {'yes' if r['met'] else '**no**'} | {r['detail']} |"
        )
    for name, st in status.items():
        if st != "ok":
            lines.append(f"| {name} | (did not finish: {st}) | | | **no** | see test-output/bench/{name}.log |")
    return "\n".join(lines)


def sections(doc: Path) -> str:
    """The hand-written part of the doc: from its first ``## `` heading on (empty when it has none)."""
    if not doc.exists():
        return ""
    text = doc.read_text()
    at = text.find("\n## ")
    return "" if at < 0 else text[at:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (smoke run)")
    parser.add_argument("--only", default="", help="comma-separated subset, e.g. bus,auditor")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/performance.md")
    args = parser.parse_args()
    names = [n for n in BENCHES if (ROOT / "bench" / f"{n}.py").exists()]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    status: dict[str, str] = {}
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as f:
        results = Path(f.name)
    for name in names:
        print(f"== bench.{name} ...", flush=True)
        rc, secs = run(name, args.quick, results)
        status[name] = "ok" if rc == 0 else ("timed out" if rc == 124 else f"exit {rc}")
        print(f"   {status[name]} in {secs:.0f} s", flush=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = [json.loads(line) | {"at": stamp} for line in results.read_text().splitlines() if line.strip()]
    results.unlink()
    # benchmarks not run this time keep their last results (bench/results.jsonl, committed with the doc)
    kept = ROOT / "bench" / "results.jsonl"
    if kept.exists():
        old = [json.loads(line) for line in kept.read_text().splitlines() if line.strip()]
        rows = [r for r in old if r["bench"] not in names] + rows
    rows.sort(key=lambda r: BENCHES.index(str(r["bench"])) if r["bench"] in BENCHES else len(BENCHES))
    kept.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = table(rows, status)
    print()
    print(text)
    if not args.no_write:
        doc = ROOT / "docs" / "performance.md"
        measured = sorted({str(r.get("at", "?")) for r in rows})
        when = measured[0] if len(measured) == 1 else f"{measured[0]} to {measured[-1]}"
        header = (
            "# Performance\n\n"
            "Written by `bench/run_all` ("
            + ("quick run" if args.quick else "full run")
            + "; "
            + (
                (f"this time only {', '.join(names)}; " if names else "no benchmark run this time; ")
                if args.only
                else ""
            )
            + f"rows measured {when}; each row's time is in `bench/results.jsonl`), "
            f"{platform.machine()}, {os.cpu_count()} cores. "
            "Each figure is a ratio or rate measured side by side within one benchmark run, on a shared "
            "machine; the logs of each run are in `test-output/bench/`. Goals come from the issues and "
            "the original README.\n\n"
        )
        doc.write_text(header + text + "\n" + sections(doc))
        print(f"\nwrote {doc.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
