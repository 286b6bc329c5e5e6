"""The recorder: consumer group ``recorders`` on ``uq:sessions``, ``uq:audits`` and ``uq:alerts``.

Each bus batch is written in one database transaction (``Store.record``) before the bus acknowledges
it. A crash between the two leaves the entries pending; they are delivered again (to this consumer
after a restart, or to another replica by ``XAUTOCLAIM``) and inserted-or-ignored, so nothing is lost
and nothing is doubled. While the database is unreachable the batch in hand is retried with backoff
and the entries stay pending: they are never dead-lettered for an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from sqlalchemy.exc import InterfaceError, OperationalError

from services.common.backoff import Backoff
from services.common.bus import Bus, Delivery, Outcome
from services.common.runner import ServiceContext
from services.recorder.errors import DatabaseUnavailableError
from services.recorder.settings import RecorderSettings
from services.recorder.store import RecordCounts, Store

log = logging.getLogger(__name__)

STREAMS = ("sessions", "audits", "alerts")
_TRANSIENT = (OperationalError, InterfaceError)


class Recorder:
    """Writes what the three streams carry into a :class:`Store`."""

    def __init__(self, bus: Bus, store: Store, settings: RecorderSettings) -> None:
        self.bus = bus
        self.store = store
        self.settings = settings
        self.totals = RecordCounts()
        self.stop = asyncio.Event()
        # The recorder's own batch size (recorder_batch_size entries a read). No bus dedupe (a GETBIT and
        # a SETBIT per entry): the store itself ignores what it already has.
        base = settings.instance_name()
        self.consumers = [
            bus.consumer(
                stream,
                settings.recorder_group,
                self.handle,
                name=f"{base}:{stream}:{i}",
                dedupe=False,
                batch_size=settings.recorder_batch_size,
                partition=p,
            )
            for stream in STREAMS
            for p in bus.partitions
            for i in range(settings.recorder_audit_consumers if stream == "audits" else 1)
        ]
        self.last_retention: float | None = None
        self.database_ok = True

    async def handle(self, deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        """Bus batch handler: one transaction per batch; no outputs."""
        events = [d.event for d in deliveries]
        backoff = Backoff()
        while True:
            try:
                counts = await self.store.record(events)
                self.database_ok = True
                break
            except (*_TRANSIENT, DatabaseUnavailableError) as exc:
                self.database_ok = False
                if self.stop.is_set():
                    raise
                log.warning(
                    "database unavailable, retrying the batch",
                    extra={"error": str(exc), "entries": len(events), "retry_in_s": backoff.delay},
                )
                await backoff.sleep(self.stop)
        for name in ("tokens", "alerts", "risks", "summaries", "sessions", "ignored"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(counts, name))
        return [()] * len(deliveries)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; apply the retention every ``retention_interval_s``."""
        watcher = asyncio.create_task(self._forward(stop))
        try:
            async with asyncio.TaskGroup() as group:
                for consumer in self.consumers:
                    group.create_task(consumer.run(self.stop))
                group.create_task(self._retention())
        finally:
            watcher.cancel()

    async def _forward(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stop.set()

    async def _retention(self) -> None:
        days = self.settings.retention_days
        if days <= 0:
            return
        while not self.stop.is_set():
            try:
                deleted = await self.store.apply_retention(days)
                self.last_retention = time.time()
                if deleted:
                    log.info("retention deleted old sessions", extra={"sessions": deleted, "days": days})
            except (*_TRANSIENT, DatabaseUnavailableError) as exc:
                log.warning("retention skipped: database unavailable", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.settings.retention_interval_s)

    def details(self) -> dict[str, object]:
        """What the heartbeat shows."""
        return {
            "database": self.store.engine.url.render_as_string(hide_password=True),
            "database_ok": self.database_ok,
            "recorded": vars(self.totals).copy(),
            "consumers": {c.label: vars(c.stats).copy() for c in self.consumers},
            "last_retention": self.last_retention,
        }


async def open_store(settings: RecorderSettings) -> Store:
    """The store, migrated; retries while the database does not answer (``connect_retries``)."""
    store = Store.from_url(settings.database_url)
    backoff = Backoff(first=settings.connect_retry_delay_s)
    for attempt in range(settings.connect_retries + 1):
        try:
            await store.migrate()
            return store
        except DatabaseUnavailableError as exc:
            if attempt == settings.connect_retries:
                await store.close()
                raise
            log.warning("database not reachable yet", extra={"url": exc.url, "attempt": attempt + 1})
            await backoff.sleep()
    raise AssertionError("unreachable")


async def main(ctx: ServiceContext) -> None:
    settings: RecorderSettings = ctx.settings
    store = await open_store(settings)
    recorder = Recorder(ctx.bus, store, settings)
    ctx.heartbeat.details = recorder.details
    ctx.heartbeat.status = "ready"
    log.info(
        "recording",
        extra={"database": recorder.details()["database"], "group": settings.recorder_group, "streams": STREAMS},
    )
    try:
        await recorder.run(ctx.stop)
    finally:
        await store.close()
