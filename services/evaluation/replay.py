"""Replay recorded sessions through the alerter's rules engine: what the alerts, risk and summary of
the same tokens are under other settings or another calibration profile (the same code as the
alerter: ``RulesEngine.accept`` and ``RulesEngine.end``), without generating again."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from services.alerter.engine import RulesEngine
from services.alerter.ruleset import load_rules
from services.alerter.session import SessionState
from services.alerter.settings import AlerterSettings
from services.common.contracts import AuditEvent, Metrics


def audits_of(session_id: str, model: str, tokens: list[dict[str, Any]]) -> list[AuditEvent]:
    """Audit events from a run's recorded tokens (``{"text", <metric>: value, ...}``)."""
    return [
        AuditEvent(
            session_id=session_id,
            seq=seq,
            text=t["text"],
            distribution="full",
            metrics=Metrics(exact=True, **{k: v for k, v in t.items() if k in Metrics.model_fields}),
            model=model,
            token_ts_ns=0,
        )
        for seq, t in enumerate(tokens)
    ]


def outputs(
    engine: RulesEngine, session_id: str, model: str, tokens: list[dict[str, Any]], status: str
) -> dict[str, Any]:
    """The alerts, risk changes and summary the engine gives one recorded session."""
    st = SessionState(session_id)
    now = time.time()
    out = []
    audits = audits_of(session_id, model, tokens)
    for audit in audits:
        out += engine.accept(st, audit, now)
    out += engine.end(st, status, len(audits), now)  # type: ignore[arg-type]
    dumped = [o.model_dump(mode="json") for o in out]
    summaries = [d for d in dumped if d["type"] == "summary"]
    return {
        "alerts": [d for d in dumped if d["type"] == "alert"],
        "risks": [d for d in dumped if d["type"] == "risk"],
        "summary": summaries[-1] if summaries else None,
    }


class Replayer:
    """An alerter engine under the current settings (``UQ_*``), optionally with ``profile`` (a profile
    file, or the profile's JSON) searched before every other one."""

    def __init__(self, profile: Path | dict[str, Any] | None = None, **overrides: Any) -> None:
        self._dir: str | None = None
        if profile is not None:
            self._dir = tempfile.mkdtemp(prefix="uq-profile-")
            raw = profile if isinstance(profile, dict) else json.loads(Path(profile).read_text(encoding="utf-8"))
            (Path(self._dir) / "profile.json").write_text(json.dumps(raw), encoding="utf-8")
            overrides["profiles_dir"] = self._dir
        self.settings = AlerterSettings(**overrides)
        self.engine = RulesEngine(load_rules(self.settings), self.settings)

    def rows(self, rows: Iterable[dict[str, Any]], model: str) -> list[dict[str, Any]]:
        """Each run record with its alerts, risks and summary replaced by the replay's."""
        out = []
        for row in rows:
            status = row.get("status") or "finished"
            replayed = outputs(
                self.engine, str(row.get("session_id") or row["id"]), model, row.get("tokens", []), status
            )
            out.append({**row, **replayed})
        return out

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
