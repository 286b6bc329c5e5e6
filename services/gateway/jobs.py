"""Jobs: submit a generation, cancel it. Knows Redis and the contracts, nothing of HTTP.

A request reaches :meth:`JobService.submit` validated by the app's GenerateRequest, whose bounds are
the settings (services/gateway/models.py). Submit then refuses a ``model`` that a live generator would
not run, by the rule of services/common/model_policy.py applied to the policy each generator
publishes in its heartbeat. With no generator heartbeat at all the job is queued anyway (a generator
may start later); the generator applies the same rule when it takes the job, and a job it refuses
ends ``failed`` with the reason.
"""

from __future__ import annotations

import logging
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.bus import Bus
from services.common.contracts import JobRequest, SamplingParams, SessionEvent
from services.common.contracts.events import TERMINAL_STATUSES, prompt_text
from services.common.health import read_heartbeats
from services.common.model_policy import ModelPolicy, refusals
from services.gateway.errors import BadRequestError, NotFoundError
from services.gateway.history import HistoryService
from services.gateway.models import CancelResponse, GenerateRequest, GenerateResponse, SessionUrls
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def new_session_id() -> str:
    return uuid.uuid4().hex


def session_urls(session_id: str) -> SessionUrls:
    return SessionUrls(
        session=f"/sessions/{session_id}",
        status=f"/sessions/{session_id}/status",
        cancel=f"/sessions/{session_id}/cancel",
        ws="/ws",
    )


class ServedModels:
    """The model policies the live generators publish in their heartbeats (read at most every ``ttl_s``)."""

    def __init__(self, redis: Redis, settings: GatewaySettings) -> None:
        self.redis = redis
        self.settings = settings
        self.ttl_s = min(1.0, settings.heartbeat_interval_s)
        self._policies: list[tuple[str, ModelPolicy]] = []
        self._read_at = -float("inf")

    async def policies(self) -> list[tuple[str, ModelPolicy]]:
        """(instance, policy) of each generator with a fresh heartbeat that carries a policy."""
        if time.monotonic() - self._read_at < self.ttl_s:
            return self._policies
        policies = []
        for beat in await read_heartbeats(self.redis, self.settings):
            if beat.get("service") != "generator" or float(beat["age_s"]) > self.settings.heartbeat_max_age_s:
                continue
            raw = (beat.get("details") or {}).get("model_policy")
            if raw is None:
                continue  # a generator that does not publish one: it checks jobs itself
            try:
                policies.append((str(beat["instance"]), ModelPolicy.from_json(raw)))
            except ValueError as exc:
                log.warning("unreadable model policy", extra={"instance": beat.get("instance"), "error": str(exc)})
        self._policies, self._read_at = policies, time.monotonic()
        return policies

    async def offered(self) -> tuple[list[str], str]:
        """(models, default) this deployment offers: ``UQ_MODELS`` / ``UQ_DEFAULT_MODEL`` where set, else
        the names the live generators serve their default under (the upstream server's model, say),
        else the settings' values (no generator yet, or Redis unreachable)."""
        s = self.settings
        try:
            policies = await self.policies()
        except RedisError:
            policies = []
        served: list[str] = []
        for _instance, policy in policies:
            for name in sorted(policy.aliases) or [policy.default]:
                if name not in served:
                    served.append(name)
        models = s.split(s.models) if "models" in s.model_fields_set and s.models else served
        if "default_model" in s.model_fields_set or not (models or served):
            default = s.default_model
        else:
            default = (served or models)[0]
        return (models or [default]), default

    async def check(self, model: str | None) -> None:
        """BadRequestError (``param: "model"``) when a live generator would refuse a job naming ``model``.

        Any generator may take any job, so every one of them must serve it.
        """
        refused = refusals(await self.policies(), model)
        if refused:
            instance, reason = refused[0]
            raise BadRequestError(f"model {model!r} is not served (generator {instance}): {reason}", param="model")


class JobService:
    def __init__(self, bus: Bus, settings: GatewaySettings, history: HistoryService) -> None:
        self.bus = bus
        self.settings = settings
        self.history = history
        self.models = ServedModels(bus.redis, settings)

    async def submit(self, req: GenerateRequest, session_id: str | None = None) -> GenerateResponse:
        """Publish the session's ``queued`` entry, then the job; the generator takes it from there."""
        await self.models.check(req.model)
        sid = session_id or new_session_id()
        sampling = SamplingParams.model_validate(req.model_dump(include=set(SamplingParams.model_fields)))
        prompt = prompt_text(req.prompt, req.messages)
        # provider: which engine runs it is known once a generator starts it (its "started" entry says)
        queued = SessionEvent(session_id=sid, seq=0, status="queued", model=req.model, provider=None, prompt=prompt)
        job = JobRequest(
            session_id=sid,
            seq=0,
            prompt=req.prompt,
            messages=req.messages,
            model=req.model,
            sampling=sampling,
            verify=req.verify,
        )
        self.history.live.ensure(sid, model=req.model, prompt=prompt)
        await self.bus.publish_many([("sessions", queued), ("jobs", job)])
        return GenerateResponse(session_id=sid, status="queued", urls=session_urls(sid))

    async def cancel(self, session_id: str) -> CancelResponse:
        """Set the cancel key the generator checks between tokens (with a TTL)."""
        status = await self.history.known_status(session_id)
        if status is None:
            raise NotFoundError(f"no session {session_id!r}", param="session_id")
        if status in TERMINAL_STATUSES:
            return CancelResponse(session_id=session_id, status=status)
        await self.bus.redis.set(self.bus.cancel_key(session_id), b"1", ex=self.settings.cancel_ttl_s)
        return CancelResponse(session_id=session_id, status="cancelling")
