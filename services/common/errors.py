"""Errors of the shared layer.

UQError                      every error this system raises on purpose
├── RedisUnavailableError         Redis cannot be reached (carries the URL and how to fix it)
├── ConfigError              a setting or config file is wrong (carries what and where)
└── EntryError               a stream entry cannot be decoded (carries the reason);
                             the bus moves such entries to the dead-letter stream
"""

from __future__ import annotations


class UQError(Exception):
    """Base of every error raised on purpose by this system."""


class RedisUnavailableError(UQError):
    def __init__(self, url: str, cause: BaseException | None = None) -> None:
        self.url = url
        self.cause = cause
        super().__init__(
            f"Redis is not reachable at {url} ({cause or 'no answer'}) — start one with "
            "`redis-server --daemonize yes --save '' --appendonly no`, or point UQ_REDIS_URL at yours"
        )


class ConfigError(UQError):
    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class EntryError(UQError):
    """A stream entry that cannot be decoded; ``reason`` goes to the dead-letter stream."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
