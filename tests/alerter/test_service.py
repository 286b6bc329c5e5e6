"""The alerter through the real Redis: exact outputs, shuffled delivery, restarts, many sessions, timeouts."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from services.alerter import state
from services.alerter.engine import AlerterOutput, RulesEngine
from services.alerter.ruleset import load_rules
from services.alerter.service import Alerter
from services.alerter.session import SessionState
from services.alerter.settings import AlerterSettings
from services.common.bus import Bus
from services.common.codec import decode
from services.common.contracts import AuditEvent, SessionEvent
from services.common.settings import CommonSettings
from tests.alerter.factory import audit, scripted, view
from tests.alerter.test_engine import EXPECTED, brief
from tests.waiting import eventually

QUANTUM = ["examples.quantum_rule:QuantumUncertainty"]


@pytest.fixture
def alerter_settings(settings: CommonSettings) -> AlerterSettings:
    return AlerterSettings(**settings.model_dump(), python_rules=QUANTUM, scores_every=0)


def make(bus: Bus, s: AlerterSettings, name: str = "a", clock: Any = time.time) -> Alerter:
    """An alerter as ``python -m services.alerter`` builds it: its bus shares its settings."""
    return Alerter(Bus(bus.redis, s), s, load_rules(s), name=name, clock=clock)


def ended(session_id: str, tokens: int | None, status: str = "finished") -> SessionEvent:
    return SessionEvent(session_id=session_id, seq=2, status=status, tokens=tokens)  # type: ignore[arg-type]


async def drain(alerter: Alerter, idle_rounds: int = 3) -> None:
    idle = 0
    while idle < idle_rounds:
        taken = await alerter.step(block_ms=20)
        idle = idle + 1 if taken == 0 else 0


async def outputs(bus: Bus) -> list[Any]:
    entries = await bus.redis.xrange(bus.key("alerts"))
    return [decode("alerts", fields) for _, fields in entries]  # type: ignore[misc]


def reference(s: AlerterSettings, audits: list[AuditEvent], tokens: int | None = None) -> list[dict[str, Any]]:
    """What the pure engine says for the audits in order (the ground truth of the Redis runs)."""
    e = RulesEngine(load_rules(s), s)
    st = SessionState(audits[0].session_id)
    out: list[AlerterOutput] = []
    for a in sorted(audits, key=lambda a: a.seq):
        out += e.accept(st, a, 0.0)
    out += e.end(st, "finished", len(audits) if tokens is None else tokens, 0.0)
    return [view(o) for o in out]


async def test_live_scores_are_published_while_the_session_runs(bus: Bus, alerter_settings: AlerterSettings) -> None:
    s = alerter_settings.model_copy(update={"scores_every": 16})
    alerter = make(bus, s)
    await alerter.start()
    await bus.publish_many([("audits", a) for a in scripted()])
    await bus.publish("sessions", ended("s1", 24))
    await drain(alerter)
    out = await outputs(bus)
    scores = [o for o in out if o.type == "scores"]
    assert [(o.tokens, o.token_seq, o.answer_complete) for o in scores] == [(16, 15, False)]
    summary = out[-1]
    assert summary.type == "summary" and summary.scores is not None and scores[0].scores is not None
    assert scores[0].scores.tokens == 16 and summary.scores.tokens == 24
    assert [o.seq for o in out] == list(range(len(out)))  # one seq counter for every entry of the session


async def test_scripted_session_gives_exactly_the_expected_entries(bus: Bus, alerter_settings: AlerterSettings) -> None:
    alerter = make(bus, alerter_settings)
    await alerter.start()
    await bus.publish_many([("audits", a) for a in scripted()])
    await bus.publish("sessions", SessionEvent(session_id="s1", seq=1, status="started"))
    await bus.publish("sessions", ended("s1", 24))
    await drain(alerter)
    out = await outputs(bus)
    assert brief(out) == EXPECTED
    assert out[-1].type == "summary" and (out[-1].seq, out[-1].tokens, out[-1].final_risk) == (5, 24, "critical")
    assert [view(o) for o in out] == reference(alerter_settings, scripted())
    assert await bus.redis.get(alerter.state_key("s1")) == b'{"version":2,"done":true}'
    assert alerter.sessions == {}  # released from memory once summarised


async def test_shuffled_delivery_gives_the_same_result(bus: Bus, alerter_settings: AlerterSettings) -> None:
    s = alerter_settings.model_copy(update={"batch_size": 4})
    alerter = make(bus, s)
    await alerter.start()
    audits = scripted()
    random.Random(7).shuffle(audits)
    await bus.publish("sessions", ended("s1", 24))  # the end may even come first
    for a in audits:
        await bus.publish("audits", a)
    await drain(alerter)
    assert [view(o) for o in await outputs(bus)] == reference(s, scripted())


async def test_restart_mid_session_neither_loses_nor_repeats(bus: Bus, alerter_settings: AlerterSettings) -> None:
    s = alerter_settings.model_copy(update={"batch_size": 3})
    audits = scripted()
    random.Random(3).shuffle(audits)
    first = make(bus, s, "first")
    await first.start()
    await bus.publish_many([("audits", a) for a in audits[:13]])
    await drain(first)
    persisted = state.load("s1", await bus.redis.get(first.state_key("s1")))
    assert persisted.buffer  # the restart happens with audits waiting for a missing seq
    del first  # stopped; a new process starts
    second = make(bus, s, "second")
    await second.start()
    await bus.publish_many([("audits", a) for a in audits[13:]])
    await bus.publish("sessions", ended("s1", 24))
    await drain(second)
    assert [view(o) for o in await outputs(bus)] == reference(s, scripted())


async def test_crash_with_a_batch_in_flight(bus: Bus, redis: Redis, alerter_settings: AlerterSettings) -> None:
    """A consumer that read entries and died before committing: they are reclaimed, processed once, in order."""
    s = alerter_settings
    survivor = make(bus, s, "survivor")
    await survivor.start()
    await bus.publish_many([("audits", a) for a in scripted()])
    await bus.publish("sessions", ended("s1", 24))
    taken = await redis.xreadgroup(s.audit_group, "dead", {bus.key("audits"): ">"}, count=10)
    assert len(taken[0][1]) == 10  # seqs 0–9 are now pending on a consumer that will never ack

    async def summarised_after_a_step() -> bool:
        if any(o.type == "summary" for o in await outputs(bus)):
            return True
        await survivor.step(block_ms=50)
        return False

    await eventually(summarised_after_a_step, what="the in-flight entries to be reclaimed", interval_s=0)
    assert survivor.audits.stats.reclaimed == 10
    assert [view(o) for o in await outputs(bus)] == reference(s, scripted())


def pattern(session: int, seq: int) -> AuditEvent:
    """A different, deterministic script per session."""
    rng = random.Random(session * 1000 + seq)
    prob = rng.choice([0.95, 0.9, 0.8, 0.25, 0.05])
    hbar = rng.choice([0.3, 0.5, 0.7, 1.2, 2.7, 3.5])
    text = " quantum" if (session + seq) % 17 == 0 else " w"
    return audit(seq, text, prob=prob, hbar_s=hbar, session_id=f"sess-{session}")


@pytest.mark.slow
async def test_a_thousand_concurrent_sessions(bus: Bus, alerter_settings: AlerterSettings) -> None:
    s = alerter_settings.model_copy(update={"batch_size": 256, "maxlen_audits": 1_000_000, "max_sessions": 300})
    alerter = make(bus, s)
    await alerter.start()
    n_sessions, n_tokens = 1000, 12
    audits = [pattern(i, j) for i in range(n_sessions) for j in range(n_tokens)]
    random.Random(0).shuffle(audits)
    for start in range(0, len(audits), 1000):
        await bus.publish_many([("audits", a) for a in audits[start : start + 1000]])
    await bus.publish_many([("sessions", ended(f"sess-{i}", n_tokens)) for i in range(n_sessions)])
    await drain(alerter)
    by_session: dict[str, list[dict[str, Any]]] = {}
    for o in await outputs(bus):
        by_session.setdefault(o.session_id, []).append(view(o))
    assert len(by_session) == n_sessions
    for i in range(n_sessions):
        expected = reference(s, [pattern(i, j) for j in range(n_tokens)])
        assert by_session[f"sess-{i}"] == expected, f"sess-{i}"
    assert sum(len(v) for v in by_session.values()) > 3 * n_sessions  # alerts, risk changes and summaries
    assert len(alerter.sessions) <= s.max_sessions


async def test_gap_timeout_fires_from_the_sweep_and_survives_a_restart(
    bus: Bus, alerter_settings: AlerterSettings
) -> None:
    now = [1000.0]
    s = alerter_settings.model_copy(update={"reorder_timeout_ms": 2000, "sweep_interval_ms": 1})
    alerter = make(bus, s, clock=lambda: now[0])
    await alerter.start()
    await bus.publish_many([("audits", audit(0)), ("audits", audit(2, prob=0.1))])
    await drain(alerter)
    assert await outputs(bus) == []  # #2 waits for #1
    restarted = make(bus, s, "restarted", clock=lambda: now[0])  # the first one is gone
    await restarted.start()  # recovers the session waiting for its timeout
    assert "s1" in restarted.sessions
    now[0] += 2.5
    await restarted.step(block_ms=1)
    out = await outputs(bus)
    assert [(o.type, o.rule, o.token_seq, o.seq) for o in out] == [("alert", "LOW_CONFIDENCE", 2, 0)]
    st = state.load("s1", await bus.redis.get(restarted.state_key("s1")))
    assert (st.next_seq, st.skipped, st.out_seq, st.buffer) == (3, 1, 1, {})


async def test_a_gap_is_not_given_up_while_its_token_is_stranded_on_a_dead_auditor(
    bus: Bus, redis: Redis, alerter_settings: AlerterSettings
) -> None:
    """Token #1 was taken by an auditor that died: its audit comes only after another auditor
    reclaims it (UQ_CLAIM_IDLE_MS), so the alerter must not give up on #1 meanwhile."""
    now = [1000.0]
    s = alerter_settings.model_copy(update={"reorder_timeout_ms": 50, "sweep_interval_ms": 1})
    alerter = make(bus, s, clock=lambda: now[0])
    await alerter.start()
    tokens = bus.key("tokens")
    await redis.xgroup_create(tokens, s.token_group, id="$", mkstream=True)
    stranded_id = await redis.xadd(tokens, {"data": b"{}"})
    await redis.xreadgroup(s.token_group, "dead-auditor", {tokens: ">"}, count=1)  # and then it dies
    await bus.publish_many([("audits", audit(0)), ("audits", audit(2, prob=0.1))])
    await drain(alerter)
    await asyncio.sleep(0.1)  # time has to pass (Redis's idle clock): pending for longer than the reorder timeout
    now[0] += 10
    await alerter.step(block_ms=1)
    assert await outputs(bus) == []  # still waiting for #1
    # another auditor reclaims it: pending again with its idle time reset, but delivered twice
    await redis.xclaim(tokens, s.token_group, "live-auditor", min_idle_time=0, message_ids=[stranded_id])
    now[0] += 1
    await alerter.step(block_ms=1)
    assert await outputs(bus) == []  # its audit is on the way
    await redis.xack(tokens, s.token_group, stranded_id)  # audited (or dead-lettered)
    now[0] += 1
    await alerter.step(block_ms=1)
    assert [(o.type, o.token_seq) for o in await outputs(bus)] == [("alert", 2)]


