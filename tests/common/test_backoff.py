"""The one backoff helper: its delays, its reset, and a stop that cuts a wait short."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.common.backoff import Backoff


def test_delays_double_up_to_the_ceiling() -> None:
    backoff = Backoff()
    assert [round(backoff.next(), 6) for _ in range(9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


def test_reset_starts_again_from_the_first_delay() -> None:
    backoff = Backoff(first=0.5, ceiling=3.0, factor=3.0)
    assert [backoff.next() for _ in range(3)] == [0.5, 1.5, 3.0]
    backoff.reset()
    assert backoff.delay == 0.5
    assert backoff.next() == 0.5


def test_a_first_delay_above_the_ceiling_is_waited_once() -> None:
    """As the services' ``connect_retry_delay_s`` may be set above 5 s."""
    backoff = Backoff(first=8.0)
    assert [backoff.next() for _ in range(3)] == [8.0, 5.0, 5.0]


@pytest.mark.parametrize("kwargs", [{"first": 0.0}, {"ceiling": -1.0}, {"factor": 0.5}])
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(**kwargs)


async def test_sleep_waits_the_delay_and_advances() -> None:
    backoff = Backoff(first=0.01)
    assert await backoff.sleep() == 0.01
    assert backoff.delay == 0.02


async def test_a_set_stop_cuts_the_wait_short() -> None:
    stop = asyncio.Event()
    stop.set()
    backoff = Backoff(first=60.0)
    started = time.monotonic()
    assert await asyncio.wait_for(backoff.sleep(stop), timeout=5) == 60.0
    assert time.monotonic() - started < 5
