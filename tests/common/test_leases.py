from __future__ import annotations

import asyncio

from services.common.bus import Bus
from services.common.codec import decode
from services.common.contracts import SessionEvent
from services.common.leases import Leases


async def test_expired_leases_mark_sessions_failed_once(bus: Bus) -> None:
    leases = Leases(bus)
    await leases.hold("generator-1", 0.2, "dead-1", "dead-2")
    await leases.hold("generator-2", 60, "alive")
    assert await leases.sweep(0.2) == []  # nothing expired yet
    await asyncio.sleep(0.3)
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
    await asyncio.sleep(0.1)
    await leases.hold("g", 0.5, "renewed")
    await asyncio.sleep(0.15)
    assert await leases.sweep(0.5) == []
    assert await bus.redis.xlen(bus.key("sessions")) == 0
