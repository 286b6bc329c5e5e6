"""History: the recorder's store merged with the live view; replay order and dedupe."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.common.contracts import SessionEvent
from services.common.contracts.history import SessionQuery
from services.gateway.errors import NotFoundError, UnavailableError
from services.gateway.history import HistoryReader, HistoryService, merge, open_history
from services.gateway.live import LiveState
from services.recorder.migrate import create, current_revision
from services.recorder.store import Store as RecorderStore
from tests.gateway.events import alert, audit, lifecycle, risk, summary


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[HistoryReader]:
    """The gateway's read-only history on a database the recorder created (``record`` writes as the recorder)."""
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    recorder = RecorderStore.from_url(url)
    await recorder.migrate()
    s = open_history(url)
    assert s is not None
    s.recorder = recorder  # type: ignore[attr-defined]
    yield s
    await s.close()
    await recorder.close()


async def record(store: HistoryReader, *events: object) -> None:
    await store.recorder.record(list(events))  # type: ignore[attr-defined]


async def test_the_gateway_reads_and_never_migrates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/empty.sqlite3"
    reader = open_history(url)
    assert reader is not None
    history = HistoryService(reader, LiveState())
    with pytest.raises(UnavailableError, match="start the recorder"):
        await history.list_sessions(SessionQuery(limit=1))
    with pytest.raises(UnavailableError, match="no audit trail tables"):
        await history.stored("s")
    assert current_revision(create(url)) is None  # nothing was created
    live = LiveState()
    live.apply(audit("s", 0).model_dump(mode="json"))
    replay = await HistoryService(reader, live).messages("s")  # a live session replays from the buffer
    assert replay is not None and [k for k, _ in replay] == [("token", 0)]
    assert [t.seq for t in (await HistoryService(reader, live).detail("s")).tokens] == [0]  # and its detail
    recorder = RecorderStore.from_url(url)
    await recorder.migrate()
    assert (await history.list_sessions(SessionQuery(limit=1))).total == 0
    await recorder.close()
    await reader.close()


def test_merge_dedupes_orders_and_filters() -> None:
    stored = [
        (("session", 2), {"type": "session", "seq": 2}),
        (("token", 1), {"type": "token", "seq": 1, "v": "stored"}),
        (("token", 0), {"type": "token", "seq": 0}),
        (("alert", 0), {"type": "alert", "seq": 0, "token_seq": 0}),
        (("done", 0), {"type": "done"}),
    ]
    live = [
        (("session", 1), '{"type":"session","seq":1}'),
        (("token", 1), '{"type":"token","seq":1,"v":"live"}'),
        (("token", 2), '{"type":"token","seq":2}'),
        (("risk", 0), '{"type":"risk","seq":0,"token_seq":2}'),
    ]
    out = merge(stored, live)
    assert [k for k, _ in out] == [
        ("session", 2),
        ("token", 0),
        ("alert", 0),
        ("token", 1),
        ("token", 2),
        ("risk", 0),
        ("done", 0),
    ]
    assert json.loads(dict(out)[("token", 1)])["v"] == "live"
    assert [k for k, _ in merge(stored, live, after_seq=1) if k[0] == "token"] == [("token", 2)]


async def test_detail_merges_store_and_live(store: HistoryReader) -> None:
    await record(store, lifecycle("s", "queued", prompt="Hi"), lifecycle("s", "started"), audit("s", 0), audit("s", 1))
    live = LiveState()
    for e in (audit("s", 1), audit("s", 2), alert("s", 0, 2), risk("s", 1, 2)):
        live.apply(e.model_dump(mode="json"))
    history = HistoryService(store, live)
    detail = await history.detail("s")
    assert [t.seq for t in detail.tokens] == [0, 1, 2]
    assert all(t.type == "token" for t in detail.tokens)
    assert [a.rule for a in detail.alerts] == ["LOW_CONFIDENCE"]
    assert [r.level for r in detail.risks] == ["warning"]
    assert (detail.session.status, detail.session.prompt, detail.session.tokens) == ("started", "Hi", 3)
    status = await history.status("s")
    assert (status.source, status.tokens, status.risk) == ("live", 2, "warning")


async def test_a_session_that_ended_live_shows_its_reason_before_the_recorder_has_it(store: HistoryReader) -> None:
    await record(store, lifecycle("s", "queued"), lifecycle("s", "started"), audit("s", 0))
    live = LiveState()
    for e in (audit("s", 0), lifecycle("s", "finished", reason="stop", tokens=1)):
        live.apply(e.model_dump(mode="json"))
    record_ = (await HistoryService(store, live).detail("s")).session
    assert (record_.status, record_.reason) == ("finished", "stop")
    await record(store, lifecycle("s", "finished", reason="stop", tokens=1))
    record_ = (await HistoryService(store, live).detail("s")).session
    assert (record_.status, record_.reason) == ("finished", "stop")


