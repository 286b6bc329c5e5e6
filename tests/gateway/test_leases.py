"""The gateway sweeps the leases of dead producers: their sessions end failed, visible through the API."""

from __future__ import annotations

from typing import Any

from services.common.bus import Bus
from services.common.contracts import SessionEvent
from services.common.leases import Leases
from services.gateway.settings import GatewaySettings
from tests.gateway.conftest import running_app
from tests.waiting import eventually


async def test_gateway_marks_a_dead_generators_session_failed(gw_settings: GatewaySettings, bus: Bus) -> None:
    settings = gw_settings.model_copy(update={"lease_timeout_s": 0.3})
    await Leases(bus).hold("generator-7", 0.1, "orphaned")  # its generator died: never renewed
    async with running_app(settings):
        entries = await eventually(
            lambda: bus.redis.xrange(bus.key("sessions")), what="the sweeper's session entry", interval_s=0.05
        )
    assert len(entries) == 1
    data = entries[0][1][b"data"].decode()
    assert '"status":"failed"' in data
    assert "generator-7 stopped responding" in data


async def test_gateway_ends_an_abandoned_push_session_failed(gw_settings: GatewaySettings, bus: Bus) -> None:
    settings = gw_settings.model_copy(update={"push_idle_timeout_s": 0.3})
    async with running_app(settings) as (_, client):
        started = await client.post("/push/sessions", json={"model": "m", "session_id": "quiet-1"})
        assert started.status_code == 201, started.text
        ok = await client.post("/push/sessions/quiet-1/tokens", json={"tokens": [{"text": "a", "logprob": -0.2}]})
        assert ok.status_code == 202, ok.text

        async def failed() -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get("/sessions/quiet-1/status")).json()
            return body if body["status"] == "failed" else None

        status = await eventually(failed, what="quiet-1 to end failed", timeout_s=20, interval_s=0.05)
        assert status["reason"].startswith("abandoned: no tokens or finish for 0.3 s (UQ_PUSH_IDLE_TIMEOUT_S)")
        late = await client.post("/push/sessions/quiet-1/tokens", json={"tokens": [{"text": "b"}]})
        assert late.status_code == 409, late.text
        assert "already ended failed: abandoned" in late.json()["error"]["message"]
        assert late.json()["error"]["param"] == "session_id"
        finish = await client.post("/push/sessions/quiet-1/finish", json={})
        assert finish.status_code == 409, finish.text
    tokens = await bus.redis.xrange(bus.key("tokens"))
    assert len(tokens) == 1  # the late token was not published


async def test_push_start_refuses_an_id_in_the_audit_trail(gw_settings: GatewaySettings, bus: Bus) -> None:
    """A session the recorder stored (the live view and Redis long forgot it) keeps its id: 409, and its
    record does not change."""
    from services.recorder.store import Store

    store = Store.from_url(gw_settings.database_url)
    await store.migrate()
    await store.record(
        [
            SessionEvent(session_id="kept-1", seq=0, status="queued", model="SmolLM2", prompt="Hi"),
            SessionEvent(session_id="kept-1", seq=2, status="finished", tokens=3, reason="eos"),
        ]
    )
    async with running_app(gw_settings) as (_, client):
        resp = await client.post("/push/sessions", json={"model": "other", "session_id": "kept-1"})
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"]["param"] == "session_id"
        assert "already exists (finished)" in resp.json()["error"]["message"]
        push = await client.post("/push/sessions/kept-1/tokens", json={"tokens": [{"text": "a"}]})
        assert push.status_code == 404, push.text
    history = await store.get_session("kept-1")
    await store.close()
    assert history is not None
    assert (history.session.status, history.session.model, history.session.prompt) == ("finished", "SmolLM2", "Hi")
    assert await bus.redis.xlen(bus.key("sessions")) == 0
