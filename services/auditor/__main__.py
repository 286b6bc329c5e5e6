"""``python -m services.auditor``: audit ``uq:tokens`` in consumer group ``UQ_TOKEN_GROUP`` until SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from services.auditor.service import Auditor
from services.auditor.settings import AuditorSettings
from services.common.bus import Delivery, Outcome
from services.common.runner import ServiceContext, run_service


async def main(ctx: ServiceContext) -> None:
    settings: AuditorSettings = ctx.settings
    auditor = Auditor(settings)
    ctx.details.update(status="compiling")
    await asyncio.to_thread(auditor.warm_up)

    async def handle(deliveries: Sequence[Delivery]) -> list[Outcome]:
        outcomes = await auditor.handle(deliveries)
        ctx.details.update(auditor.details(), consumer=dataclasses.asdict(consumer.stats))
        return outcomes

    consumer = ctx.bus.consumer("tokens", settings.token_group, handle, name=ctx.instance)
    ctx.details.update(status="ready", group=settings.token_group, consumer_name=consumer.name)
    ctx.heartbeat.status = "ready"
    await consumer.run(ctx.stop)


if __name__ == "__main__":
    run_service("auditor", AuditorSettings, main)