async def test_stored_session_survives_a_new_live_state(store: HistoryReader) -> None:
    await record(
        store,
        lifecycle("s", "queued"),
        audit("s", 0),
        alert("s", 0, 0),
        lifecycle("s", "finished", reason="eos", tokens=1),
        summary("s", 1, 1),
    )
    history = HistoryService(store, LiveState())
    replay = await history.messages("s")
    assert replay is not None
    assert [k for k, _ in replay] == [("session", 2), ("token", 0), ("alert", 0), ("done", 0)]
    done = json.loads(replay[-1][1])
    assert (done["status"], done["reason"], done["summary"]["tokens"]) == ("finished", "eos", 1)
    status = await history.status("s")
    assert (status.source, status.status) == ("history", "finished")
    final = (await history.detail("s")).summary
    assert final is not None
    assert final.final_risk == "warning"


async def test_stored_text_comes_back_exactly_nul_included(store: HistoryReader) -> None:
    """docs/recorder.md, "Text": what the recorder stored, history serves unchanged (replay and detail)."""
    text, prompt = "a\x00b\x10 👩🏽‍🚀 e\u0301 \u202e\uffff", "Explain\x00 AI"
    await record(store, lifecycle("s", "queued", prompt=prompt), audit("s", 0).model_copy(update={"text": text}))
    history = HistoryService(store, LiveState())

    detail = await history.detail("s")
    replay = await history.messages("s")

    assert ([t.text for t in detail.tokens], detail.session.prompt) == ([text], prompt)
    assert replay is not None
    assert [json.loads(m)["text"] for k, m in replay if k[0] == "token"] == [text]


async def test_list_delete_and_unknown(store: HistoryReader) -> None:
    await record(store, lifecycle("a", "queued"), lifecycle("b", "finished", tokens=0))
    history = HistoryService(store, LiveState())
    page = await history.list_sessions(SessionQuery(limit=10, status="finished"))
    assert (page.total, [r.session_id for r in page.items]) == (1, ["b"])
    await history.delete("a")
    assert (await history.list_sessions(SessionQuery(limit=10))).total == 1
    with pytest.raises(NotFoundError):
        await history.delete("a")
    with pytest.raises(NotFoundError):
        await history.detail("zzz")
    assert await history.messages("zzz") is None


async def test_without_a_store_history_is_unavailable_but_live_works() -> None:
    live = LiveState()
    live.apply(audit("s", 0).model_dump(mode="json"))
    history = HistoryService(None, live)
    with pytest.raises(UnavailableError, match="recorder"):
        await history.list_sessions(SessionQuery(limit=1))
    assert [t.seq for t in (await history.detail("s")).tokens] == [0]


async def test_a_running_session_shows_its_latest_live_scores() -> None:
    from services.common.contracts import ScoresEvent, SequenceScores

    live = LiveState()
    history = HistoryService(None, live)
    for seq in range(3):
        live.apply(audit("s", seq).model_dump(mode="json"))
    for out_seq, tokens in ((0, 2), (1, 3)):
        scores = ScoresEvent(
            session_id="s",
            seq=out_seq,
            token_seq=tokens - 1,
            tokens=tokens,
            answer_complete=tokens == 3,
            scores=SequenceScores(tokens=tokens, gnll=float(tokens)),
            p_wrong=0.25 if tokens == 3 else None,
            profile="m/1",
        )
        live.apply(scores.model_dump(mode="json"))
    detail = await history.detail("s")
    assert detail.live_scores is not None and detail.live_scores.tokens == 3 and detail.live_scores.p_wrong == 0.25
    replay = await history.messages("s")
    assert replay is not None
    assert [k for k, _ in replay if k[0] == "scores"] == [("scores", 1)]  # only the latest is replayed
    assert [k for k, _ in replay][-1] == ("scores", 1)  # after the last token it includes
    live.apply(summary("s", 2, 3).model_dump(mode="json"))
    assert (await history.detail("s")).live_scores is None  # the summary has the final scores


async def test_list_searches_the_prompt_and_filters_by_model(store: HistoryReader) -> None:
    await record(
        store,
        SessionEvent(session_id="a", seq=0, status="queued", prompt="Explain QUANTUM computing", model="m1"),
        SessionEvent(session_id="b", seq=0, status="queued", prompt="The capital of France is", model="m2"),
        SessionEvent(session_id="c", seq=0, status="queued", prompt="100% sure_or not", model="m1"),
    )
    history = HistoryService(store, LiveState())

    async def ids(**filters: str) -> list[str]:
        page = await history.list_sessions(SessionQuery(limit=10, **filters))  # type: ignore[arg-type]
        return sorted(r.session_id for r in page.items)

    assert await ids(q="quantum") == ["a"]  # case-insensitive substring
    assert await ids(model="m1") == ["a", "c"]
    assert await ids(q="capital", model="m1") == []
    assert await ids(q="0% s") == ["c"] and await ids(q="%") == ["c"] and await ids(q="s_r") == []  # LIKE escaped
