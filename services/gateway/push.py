"""The push API: any LLM's tokens enter ``uq:tokens`` and flow through the same auditor and alerter.

A push session lives in one Redis hash (``uq:push:<session_id>``: model, provider, next seq, state),
so any gateway replica can take any request; ``HINCRBY`` hands out seq numbers without races.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from services.auditor.metrics.stats import LOGPROB_FLOOR, MASS_TOLERANCE
from services.common.backlog import room
from services.common.bus import Bus
from services.common.codec import logits_bytes
from services.common.contracts import SessionEvent, TokenEvent
from services.common.leases import Leases, push_idle_reason, push_owner
from services.gateway.errors import BadRequestError, ConflictError, NotFoundError, UnavailableError, invalid
from services.gateway.history import HistoryService
from services.gateway.jobs import new_session_id, session_urls
from services.gateway.models import (
    MAX_LOGPROB,
    PushFinishRequest,
    PushFinishResponse,
    PushStartRequest,
    PushStartResponse,
    PushToken,
    PushTokensResponse,
)
from services.gateway.settings import GatewaySettings

#: How far the token's logprob may differ from the one its own listed alternative gives (rounding).
LOGPROB_TOLERANCE = 1e-3


#: The push API's entries, validated in one call per request (pydantic-core builds them all in Rust).
TOKEN_EVENTS: TypeAdapter[list[TokenEvent]] = TypeAdapter(list[TokenEvent])


def token_events(session_id: str, model: str, provider: str, tokens: list[PushToken]) -> list[TokenEvent]:
    """The ``uq:tokens`` entries for one request's tokens, with seq 0 (the seqs are handed out when they
    are published); BadRequestError naming the field (``tokens.<i>.…``) when one is unusable.

    A logprob a little over 0 (rounding, up to ``MAX_LOGPROB``) is taken as 0; one at or below
    ``LOGPROB_FLOOR`` passes as it is ("below the floor": the auditor makes it p = 0, surprisal
    unknown). A token that contradicts itself is refused: its logprob differs from the one its own
    entry in ``top_logprobs`` lists, an alternative is listed twice, or the listed mass plus its own
    (when it is not listed) is over 1 + ``MASS_TOLERANCE``.
    """
    rows = [_fields(tok, f"tokens.{i}") for i, tok in enumerate(tokens)]
    for row in rows:
        row.update(session_id=session_id, seq=0, model=model, provider=provider)
    try:
        return TOKEN_EVENTS.validate_python(rows)
    except ValidationError as exc:
        raise invalid(exc.errors(), under="tokens", error=BadRequestError) from None


def _fields(tok: PushToken, param: str) -> dict[str, Any]:
    """The checks of one token, and the TokenEvent fields it gives (its alternatives as plain dicts)."""
    text = tok.text if tok.text is not None else tok.token
    assert text is not None  # the model's validator guarantees it
    logprob = tok.logprob
    if logprob is None and tok.probability is not None:
        logprob = math.log(tok.probability)
    if logprob is not None:
        logprob = min(logprob, 0.0)
    top_k, mass = _top_k(tok, param)
    if top_k and logprob is not None:
        _check_consistent(text, logprob, tok, mass, param)
    row: dict[str, Any] = {"token_id": tok.token_id, "text": text, "logprob": logprob, "top_k": top_k}
    if tok.logits is not None:
        logits = _logits(tok.logits, f"{param}.logits")
        vocab = int(logits.shape[0])
        if tok.token_id is None:
            raise BadRequestError("full logits need the emitted token's 'token_id'", param=f"{param}.token_id")
        if tok.token_id >= vocab:
            raise BadRequestError(
                f"token_id {tok.token_id} is outside the {vocab} logits given", param=f"{param}.token_id"
            )
        if logprob is None:
            row["logprob"] = min(float(_log_softmax(logits)[tok.token_id]), 0.0)
        # no alternatives listed: the auditor takes its display top-k (UQ_DISPLAY_TOP_K) from the logits
        row.update(distribution="full", vocab_size=vocab, logits_dtype="float16", logits=logits_bytes(logits))
    elif top_k:
        row["distribution"] = "top_k"
    elif logprob is not None:
        row["distribution"] = "prob_only"
    else:
        row["distribution"] = "none"
    return row


def _top_k(tok: PushToken, param: str) -> tuple[list[dict[str, Any]], float]:
    """The alternatives, most likely first, and their probability mass."""
    raw = tok.top_logprobs
    if not raw:  # [] or absent: no alternatives known
        return [], 0.0
    listed = isinstance(raw, list)
    pairs = list(raw.items()) if isinstance(raw, dict) else [(t.token, t.logprob) for t in raw]
    where = f"{param}.top_logprobs"
    if len(pairs) > 1_000:
        raise BadRequestError(f"{len(pairs)} top_logprobs; at most 1000", param=where)
    for i, (text, logprob) in enumerate(pairs):
        if not -math.inf < logprob <= MAX_LOGPROB or len(text) > 1_024:  # NaN fails the comparison too
            raise BadRequestError(
                f"top_logprobs entry {text[:40]!r}: logprob must be a finite number <= 0 (-9999 for 'below the "
                "floor') and the text at most 1024 characters",
                param=f"{where}.{i}.logprob" if listed else where,
            )
    if isinstance(raw, list) and len({text for text, _ in pairs}) < len(pairs):  # the same text twice: same bytes?
        seen: dict[tuple[str, tuple[int, ...] | None], int] = {}
        for i, alt in enumerate(raw):
            first = seen.setdefault((alt.token, tuple(alt.bytes) if alt.bytes is not None else None), i)
            if first != i:
                raise BadRequestError(
                    f"top_logprobs.{i} lists {alt.token[:40]!r} again (as top_logprobs.{first}): each alternative once",
                    param=f"{where}.{i}.token",
                )
    clamped = [logprob if logprob < 0.0 else 0.0 for _, logprob in pairs]
    mass = math.fsum([math.exp(logprob) for logprob in clamped])
    if mass > 1.0 + MASS_TOLERANCE:
        raise BadRequestError(
            f"top_logprobs' probabilities sum to {mass:.4f} > 1: they are not log-probabilities of one "
            "distribution (natural-log probabilities of the most likely tokens at this position)",
            param=where,
        )
    alternatives = [{"text": text, "logprob": logprob} for (text, _), logprob in zip(pairs, clamped, strict=True)]
    alternatives.sort(key=_by_logprob, reverse=True)  # stable: equal ones keep the order they came in
    return alternatives, mass


def _by_logprob(alternative: dict[str, Any]) -> float:
    logprob: float = alternative["logprob"]
    return logprob


def _check_consistent(text: str, logprob: float, tok: PushToken, mass: float, param: str) -> None:
    """The emitted token's logprob against its own listed alternative, or the listed ``mass`` beside it."""
    raw = tok.top_logprobs
    assert raw
    if isinstance(raw, dict):
        own = [(f"top_logprobs[{text[:40]!r}]", raw[text])] if text in raw else []
    else:  # the same text twice (different bytes) is two tokens: either may be the emitted one
        own = [(f"top_logprobs.{i}", alt.logprob) for i, alt in enumerate(raw) if alt.token == text]
    if own:
        if not any(_same_logprob(logprob, min(lp, 0.0)) for _, lp in own):
            place, lp = own[0]
            raise BadRequestError(
                f"logprob {logprob:g} contradicts {place} = {min(lp, 0.0):g}, the same token {text[:40]!r}; "
                f"they may differ by rounding ({LOGPROB_TOLERANCE:g}) only",
                param=f"{param}.logprob",
            )
        return
    total = mass + math.exp(logprob)
    if total > 1.0 + MASS_TOLERANCE:
        raise BadRequestError(
            f"the token {text[:40]!r} is not in top_logprobs, yet its probability {math.exp(logprob):.4f} plus "
            f"theirs ({mass:.4f}) is {total:.4f} > 1: the listed and the unlisted mass cannot both be right",
            param=f"{param}.logprob",
        )


