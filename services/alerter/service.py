"""The alerter's Redis side: two consumers (``uq:audits``, ``uq:sessions``), the session cache, persistence.

One loop, so that nothing races: read a batch of audits (blocking briefly), then a batch of lifecycle
entries (not blocking), then — every ``sweep_interval_ms`` — apply the reorder and end timeouts and
let idle sessions leave memory. That turn (:meth:`Alerter.step`) runs in the audits consumer's loop
(``Consumer.run``: retries with backoff through Redis outages; each consumer creates its vanished
group again). Everything a batch changes is committed at once by the bus: the
``uq:alerts`` entries, each touched session's state (a ``StateWrite`` of
``<prefix>alerter:state:<group>:<session_id>``, in the session's partition) and the acknowledgements,
in one Lua script. Outputs of a timeout (no entry to acknowledge) are committed with the state by the
same script (``Consumer.commit_outputs``). A session's state
is loaded lazily on its first entry after a restart; at start, sessions with a pending timeout are
loaded so that their timeouts still fire.

One ``Alerter`` serves one partition of the streams: per-session order needs all of a session's audits
in one process, and a session's entries are all in its partition. Replicas share the partitions
through ownership with expiry (services/alerter/ownership.py): each partition is served by exactly
one of them at a time, and its commits are fenced by the ownership (a former owner commits nothing).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from services.alerter import state
from services.alerter.builtin import threshold_policy
from services.alerter.engine import AlerterOutput, RulesEngine
from services.alerter.rules import Rule
from services.alerter.session import SessionState
from services.alerter.settings import AlerterSettings
from services.common.bus import Bus, Delivery, Fence, Output, StateWrite, is_nogroup
from services.common.contracts import AuditEvent, SessionEvent
from services.common.contracts.events import TERMINAL_STATUSES

_PENDING_SCAN = 1_000  # tokens pending in the auditors' group that caught_up() looks at (more: not caught up)
log = logging.getLogger(__name__)

ALERTS = "alerts"


class Alerter:
    """Turns ``uq:audits`` into ``uq:alerts`` with ``rules``; ``clock`` (wall seconds) is replaceable for tests."""

    def __init__(
        self,
        bus: Bus,
        settings: AlerterSettings,
        rules: Sequence[Rule],
        *,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
        partition: int = 0,
        fence: Fence | None = None,
    ) -> None:
        self.bus = bus
        self.partition = partition
        self.settings = settings
        self.engine = RulesEngine(rules, settings)
        self.clock = clock
        # No (session_id, seq) bitmap: the session state, committed with every acknowledgement, already
        # ignores an audit whose seq is done or buffered, and a second terminal entry (and saves two
        # round trips' worth of work per batch).
        # One partition's two streams (services/alerter/ownership.py runs one Alerter per owned partition);
        # with a fence, nothing is committed once another alerter owns the partition.
        consumer = functools.partial(
            bus.consumer, name=name, dedupe=False, partition=partition, fence=fence, reclaim_at_start=fence is not None
        )
        self.audits = consumer("audits", settings.audit_group, self._on_audits)
        self.lifecycle = consumer("sessions", settings.session_group, self._on_sessions)
        self.sessions: OrderedDict[str, SessionState] = OrderedDict()  # least recently used first
        self._waiting: set[str] = set()  # sessions with a reorder or end timeout pending
        self._done: set[str] = set()  # sessions summarised since the last release
        self._next_sweep = 0.0
        self._lagging = False  # the last read of audits was a full batch: more are waiting
        self._recover = False  # sessions waiting for a timeout must be reloaded from Redis
        self.alerts_published = 0

    # --- running --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the consumer groups and load the sessions whose timeouts are pending."""
        await self.audits.ensure_group()
        await self.lifecycle.ensure_group()
        await self.recover()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; the batch in hand is committed first."""
        await self.start()
        await self.audits.run(stop, cycle=self.step)

    async def step(self, block_ms: int | None = None) -> int:
        """One cycle: a batch of audits, a batch of lifecycle entries, timeouts. Returns entries taken.

        If anything fails, the in-memory sessions are dropped: they are reloaded from Redis, whose state
        is exactly as new as what was acknowledged, so a retried batch is neither lost nor repeated.
        """
        block = min(self.settings.block_ms, 250) if block_ms is None else block_ms
        try:
            if self._recover:
                await self.recover()
            n = await self.audits.step(block)
            self._lagging = n >= self.audits.batch_size
            n += await self.lifecycle.step(0)
            now = self.clock()
            if now >= self._next_sweep:
                self._next_sweep = now + self.settings.sweep_interval_ms / 1000
                await self.sweep(now)
            self._release(now)
        except BaseException:
            self.forget()
            raise
        return n

    def forget(self) -> None:
        """Drop every in-memory session: each reloads from Redis on its next entry, and those waiting for a
        timeout are recovered at the next step."""
        self._recover = True
        self.sessions.clear()
        self._waiting.clear()
        self._done.clear()

    def details(self) -> dict[str, Any]:
        """What the heartbeat shows."""
        return {
            "sessions_in_memory": len(self.sessions),
            "sessions_waiting": len(self._waiting),
            "audits_processed": self.audits.stats.processed,
            "alerts_published": self.alerts_published,
            "rules": [r.name for r in self.engine.rules],
            "thresholds": threshold_policy(self.settings),
            "rule_errors": dict(self.engine.rule_errors),
        }

    # --- handlers -------------------------------------------------------------------------------

    async def _on_audits(self, deliveries: Sequence[Delivery]) -> list[list[Output | StateWrite]]:
        try:
            return await self._audits(deliveries)
        except Exception:
            self.forget()  # half-applied: the bus retries entry by entry on states reloaded from Redis
            raise

    async def _audits(self, deliveries: Sequence[Delivery]) -> list[list[Output | StateWrite]]:
        await self._load(d.event.session_id for d in deliveries)
        now = self.clock()
        outcomes: list[list[Output | StateWrite]] = [[] for _ in deliveries]
        owner: dict[str, int] = {}  # session -> the delivery that carries its state write
        firsts: set[tuple[str, int]] = set()
        for i, d in enumerate(deliveries):
            audit = d.event
            if not isinstance(audit, AuditEvent):  # the codec guarantees it; keeps the types honest
                continue
            st = self.sessions[audit.session_id]
            self._emit(outcomes[i], self.engine.accept(st, audit, now))
            self._track(st)
            if (audit.session_id, audit.seq) not in firsts:  # a repeat within the batch is not committed
                firsts.add((audit.session_id, audit.seq))
                owner[audit.session_id] = i
        for sid, i in owner.items():
            outcomes[i].append(self._state_write(self.sessions[sid]))
        return outcomes

    async def _on_sessions(self, deliveries: Sequence[Delivery]) -> list[list[Output | StateWrite]]:
        try:
            return await self._sessions(deliveries)
        except Exception:
            self.forget()
            raise

    async def _sessions(self, deliveries: Sequence[Delivery]) -> list[list[Output | StateWrite]]:
        ends = [(i, d.event) for i, d in enumerate(deliveries) if isinstance(d.event, SessionEvent)]
        ends = [(i, e) for i, e in ends if e.status in TERMINAL_STATUSES]
        outcomes: list[list[Output | StateWrite]] = [[] for _ in deliveries]
        if not ends:
            return outcomes
        await self._load(e.session_id for _, e in ends)
        now = self.clock()
        for i, event in ends:
            st = self.sessions[event.session_id]
            self._emit(outcomes[i], self.engine.end(st, event.status, event.tokens, now, event.verification))
            self._track(st)
            outcomes[i].append(self._state_write(st))
        return outcomes

    def _emit(self, into: list[Output | StateWrite], events: list[AlerterOutput]) -> None:
        into.extend((ALERTS, e) for e in events)
        self.alerts_published += len(events)

    # --- state ----------------------------------------------------------------------------------

    def state_key(self, session_id: str) -> str:
        return self.bus.partition_key(f"alerter:state:{self.settings.audit_group}:{session_id}", self.partition)

    def _state_write(self, st: SessionState) -> StateWrite:
        return StateWrite(self.state_key(st.session_id), state.dump(st), self.settings.state_ttl_s * 1000)

    async def _load(self, session_ids: Iterable[str]) -> None:
        """Make every session of the batch present in memory: from the cache, from Redis, or new."""
        missing: list[str] = []
        for sid in dict.fromkeys(session_ids):
            if sid in self.sessions:
                self.sessions.move_to_end(sid)
            else:
                missing.append(sid)
        if not missing:
            return
        values = await self.bus.redis.mget([self.state_key(s) for s in missing])
        for sid, raw in zip(missing, values, strict=True):
            self._adopt(self._parse(sid, raw))

    def _parse(self, sid: str, raw: bytes | str | None) -> SessionState:
        if raw is None:
            return SessionState(sid)
        try:
            return state.load(sid, raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.error(
                "unreadable alerter state; starting the session afresh", extra={"session_id": sid, "error": str(exc)}
            )
            return SessionState(sid)

    def _adopt(self, st: SessionState) -> None:
        self.sessions[st.session_id] = st
        self._track(st)

    async def recover(self) -> None:
        """Load the persisted sessions that wait for a timeout (a reorder gap or missing audits at the end)."""
        self._recover = False
        prefix = self.state_key("")
        keys = [k async for k in self.bus.redis.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            for key, raw in zip(chunk, await self.bus.redis.mget(chunk), strict=True):
                sid = (key.decode() if isinstance(key, bytes) else str(key))[len(prefix) :]
                if raw is None or sid in self.sessions:
                    continue
                st = self._parse(sid, raw)
                if self.engine.waiting(st):
                    self._adopt(st)
        if self._waiting:
            log.info("recovered sessions waiting for a timeout", extra={"sessions": len(self._waiting)})

    async def caught_up(self) -> bool:
        """Whether a missing seq can be missing for real: every audit published so far has been read,
        none is held by another consumer (a dead alerter's unacknowledged batch, to be reclaimed),
        and no token in the auditors' group is on its way the long way round: pending for longer
        than the reorder timeout (an auditor died holding it) or delivered more than once (reclaimed
        from a dead auditor, and being audited now)."""
        if self._lagging:
            return False
        pipe = self.bus.redis.pipeline(transaction=False)
        pipe.xpending(self.bus.partition_key("audits", self.partition), self.settings.audit_group)
        tokens_key = self.bus.partition_key("tokens", self.partition)
        pipe.xpending_range(tokens_key, self.settings.token_group, min="-", max="+", count=_PENDING_SCAN)
        audits, tokens = await pipe.execute(raise_on_error=False)
        if isinstance(audits, Exception):
            raise audits
        if isinstance(tokens, ResponseError) and is_nogroup(tokens):
            tokens = []  # no auditor has ever read uq:tokens
        elif isinstance(tokens, Exception):
            raise tokens
        if int(audits["pending"]) or len(tokens) >= _PENDING_SCAN:
            return False
        limit = self.settings.reorder_timeout_ms
        return not any(t["times_delivered"] > 1 or t["time_since_delivered"] >= limit for t in tokens)

    async def sweep(self, now: float) -> None:
        """Apply reorder and end timeouts (only when caught up, so that a backlog or an entry still to be
        reclaimed is not taken for a lost audit); commit their outputs and the states in one MULTI/EXEC."""
        if not self._waiting or not await self.caught_up():
            return
        changed: list[tuple[SessionState, list[AlerterOutput]]] = []
        for sid in list(self._waiting):
            st = self.sessions.get(sid)
            if st is None:
                self._waiting.discard(sid)
                continue
            before = (st.next_seq, len(st.buffer), st.done)
            out = self.engine.tick(st, now)
            if out or before != (st.next_seq, len(st.buffer), st.done):
                changed.append((st, out))
            self._track(st)
        if not changed:
            return
        outputs: list[Output | StateWrite] = []
        for st, out in changed:
            outputs += [(ALERTS, e) for e in out]
            outputs.append(self._state_write(st))
        await self.audits.commit_outputs(outputs)
        self.alerts_published += sum(len(out) for _, out in changed)

    def _track(self, st: SessionState) -> None:
        """Keep the set of sessions with a pending timeout, and of finished ones, up to date."""
        if self.engine.waiting(st):
            self._waiting.add(st.session_id)
        else:
            self._waiting.discard(st.session_id)
            if st.done:
                self._done.add(st.session_id)

    def _release(self, now: float) -> None:
        """Sessions leave memory when done, idle for ``session_idle_s``, or beyond ``max_sessions``
        (least recently used first; an idle one with a timeout pending stays until it fires)."""
        for sid in self._done:
            self.sessions.pop(sid, None)
        self._done.clear()
        idle_before = now - self.settings.session_idle_s
        while self.sessions:
            sid, st = next(iter(self.sessions.items()))
            crowded = len(self.sessions) > self.settings.max_sessions
            if not crowded and (st.last_seen >= idle_before or sid in self._waiting):
                break
            del self.sessions[sid]
            self._waiting.discard(sid)
