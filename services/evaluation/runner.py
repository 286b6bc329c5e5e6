"""Run a QA file through a pipeline, one session per item, into ``runs.jsonl`` (resumable).

The output folder holds ``config.json`` (what was run) and ``runs.jsonl`` (one line per item: its
text, correctness, status, summary, alerts, risk changes and per-token metrics). Running again into
the same folder with the same configuration skips the items already there, so a long evaluation can
be stopped and continued; a different configuration is refused instead of mixed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from services.common.contracts import SamplingParams
from services.evaluation import qa
from services.evaluation.pipeline import Pipeline

RUNS = "runs.jsonl"
CONFIG = "config.json"


@dataclass(frozen=True, slots=True)
class RunConfig:
    data: str
    model: str
    mode: str  # "api" or "local"
    style: qa.PromptStyle
    max_tokens: int
    temperature: float
    seed: int | None
    verify: int = 0  # verification samples per item
    engine: str | None = None  # the generator engine (local runs; through the API the system's own)


class RunFolderError(ValueError):
    """The output folder holds a run of another configuration."""


def sampling_for(config: RunConfig, request: qa.Request) -> SamplingParams:
    return SamplingParams(
        temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed, stop=request.stop
    )


def done_ids(folder: Path) -> set[str]:
    path = folder / RUNS
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            ids.add(str(json.loads(line)["id"]))
    return ids


def check_folder(folder: Path, config: RunConfig) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG
    mine = asdict(config)
    if path.exists():
        theirs = json.loads(path.read_text(encoding="utf-8"))
        # fields added later: folders written before them ran with these (local runs: the transformers engine)
        defaults = {"verify": 0, "engine": "transformers" if theirs.get("mode") == "local" else None}
        differ = sorted(k for k in mine if k != "model" and theirs.get(k, defaults.get(k)) != mine[k])
        if differ:
            raise RunFolderError(
                f"{folder} holds a run with other settings ({', '.join(f'{k}: {theirs.get(k)!r}' for k in differ)}); "
                "use another --out folder or delete it"
            )
    else:
        path.write_text(json.dumps(mine, indent=2) + "\n", encoding="utf-8")


def run(
    items: list[qa.QAItem],
    pipeline: Pipeline,
    config: RunConfig,
    folder: Path,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> None:
    """Run every item not yet in ``folder`` and append its record to ``runs.jsonl``."""
    check_folder(folder, config)
    done = done_ids(folder)
    todo = [item for item in items if item.id not in done]
    with (folder / RUNS).open("a", encoding="utf-8") as out:
        for n, item in enumerate(todo, 1):
            request = qa.request(item, config.style)
            session = pipeline.run(request, sampling_for(config, request), config.verify)
            record = {
                "id": item.id,
                "question": item.question,
                "prompt": item.prompt,
                "answers": list(item.answers),
                "text": session.text,
                "correct": qa.is_correct(session.text, item.answers) if item.answers else None,
                "session_id": session.session_id,
                "status": session.status,
                "reason": session.reason,
                "elapsed_s": round(session.elapsed_s, 3),
                "summary": session.summary,
                "alerts": [
                    {"rule": a["rule"], "severity": a["severity"], "token_seq": a["token_seq"]} for a in session.alerts
                ],
                "risks": [
                    {"level": r["level"], "token_seq": r["token_seq"], "reason": r["reason"]} for r in session.risks
                ],
                "tokens": [
                    {"text": a["text"], "token_id": a.get("token_id"), **_compact(a["metrics"])} for a in session.audits
                ],
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            if progress is not None:
                progress(n, len(todo), record)


def _compact(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in metrics.items() if v is not None}


def records(folder: Path) -> Iterator[dict[str, Any]]:
    path = folder / RUNS
    if not path.exists():
        raise FileNotFoundError(f"no {RUNS} in {folder}: run `uq eval` into it first")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)
