"""Prometheus metrics, prefix ``uq_``, in a registry of the app's own (several apps may live in a process).

Counts come from the fan-out, which sees every entry of uq:audits and uq:alerts (so every replica
reports the same totals; sum over one replica, not over all). Consumer-group lag is read at scrape
time with ``XINFO GROUPS`` on each stream.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from services.common.settings import CommonSettings
from services.gateway.live import LiveState

log = logging.getLogger(__name__)
STREAMS = ("jobs", "tokens", "audits", "alerts", "sessions")


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tokens_audited = Counter("uq_tokens_audited", "Audited tokens seen on uq:audits.", registry=r)
        self.alerts = Counter("uq_alerts", "Alerts seen on uq:alerts, by rule.", ["rule"], registry=r)
        self.active_sessions = Gauge("uq_active_sessions", "Sessions started and not ended.", registry=r)
        self.ws_clients = Gauge("uq_websocket_clients", "Open WebSocket connections.", registry=r)
        self.ws_dropped = Counter(
            "uq_websocket_dropped_messages", "Messages dropped for slow WebSocket clients.", registry=r
        )
        self.lag = Gauge(
            "uq_consumer_group_lag", "Entries not yet delivered to a consumer group.", ["stream", "group"], registry=r
        )
        self.pending = Gauge(
            "uq_consumer_group_pending", "Entries delivered and not yet acknowledged.", ["stream", "group"], registry=r
        )
        self.replay_bytes = Gauge(
            "uq_replay_buffer_bytes", "Estimated memory of the live replay buffers (UQ_REPLAY_BUDGET_MB).", registry=r
        )
        self.replay_trimmed = Counter(
            "uq_replay_trimmed_messages",
            "Token messages dropped from replay buffers to stay within budget.",
            registry=r,
        )
        self.clients = 0
        self._seen_trimmed = 0
        self._seen_tokens = 0
        self._seen_alerts: dict[str, int] = {}

    def client_opened(self) -> None:
        self.clients += 1
        self.ws_clients.set(self.clients)

    def client_closed(self) -> None:
        self.clients -= 1
        self.ws_clients.set(self.clients)

    def sync_live(self, live: LiveState) -> None:
        """Bring counters up to the live state's totals."""
        self.tokens_audited.inc(live.tokens_audited - self._seen_tokens)
        self._seen_tokens = live.tokens_audited
        for rule, n in live.alerts_sent_by_rule.items():
            self.alerts.labels(rule=rule).inc(n - self._seen_alerts.get(rule, 0))
            self._seen_alerts[rule] = n
        self.active_sessions.set(live.active_sessions())
        self.replay_bytes.set(live.replay_bytes)
        self.replay_trimmed.inc(live.trimmed - self._seen_trimmed)
        self._seen_trimmed = live.trimmed

    async def refresh_lag(self, redis: Redis, settings: CommonSettings) -> None:
        """Each group's lag and pending entries on each stream, summed over the partitions."""
        for stream in STREAMS:
            lag: dict[str, float] = {}
            pending: dict[str, float] = {}
            for key in settings.partition_keys(stream):
                try:
                    groups = await redis.xinfo_groups(key)
                except ResponseError:  # no such stream yet
                    continue
                except (RedisError, OSError) as exc:
                    log.warning("cannot read consumer groups", extra={"stream": stream, "error": str(exc)})
                    return
                for g in groups:
                    name = g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"])
                    n = g.get("lag")
                    lag[name] = lag.get(name, 0.0) + (float(n) if n is not None else float("nan"))
                    pending[name] = pending.get(name, 0.0) + float(g.get("pending", 0))
            for name, n in lag.items():
                self.lag.labels(stream=stream, group=name).set(n)
                self.pending.labels(stream=stream, group=name).set(pending[name])

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
