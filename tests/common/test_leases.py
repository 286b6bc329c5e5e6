from __future__ import annotations

import asyncio

from services.common.bus import Bus
from services.common.codec import decode
from services.common.contracts import SessionEvent
from services.common.leases import Leases, push_owner
from tests.waiting import eventually


async def test_expired_leases_mark_sessions_failed_once(bus: Bus) -> None:
    leases = Leases(bus)
    await leases.hold("generator-1", 0.2, "dead-1", "dead-2")
    await leases.hold("generator-2", 60, "alive")
    assert await leases.sweep(0.2) == []  # nothing expired yet
    await asyncio.sleep(0.3)  # time has to pass: the 0.2 s leases expire (polling with sweep would take them)
    # two sweepers race: each expired session is taken by exactly one
    first, second = await asyncio.gather(leases.sweep(0.2), Leases(bus).sweep(0.2))
    assert sorted(first + second) == ["dead-1", "dead-2"]
    entries = [decode("sessions", f) for _, f in await bus.redis.xrange(bus.key("sessions"))]
    assert all(isinstance(e, SessionEvent) for e in entries)
    assert sorted((e.session_id, e.status, e.seq) for e in entries) == [  # type: ignore[union-attr]
        ("dead-1", "failed", 2),
        ("dead-2", "failed", 2),
    ]
    reason = entries[0].reason  # type: ignore[union-attr]
    assert reason is not None
    assert "generator-1 stopped responding" in reason
    assert await bus.redis.zrange(bus.key("leases"), 0, -1) == [b"alive"]


async def test_renewed_and_released_leases_do_not_expire(bus: Bus) -> None:
    leases = Leases(bus)
    await leases.hold("g", 0.2, "renewed", "released")
    await leases.release("released")
    await asyncio.sleep(0.1)  # time has to pass: the renewal comes late in the first 0.2 s
    await leases.hold("g", 0.5, "renewed")
    await asyncio.sleep(0.15)  # time has to pass: the first 0.2 s are over, the renewed 0.5 s are not
    assert await leases.sweep(0.5) == []
    assert await bus.redis.xlen(bus.key("sessions")) == 0


async def test_a_push_sessions_lease_names_its_idle_timeout_for_any_sweeper(bus: Bus) -> None:
    """The holder push-api:<s> carries UQ_PUSH_IDLE_TIMEOUT_S, so a generator's sweeper (which does not know
    the gateway's settings) words the failure as the gateway's would."""
    leases = Leases(bus)
    assert push_owner(5.0) == "push-api:5"
    await leases.hold(push_owner(5.0), 0.05, "pushed")
    await eventually(lambda: leases.sweep(30.0), what="the 0.05 s push lease to be swept")
    [entry] = [decode("sessions", f) for _, f in await bus.redis.xrange(bus.key("sessions"))]
    assert isinstance(entry, SessionEvent)
    assert entry.reason == (
        "abandoned: no tokens or finish for 5 s (UQ_PUSH_IDLE_TIMEOUT_S); the tokens pushed so far are kept"
    )
