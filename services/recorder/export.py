"""The export formats of the audit trail: JSONL and CSV, one session's history at a time."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable

from services.common.contracts import AlertEvent, RiskEvent
from services.common.contracts.history import SessionHistory
from services.recorder.rows import METRICS, TOKEN_COLUMNS

EXPORT_FORMATS = ("jsonl", "csv")
EXPORT_PAGE = 200  # lines per chunk
CSV_COLUMNS = (*TOKEN_COLUMNS, "alerts", "risk")


def jsonl_chunks(history: SessionHistory) -> Iterable[str]:
    head = {"type": "session_record", **history.session.model_dump(exclude={"summary"})}
    lines = [json.dumps(head, ensure_ascii=False)]
    lines += [t.model_dump_json() for t in history.tokens]
    entries: list[AlertEvent | RiskEvent] = [*history.alerts, *history.risks]
    lines += [a.model_dump_json() for a in sorted(entries, key=lambda a: a.seq)]
    if history.session.summary is not None:
        lines.append(history.session.summary.model_dump_json())
    for i in range(0, len(lines), EXPORT_PAGE):
        yield "".join(f"{line}\n" for line in lines[i : i + EXPORT_PAGE])


def csv_chunks(history: SessionHistory) -> Iterable[str]:
    fired: dict[int, list[str]] = {}
    for a in history.alerts:
        fired.setdefault(a.token_seq, []).append(a.rule)
    changes = sorted(history.risks, key=lambda r: (r.token_seq, r.seq))
    risk, next_change = "safe", 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for n, t in enumerate(history.tokens, 1):
        while next_change < len(changes) and changes[next_change].token_seq <= t.seq:
            risk = changes[next_change].level
            next_change += 1
        m = t.metrics
        top_k = json.dumps([a.model_dump() for a in t.top_k], ensure_ascii=False)
        writer.writerow(
            [
                t.session_id,
                t.seq,
                t.ts_ns,
                t.token_ts_ns,
                _cell(t.token_id),
                t.text,
                t.distribution,
                t.model,
                *(_cell(getattr(m, name)) for name in METRICS),
                "true" if m.exact else "false",
                top_k,
                ";".join(fired.get(t.seq, [])),
                risk,
            ]
        )
        if n % EXPORT_PAGE == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _cell(value: object) -> str:
    """A CSV cell: empty for null and for a non-finite float (as JSON writes them), else the exact value."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return "" if value is None else str(value)


def csv_line(values: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(list(values))
    return buffer.getvalue()
