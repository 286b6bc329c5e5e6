"""``python -m services.auditor``: audit ``uq:tokens`` in consumer group ``UQ_TOKEN_GROUP`` until SIGTERM."""

from __future__ import annotations

import asyncio

from services.auditor.service import Auditor, token_consumers
from services.auditor.settings import AuditorSettings
from services.common.bus import run_all, total_stats
from services.common.runner import ServiceContext, run_service, settle_gc


async def main(ctx: ServiceContext) -> None:
    settings: AuditorSettings = ctx.settings
    auditor = Auditor(settings)
    ctx.details.update(status="compiling")
    await asyncio.to_thread(auditor.warm_up)
    settle_gc()  # numba's compiled kernels and their caches live as long as the process
    consumers = token_consumers(ctx.bus, settings, auditor.handle, name=ctx.instance)
    ctx.details.update(
        status="ready", group=settings.token_group, consumer_name=ctx.instance, partitions=settings.partitions
    )
    # computed on each beat: the consumers' counts include commits that finished after the last batch
    ctx.heartbeat.details = lambda: ctx.details | auditor.details() | {"consumer": total_stats(consumers)}
    ctx.heartbeat.status = "ready"
    await run_all(consumers, ctx.stop)


if __name__ == "__main__":
    run_service("auditor", AuditorSettings, main)
