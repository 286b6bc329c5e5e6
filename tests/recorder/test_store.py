"""The store on SQLite and PostgreSQL: write, read back, idempotency, listing, deletion, retention."""

from __future__ import annotations

import random

from services.common.contracts import AuditEvent, Event, Metrics, RiskEvent, SessionEvent, now_ns
from services.common.contracts.history import SessionQuery
from services.recorder.store import Store
from tests.recorder.conftest import expected_history, session_events

DAY_NS = 86_400 * 1_000_000_000


async def test_a_session_reads_back_equal_to_what_was_recorded(store: Store) -> None:
    events = session_events("s-1")

    counts = await store.record(events)

    assert (counts.tokens, counts.alerts, counts.risks, counts.summaries, counts.sessions) == (20, 2, 2, 1, 1)
    assert await store.get_session("s-1") == expected_history(events)


async def test_recording_again_changes_nothing(store: Store) -> None:
    events = session_events("s-1")
    await store.record(events)
    before = await store.get_session("s-1")

    again = await store.record(events)
    for event in events:  # one at a time, too: the way a redelivered entry arrives
        await store.record([event])

    assert (again.tokens, again.alerts, again.risks, again.summaries, again.sessions) == (0, 0, 0, 0, 0)
    assert await store.get_session("s-1") == before == expected_history(events)


async def test_any_order_and_any_batching_give_the_same_session(store: Store) -> None:
    """The three streams are consumed independently, so a session's entries arrive interleaved."""
    events = session_events("s-1")
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    i = 0
    while i < len(shuffled):
        size = random.Random(i).randint(1, 9)
        await store.record(shuffled[i : i + size])
        i += size

    assert await store.get_session("s-1") == expected_history(events)


async def test_tokens_before_any_lifecycle_entry_mean_started(store: Store) -> None:
    audit = next(e for e in session_events("s-1") if isinstance(e, AuditEvent))
    await store.record([audit])

    history = await store.get_session("s-1")

    assert history is not None
    assert (history.session.status, history.session.tokens, history.session.risk) == ("started", 1, "safe")
    assert history.tokens == [audit]


async def test_a_late_risk_entry_does_not_override_a_newer_one(store: Store) -> None:
    newer = RiskEvent(session_id="s", seq=5, level="emergency", previous="critical", reason="r", token_seq=9)
    older = RiskEvent(session_id="s", seq=2, level="warning", previous="safe", reason="r", token_seq=3)
    await store.record([newer])
    await store.record([older])

    history = await store.get_session("s")

    assert history is not None
    assert history.session.risk == "emergency"
    assert history.risks == [older, newer]


async def test_unknown_session_is_none(store: Store) -> None:
    assert await store.get_session("nope") is None
    assert await store.delete_session("nope") is False


async def test_list_is_newest_first_paged_and_filtered(store: Store) -> None:
    t0 = 1_700_000_000_000_000_000
    for i in range(7):
        events: list[Event] = [SessionEvent(session_id=f"s{i}", seq=1, ts_ns=t0 + i * 1000, status="started")]
        if i % 2:
            events.append(
                SessionEvent(session_id=f"s{i}", seq=2, ts_ns=t0 + i * 1000 + 1, status="failed", reason="boom")
            )
        if i == 3:
            events.append(RiskEvent(session_id="s3", seq=0, level="critical", previous="safe", reason="r", token_seq=0))
        await store.record(events)

    page, total = await store.list_sessions(SessionQuery(limit=3, offset=1))
    failed, n_failed = await store.list_sessions(SessionQuery(status="failed"))
    critical, n_critical = await store.list_sessions(SessionQuery(risk="critical"))
    none, n_none = await store.list_sessions(SessionQuery(status="finished"))

    assert [r.session_id for r in page] == ["s5", "s4", "s3"]
    assert total == 7
    assert [r.session_id for r in failed] == ["s5", "s3", "s1"]
    assert all(r.reason == "boom" for r in failed)
    assert n_failed == 3
    assert ([r.session_id for r in critical], n_critical) == (["s3"], 1)
    assert (none, n_none) == ([], 0)


async def test_the_peak_risk_is_kept_when_the_risk_falls_again(store: Store) -> None:
    rises = RiskEvent(session_id="s", seq=0, level="emergency", previous="safe", reason="r", token_seq=3)
    falls = RiskEvent(session_id="s", seq=1, level="safe", previous="emergency", reason="r", token_seq=9)
    await store.record([falls])
    await store.record([rises])  # out of order: the peak still holds

    [record], _ = await store.list_sessions()

    assert (record.risk, record.peak_risk) == ("safe", "emergency")
    assert [r.session_id for r in (await store.list_sessions(SessionQuery(peak="critical")))[0]] == ["s"]
    assert (await store.list_sessions(SessionQuery(risk="critical")))[1] == 0


