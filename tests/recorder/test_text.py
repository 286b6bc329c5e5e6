"""Exact history: every valid Unicode string, U+0000 included, comes back unchanged on both databases.

Through the store (history) and both export formats; docs/recorder.md, "Text".
"""

from __future__ import annotations

import csv
import io
import json

from pydantic import TypeAdapter

from services.common.contracts import AlertEvent, AuditEvent, Event, RiskEvent, SessionEvent, SummaryEvent
from services.common.contracts.events import AlertStreamEvent
from services.recorder.escape import load_text, store_text
from services.recorder.store import Store
from tests.recorder.conftest import expected_history, session_events

HARD_TEXTS = [
    "a\x00b",  # NUL, which PostgreSQL text cannot hold
    "\x00",
    "\x10",  # the escape character itself
    "\x100",  # ... followed by what it escapes NUL as
    "\x10\x10\x00\x10",
    "\\u0000",  # a literal backslash-u, not a NUL
    "👩🏽‍🚀",  # emoji with a skin tone and a zero-width joiner
    "e\u0301",  # a combining acute accent
    "\u202eabc\u200f\u200e",  # RTL override and marks
    "\uffff\ufffe\ufffd",  # noncharacters and the replacement character
    "\U0010ffff\U0001d11e",  # the last code point, and a clef outside the BMP
    "\t\r\n\x7f\x1b\u2028",  # controls and the line separator
    ',"\n;',  # what CSV quotes
]
ALERT_STREAM: TypeAdapter[object] = TypeAdapter(AlertStreamEvent)


def hard_session(session_id: str) -> list[Event]:
    """A recorded session whose every text field holds the characters above."""
    events = session_events(session_id, n_tokens=len(HARD_TEXTS))
    out: list[Event] = []
    for e in events:
        if isinstance(e, AuditEvent):
            text = HARD_TEXTS[e.seq]
            top_k = [a.model_copy(update={"text": HARD_TEXTS[-1 - e.seq]}) for a in e.top_k]
            e = e.model_copy(update={"text": text, "top_k": top_k, "model": "m\x00"})
        elif isinstance(e, SessionEvent):
            update = {"prompt": "Explain\x00 AI 👩🏽‍🚀 e\u0301 \u202e\uffff"} if e.prompt else {}
            if e.reason:
                update["reason"] = "eos\x00\x10"
            e = e.model_copy(update={**update, "model": e.model and "m\x00", "provider": e.provider and "p\x10"})
        elif isinstance(e, AlertEvent):
            e = e.model_copy(
                update={
                    "rule": e.rule + "\x00",
                    "message": e.message + " \x00\u202e",
                    "token_text": HARD_TEXTS[e.token_seq],
                    "values": {f"{k}\x00": v for k, v in e.values.items()},
                }
            )
        elif isinstance(e, RiskEvent):
            e = e.model_copy(update={"reason": e.reason + "\x00"})
        elif isinstance(e, SummaryEvent):
            counts = ("firings_by_rule", "alerts_sent_by_rule", "alerts_by_rule")
            e = e.model_copy(update={c: {f"{k}\x00": v for k, v in (getattr(e, c) or {}).items()} for c in counts})
        out.append(e)
    return out


async def test_every_text_reads_back_exactly_through_history(store: Store) -> None:
    events = hard_session("hard")

    await store.record(events)

    history = await store.get_session("hard")
    assert history == expected_history(events)
    assert history is not None
    assert [t.text for t in history.tokens] == HARD_TEXTS
    assert history.session.prompt == "Explain\x00 AI 👩🏽‍🚀 e\u0301 \u202e\uffff"
    records, _ = await store.list_sessions()
    assert records == [history.session]


async def test_every_text_reads_back_exactly_through_both_exports(store: Store) -> None:
    events = hard_session("hard")
    await store.record(events)
    expected = expected_history(events)

    jsonl = "".join([chunk async for chunk in store.export(session_id="hard")])
    table = "".join([chunk async for chunk in store.export(session_id="hard", fmt="csv")])

    lines = jsonl.split("\n")[:-1]  # not splitlines(): U+2028 is a line break to Python, not to JSONL
    assert json.loads(lines[0])["prompt"] == expected.session.prompt
    assert json.loads(lines[0])["reason"] == "eos\x00\x10"
    n = len(HARD_TEXTS)
    assert [AuditEvent.model_validate_json(line) for line in lines[1 : 1 + n]] == expected.tokens
    entries = sorted([*expected.alerts, *expected.risks], key=lambda a: a.seq)
    assert [ALERT_STREAM.validate_json(line) for line in lines[1 + n :]] == [*entries, expected.session.summary]
    rows = list(csv.DictReader(io.StringIO(table, newline="")))
    assert [r["text"] for r in rows] == HARD_TEXTS
    assert [[a["text"] for a in json.loads(r["top_k"])] for r in rows] == [
        [a.text for a in t.top_k] for t in expected.tokens
    ]
    assert rows[3]["alerts"] == "LOW_CONFIDENCE\x00"


async def test_text_without_nul_or_the_escape_is_stored_as_it_is(store: Store) -> None:
    """What SQL readers of the tables see: only U+0000 and U+0010 are escaped."""
    await store.record(hard_session("hard"))

    with store.engine.connect() as conn:
        stored = [t for (t,) in conn.exec_driver_sql("SELECT text FROM tokens ORDER BY seq")]

    assert stored == [store_text(t) for t in HARD_TEXTS]
    assert stored[0] == "a\x100b"
    assert stored[6:9] == HARD_TEXTS[6:9]
    assert [load_text(t) for t in stored] == HARD_TEXTS
