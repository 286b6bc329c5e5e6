"""The test suite's one way of waiting: poll a condition, fail with what was awaited."""

from __future__ import annotations

import time

import pytest

from tests.waiting import eventually, wait_until


async def test_eventually_returns_the_first_truthy_result_of_a_sync_or_async_check() -> None:
    calls = []

    def sync_check() -> list[int]:
        calls.append(1)
        return calls if len(calls) >= 3 else []

    async def async_check() -> str:
        return "ready"

    assert await eventually(sync_check, what="three calls", interval_s=0) == [1, 1, 1]
    assert await eventually(async_check, what="ready") == "ready"


async def test_eventually_fails_after_the_timeout_naming_the_condition() -> None:
    seen = {"last": 0}

    def never() -> bool:
        seen["last"] += 1
        return False

    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0\.1 s waiting for the flag; last \d+"):
        await eventually(never, what=lambda: f"the flag; last {seen['last']}", timeout_s=0.1)
    assert 0.1 <= time.monotonic() - start < 2


async def test_an_error_in_the_check_ends_the_wait_at_once() -> None:
    def broken() -> bool:
        raise RuntimeError("the service died")

    with pytest.raises(RuntimeError, match="the service died"):
        await eventually(broken, what="never", timeout_s=30)


def test_wait_until_is_the_synchronous_twin() -> None:
    left = [2]

    def countdown() -> bool:
        left[0] -= 1
        return left[0] <= 0

    assert wait_until(countdown, what="the countdown", interval_s=0) is True
    with pytest.raises(AssertionError, match=r"timed out after 0\.05 s waiting for nothing"):
        wait_until(lambda: 0, what="nothing", timeout_s=0.05)
