"""Where ``uq eval`` gets its sessions: the running system's API, or the same parts in one process.

Both return a :class:`SessionRun`: the generated text, each token's audit (metrics), the alerts,
risk changes and the summary, exactly as a user of the system sees them.

- :class:`ApiPipeline` submits ``POST /generate`` to a running gateway and reads ``GET /sessions/{id}``
  until the session is final (its summary written): the product end to end.
- :class:`LocalPipeline` runs the generator's engine, the auditor's ``Auditor.audit`` and the alerter's
  rules ``RulesEngine`` in this process, with the services' own settings (``UQ_*``) and code: no Redis, no
  re-implementation, and no waiting on the bus; what differs is only that nothing is recorded.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from services.common.contracts import AuditEvent, JobRequest, SamplingParams, TokenEvent
from services.evaluation.qa import Request


class PipelineError(RuntimeError):
    """A session could not be run or read; the message says what to check."""


@dataclass(slots=True)
class SessionRun:
    session_id: str
    text: str
    status: str
    reason: str | None
    audits: list[dict[str, Any]]  # {"seq", "text", "metrics": {...}}
    alerts: list[dict[str, Any]]
    risks: list[dict[str, Any]]
    summary: dict[str, Any] | None
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Pipeline(Protocol):
    model: str

    def run(self, request: Request, sampling: SamplingParams, verify: int = 0) -> SessionRun: ...

    def close(self) -> None: ...


def _audit_record(a: AuditEvent) -> dict[str, Any]:
    return {"seq": a.seq, "text": a.text, "token_id": a.token_id, "metrics": a.metrics.model_dump(exclude={"exact"})}


class LocalPipeline:
    """Generator engine → auditor → alerter in this process (see the module docstring)."""

    def __init__(self, model: str | None = None, engine: str | None = None) -> None:
        from services.alerter.engine import RulesEngine
        from services.alerter.ruleset import load_rules
        from services.alerter.settings import AlerterSettings
        from services.auditor.service import Auditor
        from services.auditor.settings import AuditorSettings
        from services.generator.pool import EnginePool
        from services.generator.settings import GeneratorSettings

        overrides: dict[str, Any] = {}
        if model:
            overrides["model"] = model
        if engine:
            overrides["engine"] = engine
        self.generator_settings = GeneratorSettings(**overrides)
        self.pool = EnginePool(self.generator_settings)
        self.engine = self.pool.get(None)
        self.engine_name = self.engine.name  # what UQ_ENGINE (auto by default) chose
        self.model = self.engine.display_name
        self.auditor = Auditor(AuditorSettings())
        alerter_settings = AlerterSettings()
        self.rules = RulesEngine(load_rules(alerter_settings), alerter_settings)

    def run(self, request: Request, sampling: SamplingParams, verify: int = 0) -> SessionRun:
        from services.alerter.engine import AlerterOutput
        from services.alerter.session import SessionState
        from services.common.answer import answer_text
        from services.common.bus import DeadLetter
        from services.common.contracts.events import prompt_text
        from services.generator import verify as verification_of
        from services.generator.engine import Finished, TokenStep
        from services.generator.errors import GeneratorError
        from services.generator.worker import generation_request, token_event

        started = time.perf_counter()
        sid = f"eval-{uuid.uuid4().hex[:16]}"
        job = JobRequest(
            session_id=sid, seq=0, prompt=request.prompt, messages=request.messages, sampling=sampling, verify=verify
        )
        events: list[TokenEvent] = []
        status, reason = "finished", "eos"
        verification = None
        gen = generation_request(job, self.engine, self.generator_settings)
        try:
            for step in self.engine.stream(gen):
                if isinstance(step, TokenStep):
                    events.append(token_event(job, self.engine, step, len(events)))
                elif isinstance(step, Finished):
                    reason = step.reason
            if verify:
                answer, prompt = answer_text(e.text for e in events), prompt_text(job.prompt, job.messages) or ""
                verification = verification_of.verify(self.engine, gen, verify, answer, prompt, self.generator_settings)
        except GeneratorError as exc:
            status, reason = "failed", str(exc)
        audits: list[AuditEvent] = []
        for outcome in self.auditor.audit(events):
            if isinstance(outcome, DeadLetter):
                raise PipelineError(f"the auditor refused a token: {outcome.reason}")
            audits.extend(e for _, e in outcome if isinstance(e, AuditEvent))  # type: ignore[misc]
        st = SessionState(sid)
        now = time.time()
        outputs: list[AlerterOutput] = []
        for audit in audits:
            outputs += self.rules.accept(st, audit, now)
        outputs += self.rules.end(st, status, len(audits), now, verification)  # type: ignore[arg-type]
        dumped = [o.model_dump(mode="json") for o in outputs]
        summaries = [d for d in dumped if d["type"] == "summary"]
        return SessionRun(
            session_id=sid,
            text="".join(a.text for a in audits),
            status=status,
            reason=reason,
            audits=[_audit_record(a) for a in audits],
            alerts=[d for d in dumped if d["type"] == "alert"],
            risks=[d for d in dumped if d["type"] == "risk"],
            summary=summaries[-1] if summaries else None,
            elapsed_s=time.perf_counter() - started,
        )

    def close(self) -> None:
        self.pool.close()


class ApiPipeline:
    """``POST /generate`` on a running gateway, then ``GET /sessions/{id}`` until it is final."""

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None, timeout_s: float = 300) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60)
        self.requested_model = model
        self.timeout_s = timeout_s
        try:
            config = self.client.get("/config")
        except httpx.HTTPError as exc:
            raise PipelineError(f"no gateway answers at {url} ({exc}); start the system with ./start.sh") from None
        if config.status_code != 200:
            raise PipelineError(f"GET {url}/config answered {config.status_code}: {config.text[:300]}")
        self.model = model or str(config.json().get("default_model", "default"))

    def run(self, request: Request, sampling: SamplingParams, verify: int = 0) -> SessionRun:
        started = time.perf_counter()
        body: dict[str, Any] = {
            "verify": verify,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "stop": request.stop,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if request.prompt is not None:
            body["prompt"] = request.prompt
        else:
            body["messages"] = [m.model_dump() for m in request.messages or ()]
        if self.requested_model:
            body["model"] = self.requested_model
        resp = self.client.post("/generate", json=body)
        if resp.status_code >= 300:
            raise PipelineError(f"POST /generate answered {resp.status_code}: {resp.text[:300]}")
        sid = resp.json()["session_id"]
        deadline = time.monotonic() + self.timeout_s
        delay = 0.05
        while True:
            detail = self.client.get(f"/sessions/{sid}")
            if detail.status_code == 200:
                data = detail.json()
                if data.get("summary") is not None:
                    break
            elif detail.status_code != 404:
                raise PipelineError(f"GET /sessions/{sid} answered {detail.status_code}: {detail.text[:300]}")
            if time.monotonic() > deadline:
                raise PipelineError(f"session {sid} was not final after {self.timeout_s:g} s (is a generator running?)")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        session = data["session"]
        tokens = data["tokens"]
        return SessionRun(
            session_id=sid,
            text="".join(t["text"] for t in tokens),
            status=str(session.get("status")),
            reason=session.get("reason"),
            audits=[
                {
                    "seq": t["seq"],
                    "text": t["text"],
                    "token_id": t.get("token_id"),
                    "metrics": {k: v for k, v in t["metrics"].items() if k != "exact"},
                }
                for t in tokens
            ],
            alerts=data["alerts"],
            risks=data["risks"],
            summary=data["summary"],
            elapsed_s=time.perf_counter() - started,
        )

    def close(self) -> None:
        self.client.close()
