"""Exponential backoff: the one place a retry delay is computed.

Every retry loop of the services (the consumer loop, the gateway's fan-out, connecting to Redis or to
the database, re-publishing a session's end) waits with a :class:`Backoff`::

    backoff = Backoff()  # 0.1 s, 0.2 s, 0.4 s, ... then 5 s each time
    while not stop.is_set():
        try:
            await work()
            backoff.reset()
        except ConnectionError:
            await backoff.sleep(stop)

The delays are deterministic (no jitter): the services that retry are few per deployment, so they
do not stampede a Redis coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays ``first``, ``first × factor``, ``first × factor²``, ... capped at ``ceiling`` (seconds).

    A ``first`` above the ceiling is waited once, then the ceiling. :meth:`reset` after a success starts
    the sequence again.
    """

    first: float = 0.1
    ceiling: float = 5.0
    factor: float = 2.0
    _delay: float = field(init=False, repr=False, default=0.0)

    def __post_init__(self) -> None:
        if self.first <= 0 or self.ceiling <= 0 or self.factor < 1:
            raise ValueError(f"backoff needs first > 0, ceiling > 0, factor >= 1; got {self!r}")
        self._delay = self.first

    @property
    def delay(self) -> float:
        """The delay the next :meth:`sleep` (or :meth:`next`) waits."""
        return self._delay

    def next(self) -> float:
        """The delay to wait now; the one after is ``factor`` times longer, at most ``ceiling``."""
        delay = self._delay
        self._delay = min(delay * self.factor, self.ceiling)
        return delay

    def reset(self) -> None:
        """Start again from ``first`` (call it after a success)."""
        self._delay = self.first

    async def sleep(self, stop: asyncio.Event | None = None) -> float:
        """Wait the next delay, or until ``stop`` is set if that comes first; returns the delay."""
        delay = self.next()
        if stop is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        return delay
