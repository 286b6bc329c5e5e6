"""``python -m services.alerter``: the rules worker (settings: services/alerter/settings.py)."""

from __future__ import annotations

import logging

from services.alerter.ownership import Ownership
from services.alerter.ruleset import load_rules
from services.alerter.service import Alerter
from services.alerter.settings import AlerterSettings
from services.common.bus import Fence
from services.common.runner import ServiceContext, run_service, settle_gc

log = logging.getLogger("services.alerter")


async def main(ctx: ServiceContext) -> None:
    settings: AlerterSettings = ctx.settings
    rules = load_rules(settings)  # a broken rule or rules file stops the alerter here (exit 2)

    def alerter(partition: int, fence: Fence) -> Alerter:
        return Alerter(ctx.bus, settings, rules, name=ctx.instance, partition=partition, fence=fence)

    ownership = Ownership(ctx.bus, settings, ctx.instance, alerter)
    settle_gc()  # the rules and their state tables live as long as the process
    ctx.heartbeat.details = ownership.details
    ctx.heartbeat.status = "ok"
    log.info(
        "alerter ready",
        extra={"rules": [r.name for r in rules], "group": settings.audit_group, "partitions": settings.partitions},
    )
    await ownership.run(ctx.stop)


if __name__ == "__main__":
    run_service("alerter", AlerterSettings, main)
