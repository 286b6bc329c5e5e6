"""Prometheus metrics, prefix ``uq_``, in a registry of the app's own (several apps may live in a process).

Every series says in its HELP what it counts, as each replica behind one address is scraped alone:
- **deployment-wide**: the same on every replica, so take one, never the sum. The audit and alert
  counts come from the fan-out, which sees every entry of every partition of uq:audits and uq:alerts
  (counted since this replica started); consumer-group lag and pending are read at scrape time with
  ``XINFO GROUPS`` on each partition and summed;
- **this replica**: its own WebSocket clients, drops, replay buffers and rate-limit refusals, so sum
  them over replicas. ``uq_gateway_replica_info{replica}`` names the replica (``UQ_INSTANCE``).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from services.common.settings import CommonSettings
from services.gateway.live import LiveState
from services.gateway.security import SharedRateLimiter

log = logging.getLogger(__name__)
STREAMS = ("jobs", "tokens", "audits", "alerts", "sessions")
DEPLOYMENT = " Deployment-wide: every replica reports it; take one replica's, not the sum."
REPLICA = " This replica only: sum over replicas."


class GatewayMetrics:
    def __init__(self, replica: str = "gateway") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Gauge(
            "uq_gateway_replica_info", "The replica this scrape reads (UQ_INSTANCE).", ["replica"], registry=r
        ).labels(replica=replica).set(1)
        self.tokens_audited = Counter(
            "uq_tokens_audited", "Audited tokens seen on uq:audits since this replica started." + DEPLOYMENT, registry=r
        )
        self.alerts = Counter(
            "uq_alerts",
            "Alerts seen on uq:alerts since this replica started, by rule." + DEPLOYMENT,
            ["rule"],
            registry=r,
        )
        self.active_sessions = Gauge("uq_active_sessions", "Sessions started and not ended." + DEPLOYMENT, registry=r)
        self.ws_clients = Gauge("uq_websocket_clients", "Open WebSocket connections." + REPLICA, registry=r)
        self.ws_dropped = Counter(
            "uq_websocket_dropped_messages", "Messages dropped for slow WebSocket clients." + REPLICA, registry=r
        )
        self.lag = Gauge(
            "uq_consumer_group_lag",
            "Entries not yet delivered to a consumer group, summed over the partitions." + DEPLOYMENT,
            ["stream", "group"],
            registry=r,
        )
        self.pending = Gauge(
            "uq_consumer_group_pending",
            "Entries delivered and not yet acknowledged, summed over the partitions." + DEPLOYMENT,
            ["stream", "group"],
            registry=r,
        )
        self.replay_bytes = Gauge(
            "uq_replay_buffer_bytes",
            "Estimated memory of the live replay buffers (UQ_REPLAY_BUDGET_MB)." + REPLICA,
            registry=r,
        )
        self.replay_trimmed = Counter(
            "uq_replay_trimmed_messages",
            "Token messages dropped from replay buffers to stay within budget." + REPLICA,
            registry=r,
        )
        self.rate_limited = Counter(
            "uq_rate_limited_requests",
            "Requests this replica refused over the shared rate limit (UQ_RATE_LIMIT_PER_S)." + REPLICA,
            registry=r,
        )
        self.rate_limit_local = Counter(
            "uq_rate_limit_local_checks",
            "Rate-limit checks this replica made on its own because Redis could not be reached." + REPLICA,
            registry=r,
        )
        self._seen_refused = 0
        self._seen_local = 0
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

    def sync_limiter(self, limiter: SharedRateLimiter) -> None:
        self.rate_limited.inc(limiter.refused - self._seen_refused)
        self._seen_refused = limiter.refused
        self.rate_limit_local.inc(limiter.local_checks - self._seen_local)
        self._seen_local = limiter.local_checks

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
