"""Helpers for generator tests: run a worker in the test's event loop, submit jobs, read what came out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from services.common.bus import Bus
from services.common.codec import decode
from services.common.contracts import JobRequest, SamplingParams, SessionEvent, TokenEvent
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings
from services.generator.worker import Worker
from tests.waiting import eventually


@contextlib.asynccontextmanager
async def running(settings: GeneratorSettings, bus: Bus, pool: EnginePool, name: str = "w1") -> AsyncIterator[Worker]:
    worker = Worker(settings, bus, pool, name=name)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def submit(bus: Bus, session_id: str, prompt: str | None = "Hello", **sampling: Any) -> JobRequest:
    extra = {k: sampling.pop(k) for k in ("model", "messages", "logits_mode", "verify") if k in sampling}
    job = JobRequest(session_id=session_id, seq=0, prompt=prompt, sampling=SamplingParams(**sampling), **extra)
    await bus.publish("jobs", job)
    return job


async def cancel(bus: Bus, session_id: str) -> None:
    await bus.redis.set(bus.cancel_key(session_id), b"1", px=60_000)


async def sessions(bus: Bus, session_id: str | None = None) -> list[SessionEvent]:
    events = [decode("sessions", f) for _, f in await bus.redis.xrange(bus.key("sessions"))]
    return [e for e in events if isinstance(e, SessionEvent) and session_id in (None, e.session_id)]


async def tokens(bus: Bus, session_id: str) -> list[TokenEvent]:
    events = [decode("tokens", f) for _, f in await bus.redis.xrange(bus.key("tokens"))]
    return [e for e in events if isinstance(e, TokenEvent) and e.session_id == session_id]


async def wait_end(bus: Bus, session_id: str, timeout_s: float = 120) -> SessionEvent:
    """The terminal session entry (seq 2), once it is there."""

    async def ends() -> list[SessionEvent]:
        return [e for e in await sessions(bus, session_id) if e.seq == 2]

    return (await eventually(ends, what=f"session {session_id} to end", timeout_s=timeout_s, interval_s=0.05))[0]


async def wait_tokens(bus: Bus, session_id: str, n: int, timeout_s: float = 120) -> list[TokenEvent]:
    async def enough() -> list[TokenEvent]:
        found = await tokens(bus, session_id)
        if len(found) >= n:
            return found
        ended = [e for e in await sessions(bus, session_id) if e.seq == 2]
        assert not ended, f"session {session_id} ended with {len(found)} of {n} tokens: {ended[0]}"
        return []

    return await eventually(enough, what=f"session {session_id} to reach {n} tokens", timeout_s=timeout_s)
