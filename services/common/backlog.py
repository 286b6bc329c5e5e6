"""How far a consumer group is behind on a stream: the producers' backpressure signal.

Retention (``MAXLEN ~``) trims a stream whether or not its consumers have read it, so a producer
that keeps publishing while a group is more than ``UQ_MAXLEN_<STREAM>`` entries behind loses
entries. Producers that can wait (the push API) ask :func:`backlog` first and refuse, with a retry
hint, when what they would add does not fit in what the retention leaves unread.

The check is O(1) and never reads the stream's entries (which may be full logits, ~100 KB each):
one ``XINFO GROUPS``, and an ``XLEN`` when Redis cannot tell the group's lag.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from services.common.bus import Bus


async def backlog(bus: Bus, stream: str, group: str, partition: int = 0) -> int:
    """Entries of ``stream`` that ``group`` has not acknowledged yet: pending plus not yet delivered.

    Not yet delivered is the group's ``lag`` (Redis 7+), which already leaves out entries trimmed
    unread. Where Redis cannot tell it (before 7.0, or while an entry deleted with XDEL lies ahead
    of the group) every retained entry is assumed undelivered: ``pending + XLEN``, an upper bound,
    so the check errs towards refusing (503, retry later), never towards trimming unread entries.
    A group that does not exist yet (its consumers never started) is behind by the whole stream.
    """
    key = bus.partition_key(stream, partition)
    try:
        groups: list[dict[str, Any]] = await bus.redis.xinfo_groups(key)
    except ResponseError:  # no such stream: nothing published, nothing behind
        return 0
    for info in groups:
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        if name != group:
            continue
        pending = int(info["pending"])
        lag = info.get("lag")
        if lag is None:
            return pending + int(await bus.redis.xlen(key))
        return pending + int(lag)
    return int(await bus.redis.xlen(key))


async def room(bus: Bus, stream: str, group: str, share: float = 0.8, partition: int = 0) -> int:
    """How many more entries ``stream``'s ``partition`` can take before unread ones risk being trimmed.

    ``share`` of the retention is the budget for the backlog; the rest is slack for MAXLEN ~.
    """
    return int(bus.maxlen(stream) * share) - await backlog(bus, stream, group, partition)
