"""The gateway sweeps the leases of dead producers: their sessions end failed, visible through the API."""

from __future__ import annotations

import asyncio

from services.common.bus import Bus
from services.common.leases import Leases
from services.gateway.settings import GatewaySettings
from tests.gateway.conftest import running_app


async def test_gateway_marks_a_dead_generators_session_failed(gw_settings: GatewaySettings, bus: Bus) -> None:
    settings = gw_settings.model_copy(update={"lease_timeout_s": 0.3})
    await Leases(bus).hold("generator-7", 0.1, "orphaned")  # its generator died: never renewed
    async with running_app(settings):
        for _ in range(50):
            entries = await bus.redis.xrange(bus.key("sessions"))
            if entries:
                break
            await asyncio.sleep(0.05)
    assert len(entries) == 1
    data = entries[0][1][b"data"].decode()
    assert '"status":"failed"' in data
    assert "generator-7 stopped responding" in data