def _same_logprob(a: float, b: float) -> bool:
    """Equal up to rounding, or both below the floor."""
    return abs(a - b) <= LOGPROB_TOLERANCE or (a <= LOGPROB_FLOOR and b <= LOGPROB_FLOOR)


def _logits(raw: list[float] | str, param: str) -> np.ndarray[Any, np.dtype[np.float32]]:
    if isinstance(raw, str):
        try:
            blob = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError("logits: not valid base64", param=param) from None
        if len(blob) % 2:
            raise BadRequestError(f"logits: {len(blob)} bytes is not a whole number of float16 values", param=param)
        values = np.frombuffer(blob, dtype="<f2").astype(np.float32)
    else:
        values = np.asarray(raw, dtype=np.float32)
    if not 2 <= values.shape[0] <= 1_000_000:
        raise BadRequestError(f"logits: {values.shape[0]} values; give between 2 and 1,000,000", param=param)
    if not np.isfinite(values).all() or np.abs(values).max() > 65_504:
        raise BadRequestError("logits must be finite numbers within float16 range (|x| <= 65504)", param=param)
    return values


def _log_softmax(logits: np.ndarray[Any, np.dtype[np.float32]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    x = logits.astype(np.float16).astype(np.float64)  # what the auditor will see
    x -= x.max()
    result: np.ndarray[Any, np.dtype[np.float64]] = x - np.log(np.exp(x).sum())
    return result


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# KEYS: leases zset, push hash, claim key; ARGV: lease expiry (ms), session, n, hash TTL (s), claim TTL (s)
# → the first of n new seqs, or -1 when the lease is gone (finished, or ended by the sweeper). One step, so
# that a finish counts every seq handed out; it also renews the hash's and the claim's TTLs.
_TAKE_SEQS = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local first = redis.call('HINCRBY', KEYS[2], 'next_seq', ARGV[3]) - tonumber(ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return first
"""

#: How long one reading of the token stream's backlog admits pushes before it is read again.
ADMISSION_REFRESH_S = 0.05


class Admission:
    """The backlog check of the push API, shared by the gateway's concurrent pushes.

    Reading the backlog (``XINFO GROUPS``) for every request, under one lock so that concurrent
    pushes cannot all pass the same reading, serialised every push of the gateway behind a Redis
    round trip. Instead one reading is a budget that pushes draw from under the lock (local
    arithmetic), read again after ``ADMISSION_REFRESH_S`` or when a push does not fit in what is left.
    Several gateways each draw from their own reading: between readings they may together admit up
    to one refresh interval's pushes more than the room, which the retention's slack (the share of
    ``UQ_MAXLEN_TOKENS`` left out of the budget, ``UQ_PUSH_BACKLOG_SHARE``) absorbs.
    """

    def __init__(self, bus: Bus, settings: GatewaySettings) -> None:
        self.bus = bus
        self.settings = settings
        self._partitions = [_Budget() for _ in bus.partitions]  # each partition's stream has its own retention
        self.lock = asyncio.Lock()

    async def admit(self, n: int, partition: int = 0) -> int:
        """Reserve room for ``n`` entries on ``partition``: -1 when admitted, else the room there is (refused)."""
        b = self._partitions[partition]
        async with self.lock:
            now = time.monotonic()
            if n > b.budget or now - b.read_at > ADMISSION_REFRESH_S:
                s = self.settings
                free = await room(self.bus, "tokens", s.token_group, s.push_backlog_share, partition)
                b.budget, b.read_at = free - b.in_flight, now
            if n > b.budget:
                return max(b.budget, 0)
            b.budget -= n
            b.in_flight += n
            return -1

    def expire(self) -> None:
        """Read the backlog again at the next admission (tests)."""
        for b in self._partitions:
            b.read_at = -math.inf

    def published(self, n: int, partition: int = 0) -> None:
        """``n`` admitted entries are on the stream (or never will be): the next reading counts them."""
        self._partitions[partition].in_flight -= n


@dataclass
class _Budget:
    budget: int = 0
    read_at: float = -math.inf
    in_flight: int = 0  # admitted, not yet published: a fresh reading does not count them yet


# KEYS: leases zset, lease owners, push hash; ARGV: session, status → the session's token count, or -1 when
# the lease was gone: of a finish, a second finish and the sweeper exactly one ends the session.
_END = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return -1 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'state', ARGV[2])
return tonumber(redis.call('HGET', KEYS[3], 'next_seq') or '0')
"""


class PushService:
    """Push sessions: start (claiming the id), push tokens, finish; each guarded by the session's lease.

    An id is claimed once: ``SET NX`` on ``uq:push-claim:<id>`` makes one of two concurrent starts
    win, and the claim outlives the session's hash by ``UQ_DEDUPE_TTL_S`` (as long as the auditor
    remembers the seqs it processed, which would silently drop a second session's tokens); an id
    the live view or the audit trail knows (a generated session, a recorded one) is refused too.
    The session's lease (services/common/leases.py) is renewed by every push and released by
    finish; the sweeper ends a session whose producer went quiet for ``UQ_PUSH_IDLE_TIMEOUT_S``.
    """

    def __init__(self, bus: Bus, settings: GatewaySettings, history: HistoryService) -> None:
        self.bus = bus
        self.settings = settings
        self.history = history
        self.live = history.live
        self.leases = Leases(bus)
        self._take_seqs = bus.redis.register_script(_TAKE_SEQS)
        self._end = bus.redis.register_script(_END)
        self._admission = Admission(bus, settings)
        # one session's pushes publish in the order their seqs were handed out; other sessions' do not wait
        self._publishing: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _key(self, session_id: str) -> str:
        return self.bus.session_key(f"push:{session_id}", session_id)

    def _claim_key(self, session_id: str) -> str:
        return self.bus.session_key(f"push-claim:{session_id}", session_id)

    @property
    def _claim_ttl_s(self) -> int:
        return self.settings.push_session_ttl_s + self.settings.dedupe_ttl_s

    async def start(self, req: PushStartRequest) -> PushStartResponse:
        if req.prompt is not None and len(req.prompt) > self.settings.max_prompt_chars:
            raise BadRequestError(
                f"the prompt has {len(req.prompt)} characters; at most {self.settings.max_prompt_chars}", param="prompt"
            )
        sid = req.session_id or new_session_id()
        if req.session_id is not None:
            known = await self.history.known_status(sid)
            if known is None and await self.bus.redis.exists(self._key(sid)):
                known = "a push session"
            if known is not None:
                raise ConflictError(
                    f"session {sid!r} already exists ({known}); give another session_id, or none to get a fresh one",
                    param="session_id",
                )
        if not await self.bus.redis.set(self._claim_key(sid), b"1", nx=True, ex=self._claim_ttl_s):
            raise ConflictError(
                f"session {sid!r} already exists (a push session used this id); give another session_id, "
                "or none to get a fresh one",
                param="session_id",
            )
        key = self._key(sid)
        state = {"model": req.model, "provider": req.provider, "next_seq": 0, "state": "started"}
        pipe = self.bus.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=state)  # type: ignore[arg-type]
        pipe.expire(key, self.settings.push_session_ttl_s)
        await pipe.execute()
        await self.leases.hold(push_owner(self.settings.push_idle_timeout_s), self.settings.push_idle_timeout_s, sid)
        self.live.ensure(sid, model=req.model, provider=req.provider, prompt=req.prompt)
        common = {"session_id": sid, "model": req.model, "provider": req.provider, "prompt": req.prompt}
        await self.bus.publish_many(
            [
                ("sessions", SessionEvent(seq=0, status="queued", **common)),
                ("sessions", SessionEvent(seq=1, status="started", **common)),
            ]
        )
        return PushStartResponse(session_id=sid, status="started", urls=session_urls(sid))

    async def _state(self, session_id: str) -> dict[str, str]:
        raw = await self.bus.redis.hgetall(self._key(session_id))
        if not raw:
            raise NotFoundError(
                f"no push session {session_id!r} (never started, or idle longer than UQ_PUSH_SESSION_TTL_S)",
                param="session_id",
            )
        state = {_text(k): _text(v) for k, v in raw.items()}
        if state.get("state") != "started":
            raise self._ended(session_id, state.get("state"), state.get("reason"))
        return state

    def _ended(self, session_id: str, status: str | None, reason: str | None = None) -> ConflictError:
        if status in (None, "started"):  # its lease is gone but nobody finished it: the sweeper ended it
            status, reason = "failed", push_idle_reason(self.settings.push_idle_timeout_s)
        how = f"{status}: {reason}" if reason else f"({status})"
        return ConflictError(f"push session {session_id!r} has already ended {how}", param="session_id")

    async def _ended_now(self, session_id: str) -> ConflictError:
        """The 409 for a session whose lease is gone: finished, or ended by the sweeper (then marked so)."""
        key = self._key(session_id)
        status = await self.bus.redis.hget(key, "state")
        if status is not None and _text(status) == "started":
            reason = push_idle_reason(self.settings.push_idle_timeout_s)
            await self.bus.redis.hset(key, mapping={"state": "failed", "reason": reason})
        return self._ended(session_id, _text(status) if status is not None else None)

    async def push(self, session_id: str, tokens: list[PushToken]) -> PushTokensResponse:
        if len(tokens) > self.settings.push_max_batch:
            raise BadRequestError(
                f"{len(tokens)} tokens in one request; at most {self.settings.push_max_batch} (UQ_PUSH_MAX_BATCH)",
                param="tokens",
            )
        state = await self._state(session_id)
        model, provider = state["model"], state["provider"]
        events = token_events(session_id, model, provider, tokens)
        key = self._key(session_id)
        partition = self.settings.partition_of(session_id)
        free = await self._admission.admit(len(tokens), partition)
        if free >= 0:
            raise UnavailableError(
                f"the auditors are behind: {len(tokens)} more tokens would not fit in what the stream retains "
                f"unread (room for {free}; UQ_MAXLEN_TOKENS={self.bus.maxlen('tokens')} per partition); push them "
                "again later",
                retry_after_s=1,
            )
        lock = self._publishing.get(session_id)
        if lock is None:
            lock = self._publishing[session_id] = asyncio.Lock()
        try:
            return await self._publish(session_id, key, lock, events)
        finally:
            self._admission.published(len(events), partition)

    async def _publish(
        self, session_id: str, key: str, lock: asyncio.Lock, events: list[TokenEvent]
    ) -> PushTokensResponse:
        async with lock:
            # the lease renewed with the seqs: the sweeper cannot end the session for another idle timeout
            expiry = int((time.time() + self.settings.push_idle_timeout_s) * 1000)
            first = int(
                await self._take_seqs(
                    keys=[self.leases.zset(session_id), key, self._claim_key(session_id)],
                    args=[expiry, session_id, len(events), self.settings.push_session_ttl_s, self._claim_ttl_s],
                )
            )
            if first < 0:
                raise await self._ended_now(session_id)
            end = first + len(events)
            await self.bus.publish_many(
                ("tokens", e.model_copy(update={"seq": first + i})) for i, e in enumerate(events)
            )
        return PushTokensResponse(session_id=session_id, accepted=len(events), first_seq=first, last_seq=end - 1)

    async def finish(self, session_id: str, req: PushFinishRequest) -> PushFinishResponse:
        state = await self._state(session_id)
        key = self._key(session_id)
        keys = [self.leases.zset(session_id), self.leases.owners(session_id), key]
        tokens = int(await self._end(keys=keys, args=[session_id, req.status]))
        if tokens < 0:
            raise await self._ended_now(session_id)
        event = SessionEvent(
            session_id=session_id,
            seq=2,
            status=req.status,
            reason=req.reason,
            model=state["model"],
            provider=state["provider"],
            tokens=tokens,
        )
        await self.bus.publish("sessions", event)
        await self.bus.redis.expire(self._claim_key(session_id), self._claim_ttl_s)
        return PushFinishResponse(session_id=session_id, status=req.status, tokens=tokens)
