"""``python -m services.auditor``: audit ``uq:tokens`` in consumer group ``UQ_TOKEN_GROUP`` until SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses

from services.auditor.service import Auditor, token_consumer
from services.auditor.settings import AuditorSettings
from services.common.runner import ServiceContext, run_service, settle_gc


async def main(ctx: ServiceContext) -> None:
    settings: AuditorSettings = ctx.settings
    auditor = Auditor(settings)
    ctx.details.update(status="compiling")
    await asyncio.to_thread(auditor.warm_up)
    settle_gc()  # numba's compiled kernels and their caches live as long as the process
    consumer = token_consumer(ctx.bus, settings, auditor.handle, name=ctx.instance)
    ctx.details.update(status="ready", group=settings.token_group, consumer_name=consumer.name)
    # computed on each beat: the consumer's counts include commits that finished after the last batch
    ctx.heartbeat.details = lambda: ctx.details | auditor.details() | {"consumer": dataclasses.asdict(consumer.stats)}
    ctx.heartbeat.status = "ready"
    await consumer.run(ctx.stop)


if __name__ == "__main__":
    run_service("auditor", AuditorSettings, main)
