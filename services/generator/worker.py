"""The job loop: take jobs from ``uq:jobs``, decode several at once, publish tokens and lifecycle.

Flow of one job
1. The consumer (group ``generators``, one entry per read, only while a slot is free) hands the job
   over; unless its cancel key is already set, "started" (seq 1) is committed together with the
   acknowledgement and the dedupe mark, so a second worker never runs the job again. Once that commit
   has succeeded the consumer's ``after_commit`` starts the job; a commit lost with the connection
   starts nothing, and the job stays pending to be taken again.
2. The job's task advances the engine's stream one step at a time on the worker's single compute
   thread. Every job keeps one step queued there, so the thread serves active jobs round-robin
   and a long job never holds a short one back; the next step is computed while the current one
   is published.
3. Each token is published with ``XADD`` pipelined with ``EXISTS <prefix>cancel:<session_id>``:
   a cancel set by the gateway stops the job before its next token.
4. Exactly one terminal entry (seq 2): finished (eos, max_tokens, stop), failed (a reason the
   user can act on) or cancelled.
5. While it runs, the job's session holds a lease (services/common/leases.py) that the worker
   renews every third of ``UQ_LEASE_TIMEOUT_S``; if the worker dies, a sweeper — every gateway and
   every other generator runs one — marks the session failed once the lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from services.common.answer import answer_text
from services.common.backoff import Backoff
from services.common.bus import Bus, Committed, Consumer, Delivery, Outcome, Output, StateWrite
from services.common.codec import encode
from services.common.contracts import JobRequest, SessionEvent, TokenEvent, Verification
from services.common.contracts.events import STATUS_SEQ, SessionStatus, prompt_text
from services.common.leases import Leases
from services.generator import verify
from services.generator.engine import Engine, Finished, GenerationRequest, Prefilling, Step, TokenStep
from services.generator.errors import GeneratorError
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings

log = logging.getLogger(__name__)

_END = object()


def generation_request(job: JobRequest, engine: Engine, settings: GeneratorSettings) -> GenerationRequest:
    """What an engine is asked to do for ``job`` (full logits when the job's or the worker's mode asks
    and the engine can)."""
    mode = job.logits_mode or settings.logits_mode
    return GenerationRequest(
        session_id=job.session_id,
        prompt=job.prompt,
        messages=job.messages,
        sampling=job.sampling,
        full_logits=mode == "full" and engine.full_logits,
        top_k_alternatives=settings.top_k_alternatives,
    )


def token_event(job: JobRequest, engine: Engine, step: TokenStep, seq: int) -> TokenEvent:
    """The ``uq:tokens`` entry for one step of ``job``."""
    full = step.logits is not None
    distribution = "full" if full else "top_k" if step.top_k else "prob_only" if step.logprob is not None else "none"
    return TokenEvent(
        session_id=job.session_id,
        seq=seq,
        token_id=step.token_id,
        text=step.text,
        logprob=step.logprob,
        distribution=distribution,
        top_k=step.top_k,
        vocab_size=step.vocab_size,
        logits_dtype="float16" if full else None,
        sampling=job.sampling,
        model=engine.display_name,
        provider=engine.provider,
        logits=step.logits,
        probe=step.probe,
        top_k_source=step.top_k_source,
    )


class Worker:
    """Runs jobs from ``uq:jobs`` on the engines of ``pool`` until stopped."""

    def __init__(self, settings: GeneratorSettings, bus: Bus, pool: EnginePool, *, name: str | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.pool = pool
        # One job per read: a worker takes a job only when it has a free slot, so others can take the rest.
        # One consumer per partition of uq:jobs, each in its own loop; a loop reads only while a slot is
        # free counting the loops reading at that moment, so the worker never takes more than its slots.
        self.consumers = bus.consumers(
            "jobs", settings.job_group, self._take, name=name, batch_size=1, after_commit=self._start_committed
        )
        self.consumer = self.consumers[0]
        self._reading = 0  # partition loops in a read now
        self._freed = asyncio.Event()  # a slot or a reader came free
        self.leases = Leases(bus)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator-compute")
        # engines that wait on the network (compute_bound = False) get a thread per running job
        self.io_executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrent_jobs, thread_name_prefix="generator-io"
        )
        self.active: dict[str, asyncio.Task[None]] = {}
        self._abort = asyncio.Event()
        self.details: dict[str, Any] = {"active_jobs": 0, "jobs": 0, "tokens": 0, "failed": 0, "cancelled": 0}

    async def run(self, stop: asyncio.Event) -> None:
        """Take and run jobs until ``stop`` is set, then let running jobs finish (within the grace time).

        The consumer's loop (services/common/bus.py) retries through Redis outages and creates a
        vanished group again; each of its turns is :meth:`_turn`.
        """
        keeper = asyncio.create_task(self._keep_leases(), name="generator-leases")
        try:
            async with asyncio.TaskGroup() as group:
                for c in self.consumers:
                    group.create_task(
                        c.run(stop, cycle=functools.partial(self._turn, stop, c)), name=f"jobs-{c.partition}"
                    )
        finally:
            await self._shutdown()
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _turn(self, stop: asyncio.Event, consumer: Consumer) -> None:
        """Wait for a free slot, or take at most one job from ``consumer``'s partition and commit it (its
        task starts after the commit, in :meth:`_start_committed`, so the next turn counts it)."""
        if len(self.active) + self._reading >= self.settings.max_concurrent_jobs:
            await self._wait_for_slot(stop)
            return
        self._reading += 1
        try:
            await consumer.step()
        finally:
            self._reading -= 1
            self._freed.set()

    async def _keep_leases(self) -> None:
        """Renew the leases of running jobs and sweep the expired leases of dead producers."""
        timeout = self.settings.lease_timeout_s
        while True:
            await asyncio.sleep(timeout / 3)
            try:
                await self.leases.hold(self.consumer.name, timeout, *self.active)
                swept = await self.leases.sweep(timeout)
                if swept:
                    log.warning("marked sessions of a dead producer failed", extra={"sessions": swept})
            except (RedisError, OSError) as exc:
                log.warning("could not renew leases", extra={"error": str(exc)})

    async def _wait_for_slot(self, stop: asyncio.Event) -> None:
        """Until a job ends, another partition's read ends, or ``stop``."""
        self._freed.clear()
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self._freed.wait())]
        try:
            await asyncio.wait([*waits, *self.active.values()], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _start(self, job: JobRequest) -> None:
        task = asyncio.create_task(self._run_job(job), name=f"job-{job.session_id}")
        self.active[job.session_id] = task

        def done(_task: asyncio.Task[None]) -> None:
            self.active.pop(job.session_id, None)
            self.details["active_jobs"] = len(self.active)

        task.add_done_callback(done)

    async def _shutdown(self) -> None:
        if self.active:
            log.info("waiting for running jobs", extra={"jobs": len(self.active)})
            _done, pending = await asyncio.wait(list(self.active.values()), timeout=self.settings.shutdown_grace_s)
            if pending:
                self._abort.set()  # each job fails itself after its current step
                await asyncio.wait(pending)
        self.executor.shutdown(wait=True)
        self.io_executor.shutdown(wait=True)

    # --- taking jobs (inside the consumer's commit) ------------------------------------------------

    async def _take(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """The consumer's handler: "started" for each job (with its lease held), or "cancelled" for a job
        cancelled before it started."""
        outcomes: list[Outcome] = []
        for delivery in deliveries:
            job = delivery.event
            assert isinstance(job, JobRequest)
            if await self.bus.redis.exists(self.bus.cancel_key(job.session_id)):
                outcomes.append([("sessions", self._session(job, "cancelled", reason="cancelled before it started"))])
                self.details["cancelled"] += 1
                continue
            # the lease exists before "started" is committed, so a crash in between cannot leave it open
            await self.leases.hold(self.consumer.name, self.settings.lease_timeout_s, job.session_id)
            outcomes.append([("sessions", self._session(job, "started", prompt=prompt_text(job.prompt, job.messages)))])
        return outcomes

    def _start_committed(self, committed: Sequence[Committed]) -> None:
        """The consumer's ``after_commit``: start each job whose "started" is now committed."""
        for delivery, outputs in committed:
            job = delivery.event
            assert isinstance(job, JobRequest)
            if any(_starts(output) for output in outputs):
                self._start(job)
        self.details["active_jobs"] = len(self.active)

    # --- running one job ---------------------------------------------------------------------------

    async def _run_job(self, job: JobRequest) -> None:
        self.details["jobs"] += 1
        progress = _Progress()
        status: SessionStatus = "failed"
        reason = "internal error"
        model = job.model
        verification: Verification | None = None
        try:
            async with self.pool.use(job.model) as engine:
                model = engine.display_name
                status, reason = await self._decode(job, engine, progress)
                if status == "finished" and job.verify:
                    verification = await self._verify(job, engine, progress)
        except GeneratorError as exc:
            status, reason = "failed", str(exc)
        except RedisError as exc:
            log.warning("job lost its connection to Redis", extra={"session_id": job.session_id, "error": str(exc)})
            status, reason = "failed", f"the generator lost its connection to Redis mid-job ({exc}); submit it again"
        except Exception as exc:
            log.exception("job failed", extra={"session_id": job.session_id})
            status, reason = "failed", f"internal error in the generator: {type(exc).__name__}: {exc}"
        if status == "failed":
            self.details["failed"] += 1
            log.info("job failed", extra={"session_id": job.session_id, "reason": reason})
        elif status == "cancelled":
            self.details["cancelled"] += 1
        if status != "finished":
            verification = None
        end = self._session(
            job,
            status,
            reason=reason,
            tokens=progress.tokens,
            prompt_tokens=progress.prompt_tokens,
            model=model,
            verification=verification,
        )
        await self._publish_terminal(end)
        with contextlib.suppress(RedisError, OSError):
            await self.leases.release(job.session_id)

    async def _decode(self, job: JobRequest, engine: Engine, progress: _Progress) -> tuple[SessionStatus, str]:
        """Stream the job, counting published tokens in ``progress``; returns (status, reason)."""
        request = generation_request(job, engine, self.settings)
        key = self.bus.cancel_key(job.session_id)
        if await self.bus.redis.exists(key):
            return "cancelled", "cancelled by request"
        loop = asyncio.get_running_loop()
        executor = self._executor(engine)
        steps = engine.stream(request)
        pending = loop.run_in_executor(executor, _next, steps)
        try:
            while True:
                step = await pending
                if step is _END:
                    return "finished", "eos"
                if isinstance(step, Finished):
                    progress.prompt_tokens = step.prompt_tokens
                    return "finished", step.reason
                if self._abort.is_set():
                    return "failed", "the generator was stopped before this job finished; submit it again"
                if isinstance(step, Prefilling):
                    pending = loop.run_in_executor(executor, _next, steps)
                    continue
                assert isinstance(step, TokenStep)
                pending = loop.run_in_executor(executor, _next, steps)  # next step while this one is published
                cancelled = await self._publish_token(job, engine, step, progress.tokens, key)
                progress.tokens += 1
                progress.texts.append(step.text)
                self.details["tokens"] += 1
                if cancelled:
                    return "cancelled", "cancelled by request"
        finally:
            with contextlib.suppress(Exception):
                await pending  # a step in flight finishes before the stream is closed
            await loop.run_in_executor(executor, _close, steps)

    def _executor(self, engine: Engine) -> ThreadPoolExecutor:
        """Where ``engine``'s steps run: the one compute thread, or a thread per job for network-bound engines."""
        return self.executor if engine.compute_bound else self.io_executor

    async def _verify(self, job: JobRequest, engine: Engine, progress: _Progress) -> Verification | None:
        """The job's verification (services/generator/verify.py), drawn on the compute thread in one
        go (one batched decode on the transformers engine); None when the session was cancelled first."""
        if await self.bus.redis.exists(self.bus.cancel_key(job.session_id)):
            return None
        request = generation_request(job, engine, self.settings)
        answer, prompt = answer_text(progress.texts), prompt_text(job.prompt, job.messages) or ""

        def run() -> Verification:
            return verify.verify(engine, request, job.verify, answer, prompt, self.settings)

        return await asyncio.get_running_loop().run_in_executor(self._executor(engine), run)

    async def _publish_token(self, job: JobRequest, engine: Engine, step: TokenStep, seq: int, key: str) -> bool:
        """XADD the token and read the cancel key in one round trip; True when cancelled."""
        event = token_event(job, engine, step, seq)
        pipe = self.bus.redis.pipeline(transaction=False)
        fields: Any = encode(event)
        pipe.xadd(
            self.bus.session_key("tokens", job.session_id), fields, maxlen=self.bus.maxlen("tokens"), approximate=True
        )
        pipe.exists(key)
        _entry, cancelled = await pipe.execute()
        return bool(cancelled)

    async def _publish_terminal(self, event: SessionEvent) -> None:
        backoff = Backoff(first=0.2)
        for attempt in range(5):
            try:
                await self.bus.publish("sessions", event)
                return
            except RedisError as exc:
                log.warning("could not publish session end", extra={"attempt": attempt + 1, "error": str(exc)})
                await backoff.sleep()
        log.error("session end lost", extra={"session_id": event.session_id, "status": event.status})

    def _session(self, job: JobRequest, status: SessionStatus, **fields: Any) -> SessionEvent:
        fields.setdefault("model", self.pool.display_name(job.model))
        return SessionEvent(
            session_id=job.session_id,
            seq=STATUS_SEQ[status],
            status=status,
            provider=self.pool.engine_cls.provider,
            **fields,
        )


@dataclass
class _Progress:
    tokens: int = 0
    prompt_tokens: int | None = None
    texts: list[str] = field(default_factory=list)


def _starts(output: Output | StateWrite) -> bool:
    """Whether a committed output is a session's "started" entry."""
    return isinstance(output, tuple) and isinstance(output[1], SessionEvent) and output[1].status == "started"


def _next(steps: Iterator[Step]) -> object:
    return next(steps, _END)


def _close(steps: Iterator[Step]) -> None:
    close = getattr(steps, "close", None)
    if close is not None:
        close()