async def test_list_filters_by_peak_and_creation_time_and_sorts_by_any_column(store: Store) -> None:
    t0 = 1_700_000_000_000_000_000
    levels = ["safe", "warning", "emergency", "critical"]
    for i, level in enumerate(levels):
        sid = f"s{i}"
        events: list[Event] = [
            SessionEvent(session_id=sid, seq=0, ts_ns=t0 + i * 1000, status="queued", model=f"m{3 - i}"),
            *(_audit(sid, k, t0 + i * 1000 + 1 + k) for k in range(i + 1)),
        ]
        if level != "safe":
            events.append(RiskEvent(session_id=sid, seq=0, level=level, previous="safe", reason="r", token_seq=0))
        await store.record(events)

    async def ids(**kw: object) -> list[str]:
        return [r.session_id for r in (await store.list_sessions(SessionQuery(**kw)))[0]]  # type: ignore[arg-type]

    assert await ids(peak="critical") == ["s3", "s2"]
    assert await ids(peak="warning", since_ns=t0 + 1000, until_ns=t0 + 3000) == ["s2", "s1"]
    assert await ids(since_ns=t0 + 3000) == ["s3"] and await ids(until_ns=t0) == []
    assert await ids(sort="peak") == ["s2", "s3", "s1", "s0"]
    assert await ids(sort="peak", order="asc") == ["s0", "s1", "s3", "s2"]
    assert await ids(sort="tokens", order="asc") == ["s0", "s1", "s2", "s3"]
    assert await ids(sort="model", order="asc") == ["s3", "s2", "s1", "s0"]
    assert await ids(sort="created", order="asc") == ["s0", "s1", "s2", "s3"]
    assert await ids(sort="peak", limit=2, offset=1) == ["s3", "s1"]


async def test_list_carries_the_summary(store: Store) -> None:
    events = session_events("s-1")
    await store.record(events)

    records, total = await store.list_sessions()

    assert total == 1
    assert records == [expected_history(events).session]


async def test_delete_removes_one_session_and_nothing_else(store: Store) -> None:
    await store.record(session_events("a") + session_events("b"))

    assert await store.delete_session("a") is True

    assert await store.get_session("a") is None
    assert await store.get_session("b") == expected_history(session_events("b"))
    with store.engine.connect() as conn:
        for table in ("tokens", "alerts", "summaries", "sessions"):
            left = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table} WHERE session_id = 'a'").scalar_one()
            assert (table, left) == (table, 0)


async def test_retention_deletes_sessions_idle_longer_than_the_limit_and_nothing_else(store: Store) -> None:
    now = now_ns()
    old = session_events("old", t0=now - 10 * DAY_NS)
    # Created long ago but still written to yesterday: kept, retention looks at the last update.
    revived = [*session_events("revived", t0=now - 10 * DAY_NS), _audit("revived", 99, now - DAY_NS)]
    fresh = session_events("fresh", t0=now - 3_600 * 10**9)
    await store.record(old + revived + fresh)

    assert await store.apply_retention(0) == 0  # 0 keeps everything
    assert await store.apply_retention(30) == 0
    deleted = await store.apply_retention(2)

    assert deleted == 1
    assert await store.get_session("old") is None
    assert await store.get_session("revived") == expected_history(revived)
    assert await store.get_session("fresh") == expected_history(fresh)
    assert (await store.list_sessions())[1] == 2


async def test_many_sessions_in_one_batch(store: Store) -> None:
    events = [e for i in range(30) for e in session_events(f"s{i:02}", n_tokens=5)]
    random.Random(1).shuffle(events)

    await store.record(events)

    records, total = await store.list_sessions(SessionQuery(limit=100))
    assert total == 30
    assert {r.session_id: (r.tokens, r.alerts, r.risk, r.status) for r in records} == {
        f"s{i:02}": (5, 2, "critical", "finished") for i in range(30)
    }


def _audit(session_id: str, seq: int, ts_ns: int) -> AuditEvent:
    return AuditEvent(
        session_id=session_id,
        seq=seq,
        ts_ns=ts_ns,
        text="x",
        distribution="prob_only",
        metrics=Metrics(prob=0.5, surprisal=1.0, exact=False),
        model="m-1",
        token_ts_ns=ts_ns,
    )