async def test_unparsable_audit_is_dead_lettered_and_the_alerter_goes_on(
    bus: Bus, redis: Redis, alerter_settings: AlerterSettings
) -> None:
    alerter = make(bus, alerter_settings)
    await alerter.start()
    await redis.xadd(bus.key("audits"), {b"data": b'{"type": "audit", "seq": "x"}'})
    await bus.publish("audits", audit(0, " Paris", prob=0.12))
    await drain(alerter)
    dead = await redis.xrange(bus.key("dead"))
    assert len(dead) == 1 and b"invalid audits entry" in dead[0][1][b"reason"]
    assert [o.message for o in await outputs(bus)] == ['token " Paris" (#0): p = 0.12 below 0.30']


async def test_idle_sessions_leave_memory_and_come_back(bus: Bus, alerter_settings: AlerterSettings) -> None:
    now = [0.0]
    s = alerter_settings.model_copy(update={"session_idle_s": 10})
    alerter = make(bus, s, clock=lambda: now[0])
    await alerter.start()
    audits = scripted()
    await bus.publish_many([("audits", a) for a in audits[:12]])
    await drain(alerter)
    assert list(alerter.sessions) == ["s1"]
    now[0] += 11
    await alerter.step(block_ms=1)
    assert alerter.sessions == {}
    await bus.publish_many([("audits", a) for a in audits[12:]])
    await bus.publish("sessions", ended("s1", 24))
    await drain(alerter)
    assert [view(o) for o in await outputs(bus)] == reference(s, scripted())


