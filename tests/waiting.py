"""Wait for a condition, never for a fixed time.

``await eventually(check, what="...")`` polls ``check`` (a plain function or a coroutine function)
until it returns something truthy, and returns that; after ``timeout_s`` it fails the test, saying
what it waited for. ``wait_until`` is the same for synchronous code (a subprocess, a sync client).

A ``sleep`` left in a test is there on purpose (time has to pass: a TTL, an idle time, a deliberately
slow consumer, "nothing else happens meanwhile") and says so in a comment.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Described = str | Callable[[], str]


def _timed_out(timeout_s: float, what: Described) -> AssertionError:
    said = what() if callable(what) else what
    return AssertionError(f"timed out after {timeout_s:g} s waiting for {said}")


async def eventually(
    check: Callable[[], Awaitable[T] | T],
    *,
    what: Described,
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
) -> T:
    """``check()``'s first truthy result, polled every ``interval_s``; AssertionError after ``timeout_s``.

    ``what`` names the condition for the failure message; a callable is called only then (to show the
    last state seen). An exception raised by ``check`` ends the wait at once.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise _timed_out(timeout_s, what)
        await asyncio.sleep(interval_s)


def wait_until(
    check: Callable[[], T],
    *,
    what: Described,
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
) -> T:
    """The synchronous twin of :func:`eventually` (blocks the thread: not for async tests)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise _timed_out(timeout_s, what)
        time.sleep(interval_s)