async def test_run_until_stopped(bus: Bus, alerter_settings: AlerterSettings) -> None:
    alerter = make(bus, alerter_settings)
    stop = asyncio.Event()
    task = asyncio.create_task(alerter.run(stop))
    await bus.publish("audits", audit(0, prob=0.1))
    await eventually(lambda: outputs(bus), what="the alert", timeout_s=5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert alerter.details()["alerts_published"] == 1


async def test_after_a_failure_waiting_sessions_are_recovered(bus: Bus, alerter_settings: AlerterSettings) -> None:
    alerter = make(bus, alerter_settings)
    await alerter.start()
    await bus.publish_many([("audits", audit(0)), ("audits", audit(2)), ("audits", audit(0, session_id="s2"))])
    await drain(alerter)
    assert set(alerter.sessions) == {"s1", "s2"}
    alerter.forget()  # what step() does when Redis fails mid-batch
    assert alerter.sessions == {}
    await alerter.step(block_ms=1)
    assert list(alerter.sessions) == ["s1"]  # waits for #1; s2 comes back on its next audit
    assert alerter.details()["sessions_waiting"] == 1


async def test_duplicated_entries_never_repeat_an_alert(bus: Bus, alerter_settings: AlerterSettings) -> None:
    """The alerter does without the bus's (session_id, seq) bitmap: its state makes duplicates harmless."""
    s = alerter_settings.model_copy(update={"batch_size": 5})
    alerter = make(bus, s)
    await alerter.start()
    audits = scripted()
    doubled = [a for pair in zip(audits, audits, strict=True) for a in pair]  # each audit twice in a row
    await bus.publish_many([("audits", a) for a in doubled[:30]])
    await drain(alerter)
    await bus.publish_many([("audits", a) for a in audits[:20]])  # again, long after
    await bus.publish_many([("audits", a) for a in doubled[30:]])
    await bus.publish_many([("sessions", ended("s1", 24)), ("sessions", ended("s1", 24, "cancelled"))])
    await drain(alerter)
    await bus.publish("audits", audits[3])  # after the summary
    await drain(alerter)
    assert [view(o) for o in await outputs(bus)] == reference(s, scripted())


async def test_run_creates_vanished_groups_again(bus: Bus, alerter_settings: AlerterSettings) -> None:
    """The alerter runs in the consumer loop: both its groups, destroyed under it, are created again
    and the session goes on from its persisted state."""
    alerter = make(bus, alerter_settings)
    stop = asyncio.Event()
    task = asyncio.create_task(alerter.run(stop))

    async def next_seq() -> int:
        raw = await bus.redis.get(alerter.state_key("s1"))
        return state.load("s1", raw).next_seq if raw else 0

    async def until(check: Any, what: str) -> None:
        async def running_and(check: Any) -> bool:
            assert not task.done(), task.exception()
            return bool(await check())

        await eventually(lambda: running_and(check), what=what)

    async def groups() -> bool:
        audits = [g["name"] for g in await bus.redis.xinfo_groups(bus.key("audits"))]
        sessions = [g["name"] for g in await bus.redis.xinfo_groups(bus.key("sessions"))]
        return audits == [alerter_settings.audit_group.encode()] and sessions == [
            alerter_settings.session_group.encode()
        ]

    await bus.publish("audits", audit(0, prob=0.1))

    async def first_done() -> bool:
        return await next_seq() == 1

    await until(first_done, "the first audit")
    assert await bus.redis.xgroup_destroy(bus.key("audits"), alerter_settings.audit_group) == 1
    assert await bus.redis.xgroup_destroy(bus.key("sessions"), alerter_settings.session_group) == 1
    await until(groups, "both groups created again")
    await bus.publish("audits", audit(1))
    await bus.publish("sessions", ended("s1", 2))

    async def summarised() -> bool:
        return any(o.type == "summary" for o in await outputs(bus))

    await until(summarised, "the summary")
    stop.set()
    await asyncio.wait_for(task, 5)
    # audit 0, read again from the re-created group, changed nothing: the outputs are those of one pass
    assert [view(o) for o in await outputs(bus)] == reference(alerter_settings, [audit(0, prob=0.1), audit(1)])
