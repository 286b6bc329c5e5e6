"""The Redis Streams bus: publishing with bounded retention, and consumer groups done right.

A :class:`Consumer` reads one stream in one consumer group, in batches, and hands the decoded
entries to a batch handler. For each entry the handler returns the entries to publish (or a
:class:`DeadLetter`); the consumer then, in one Lua script — atomically —

1. marks ``(session_id, seq)`` as processed for its group (a bitmap per session, ``SETBIT``),
2. publishes the outputs only if it was not already marked (a redelivered entry yields no second output),
3. acknowledges the entries (``XACK``).

So an output appears exactly once even when a consumer dies between reading and acknowledging and
another one reclaims the entry (``XAUTOCLAIM`` after ``claim_idle_ms``). Entries that cannot be
decoded, or whose handler fails ``max_deliveries`` times, go to the dead-letter stream (``uq:dead``)
with the reason, and the consumer carries on. Reads are bounded (``batch_size``), so a consumer that
is slower than its producer holds at most two batches in memory (one read ahead, see
:meth:`Consumer.step`); the stream itself is bounded by
``MAXLEN ~`` (see docs/streams.md, "Retention").

:meth:`Consumer.run` is the one consumer loop of the services: it retries through Redis outages with
exponential backoff (services/common/backoff.py), and :meth:`Consumer.step` creates a vanished group
again (``NOGROUP``). A service that must act once a batch is committed (the generator starts the jobs
it took) passes ``after_commit``; one that does more per turn than read one stream (the generator
waits for a free slot, the alerter reads two streams and applies timeouts) passes its own ``cycle``
to :meth:`Consumer.run`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, TimeoutError

from services.common.backoff import Backoff
from services.common.codec import decode, encode
from services.common.contracts import Event, now_ns
from services.common.errors import EntryError
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)

DEAD = "dead"
_COMMIT_ERRORS = (RedisConnectionError, TimeoutError, OSError, ResponseError)
_DEAD_ORIGINAL_LIMIT = 1 << 20  # bytes of the original entry kept in a dead letter


@dataclass(frozen=True, slots=True)
class Delivery:
    """One decoded entry handed to a handler."""

    entry_id: bytes
    event: Event


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A handler's verdict that an entry cannot be processed; it goes to ``uq:dead`` with the reason."""

    reason: str


@dataclass(frozen=True, slots=True)
class StateWrite:
    """``SET key value PX ttl_ms`` committed atomically with an entry's outputs and acknowledgement.

    For stateful consumers (the alerter): state saved this way is exactly as new as the
    acknowledged entries, so a restarted consumer neither loses nor repeats work. ``key`` is the
    full Redis key (use ``Bus.key``).
    """

    key: str
    value: bytes
    ttl_ms: int


Output: TypeAlias = tuple[str, Event]  # (short stream name, event)
Outcome: TypeAlias = Sequence[Output | StateWrite] | DeadLetter
BatchHandler: TypeAlias = Callable[[Sequence[Delivery]], Awaitable[Sequence[Outcome]]]
Committed: TypeAlias = tuple[Delivery, Sequence[Output | StateWrite]]  # a handled entry and what was committed for it
AfterCommit: TypeAlias = Callable[[Sequence[Committed]], None]

# KEYS: the source stream, then every other key the commit touches (on Redis Cluster all of them are in
#       the source partition's slot: see CommonSettings.partition_key).
# ARGV: group, dedupe TTL (s), fence key index (0: none), fence token, n_entries, then per entry:
#       id, dedupe key index (0: none), seq, n_outputs, then per output:
#       key index, maxlen, n_fields, field1, value1, ...   → XADD KEYS[index] MAXLEN ~ maxlen * fields
#       or -(key index), ttl_ms, 0, value                  → SET KEYS[index] value PX ttl_ms (a state write)
#       (an entry whose id is '' is only outputs: Consumer.commit_outputs)
# With a fence, nothing happens unless GET KEYS[fence] is the token (the consumer still owns its
# partition); the script then answers -1. Otherwise it answers how many entries were marked already.
_COMMIT = """
local group, ttl = ARGV[1], tonumber(ARGV[2])
local fence = tonumber(ARGV[3])
if fence > 0 and redis.call('GET', KEYS[fence]) ~= ARGV[4] then return -1 end
local n = tonumber(ARGV[5])
local i = 6
local duplicates = 0
local ids = {}
local expiring = {}
for e = 1, n do
  local id, dkey, seq, nout = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  local fresh = true
  if dkey > 0 then
    fresh = redis.call('SETBIT', KEYS[dkey], seq, 1) == 0
    if not fresh then duplicates = duplicates + 1 end
    if not expiring[dkey] then
      redis.call('EXPIRE', KEYS[dkey], ttl)
      expiring[dkey] = true
    end
  end
  for o = 1, nout do
    local k, limit, nf = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
    i = i + 3
    if k < 0 then
      if fresh then redis.call('SET', KEYS[-k], ARGV[i], 'PX', limit) end
      i = i + 1
    else
      if fresh then
        local args = {'XADD', KEYS[k], 'MAXLEN', '~', limit, '*'}
        for f = 0, 2 * nf - 1 do args[#args + 1] = ARGV[i + f] end
        redis.call(unpack(args))
      end
      i = i + 2 * nf
    end
  end
  if id ~= '' then ids[#ids + 1] = id end
end
if #ids > 0 then redis.call('XACK', KEYS[1], group, unpack(ids)) end
return duplicates
"""


class FencedError(Exception):
    """A fenced consumer's commit was refused: its partition has another owner now. Nothing of the
    batch was written or acknowledged; the entries stay pending for the new owner."""


@dataclass(frozen=True, slots=True)
class Fence:
    """Commit only while ``GET key`` is ``token`` (see services/alerter/ownership.py)."""

    key: str
    token: str


class _Keys:
    """The KEYS of one commit: each key once, addressed by its 1-based index."""

    def __init__(self, source: str) -> None:
        self.keys = [source]
        self._index = {source: 1}

    def __call__(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return index


class Bus:
    """Names, partitions, retention and publishing for the streams of one deployment (one prefix).

    The per-session streams are split into ``settings.partitions`` partitions (docs/streams.md,
    "Partitions"): a session's entries, marks and consumer state are all in the partition of its id.
    """

    def __init__(self, redis: Redis, settings: CommonSettings) -> None:
        self.redis = redis
        self.settings = settings

    @property
    def partitions(self) -> range:
        return range(self.settings.partitions)

    def key(self, name: str) -> str:
        """Full Redis key of a key that is not partitioned (``key("leases")``); also of a stream when
        there is one partition on a single node (``key("tokens") == "uq:tokens"``)."""
        return self.settings.stream(name)

    def partition_key(self, name: str, partition: int) -> str:
        """Full Redis key of stream or key ``name`` in ``partition`` (``uq:{p3}:tokens``)."""
        return self.settings.partition_key(name, partition)

    def session_key(self, name: str, session_id: str) -> str:
        """Full Redis key of stream or key ``name`` in the partition of ``session_id``."""
        return self.settings.partition_key(name, self.settings.partition_of(session_id))

    def stream_keys(self, stream: str) -> list[str]:
        """A stream's key in every partition, in partition order."""
        return self.settings.partition_keys(stream)

    def cancel_key(self, session_id: str) -> str:
        """The control key that cancels a session: the gateway sets it (any value, with a TTL), the
        generator checks it between tokens (docs/streams.md, "Control keys")."""
        return self.key(f"cancel:{session_id}")

    def maxlen(self, stream: str) -> int:
        """Approximate retention (MAXLEN ~) of a stream, per partition; documented in docs/streams.md."""
        value = getattr(self.settings, f"maxlen_{stream}", None)
        return int(value) if value is not None else self.settings.maxlen_audits

    async def publish(self, stream: str, event: Event) -> bytes:
        """XADD one event to its session's partition, with bounded retention; returns the entry id."""
        fields: Any = encode(event)
        key = self.session_key(stream, event.session_id)
        entry_id = await self.redis.xadd(key, fields, maxlen=self.maxlen(stream), approximate=True)
        return bytes(entry_id) if not isinstance(entry_id, str) else entry_id.encode()

    async def publish_many(self, items: Iterable[Output]) -> list[bytes]:
        """XADD many events in one round trip (pipelined, not transactional; on Cluster one per node)."""
        pipe = self.redis.pipeline(transaction=False)
        for stream, event in items:
            fields: Any = encode(event)
            pipe.xadd(self.session_key(stream, event.session_id), fields, maxlen=self.maxlen(stream), approximate=True)
        result: list[bytes] = await pipe.execute()
        return result

    def consumer(
        self,
        stream: str,
        group: str,
        handler: BatchHandler,
        *,
        partition: int = 0,
        name: str | None = None,
        dedupe: bool = True,
        precheck: bool = True,
        start_id: str = "0",
        batch_size: int | None = None,
        after_commit: AfterCommit | None = None,
        fence: Fence | None = None,
        reclaim_at_start: bool = False,
    ) -> Consumer:
        """A :class:`Consumer` of one partition of ``stream`` on this bus; see there for the arguments."""
        return Consumer(
            self,
            stream,
            group,
            handler,
            partition=partition,
            name=name,
            dedupe=dedupe,
            precheck=precheck,
            start_id=start_id,
            batch_size=batch_size,
            after_commit=after_commit,
            fence=fence,
            reclaim_at_start=reclaim_at_start,
        )

    def consumers(self, stream: str, group: str, handler: BatchHandler, **kwargs: Any) -> list[Consumer]:
        """One :class:`Consumer` per partition of ``stream`` (the same arguments as :meth:`consumer`)."""
        return [self.consumer(stream, group, handler, partition=p, **kwargs) for p in self.partitions]


def total_stats(consumers: Sequence[Consumer]) -> dict[str, float]:
    """The consumers' :class:`ConsumerStats` summed (``last_batch_at``: the latest), for a heartbeat."""
    out: dict[str, float] = {}
    for c in consumers:
        for k, v in dataclasses.asdict(c.stats).items():
            out[k] = max(out.get(k, 0.0), v) if k == "last_batch_at" else out.get(k, 0) + v
    return out


async def run_all(consumers: Sequence[Consumer], stop: asyncio.Event) -> None:
    """Run every consumer's loop (:meth:`Consumer.run`) until ``stop``; one failing stops them all."""
    async with asyncio.TaskGroup() as group:
        for c in consumers:
            group.create_task(c.run(stop), name=f"consume-{c.stream}-{c.partition}")


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    handler_failures: int = 0
    batches: int = 0
    last_batch_at: float = field(default_factory=time.time)


class Consumer:
    """Reads ``stream`` in consumer group ``group`` and commits handler outputs exactly once.

    ``dedupe``: mark ``(session_id, seq)`` processed in the commit and publish nothing for an entry
    already marked. Off for consumers that dedupe by themselves (the alerter's state, the
    recorder's store). ``precheck``: also look the marks up before the handler runs, so that a
    redelivered entry is not handled a second time; a stateful handler needs it. A stateless one
    (the auditor) can skip that round trip: a redelivered entry is then computed again, and its
    outputs are still dropped by the commit. ``batch_size``: entries per read (default: the
    settings' ``batch_size``; the generator takes one job at a time). ``after_commit``: called with
    the handled entries and their outputs once their commit has succeeded (never for a failed commit,
    whose entries stay pending and come back; nor for duplicates or dead letters); it runs inside the
    loop, so it must not block. ``partition``: which partition of ``stream`` it reads (its outputs,
    marks and dead letters go to the same partition). ``fence``: commit only while the fence key holds
    the token (else :class:`FencedError`, nothing written); ``reclaim_at_start``: the first reclaim takes
    every pending entry, however recent (a new owner of a fenced partition: the old one cannot commit).
    """

    def __init__(
        self,
        bus: Bus,
        stream: str,
        group: str,
        handler: BatchHandler,
        *,
        partition: int = 0,
        name: str | None = None,
        dedupe: bool = True,
        precheck: bool = True,
        start_id: str = "0",
        batch_size: int | None = None,
        after_commit: AfterCommit | None = None,
        fence: Fence | None = None,
        reclaim_at_start: bool = False,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.partition = partition
        self.fence = fence
        self.group = group
        self.handler = handler
        self.name = name or bus.settings.instance_name()
        self.dedupe = dedupe
        self.precheck = precheck
        self.start_id = start_id
        self.batch_size = batch_size or bus.settings.batch_size
        self.after_commit = after_commit
        self.stats = ConsumerStats()
        self._key = bus.partition_key(stream, partition)
        self._script = bus.redis.register_script(_COMMIT)
        self._failures: dict[bytes, int] = {}
        self._retry: list[tuple[bytes, dict[bytes, bytes]]] = []
        self._read_own_pending = True
        self._own_after: bytes | str = "0"
        self._next_claim = 0.0
        self._claim_idle_ms = 0 if reclaim_at_start else bus.settings.claim_idle_ms  # first reclaim only
        self._in_flight: asyncio.Future[None] | None = None  # the commit running (run pipelines them)
        self._ahead: asyncio.Future[list[tuple[bytes, dict[bytes, bytes]]]] | None = None  # the next batch, read ahead
        self._read_new = False  # the batch in hand was read with ">" (not own pending, reclaimed or retried)

    @property
    def label(self) -> str:
        """The consumer's name, with its partition when there are several (heartbeat details)."""
        return f"{self.name}@p{self.partition}" if self.bus.settings.partitions > 1 else self.name

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if it does not exist yet."""
        try:
            await self.bus.redis.xgroup_create(self._key, self.group, id=self.start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, stop: asyncio.Event, cycle: Callable[[], Awaitable[object]] | None = None) -> None:
        """Process until ``stop`` is set; the batch in hand is finished and committed first.

        A lost, restarting or slow Redis is retried with exponential backoff (0.1 s doubling up to
        5 s, :class:`~services.common.backoff.Backoff`); a group that vanished meanwhile is created
        again by :meth:`step`. So the consumer outlives any outage and loses nothing: what it had not
        committed stays pending and is read again.

        Commits are pipelined: a batch's commit goes out and the next batch is read and handled
        while Redis runs it; the commit after waits for it, so commits stay in order. (Redis
        executes ~7 µs a token of commit script for the auditor: this way the process does not
        wait for it.) A commit lost with the connection leaves its entries pending, to be
        reclaimed, as an unpipelined one would.

        ``cycle`` replaces one turn of the loop (by default the pipelined ``step(wait=False)``) for a
        service that does more per turn: the generator waits for a free slot before it reads, the
        alerter steps its two consumers and applies its timeouts. Retries and backoff are the same.
        """
        await self.ensure_group()
        turn = cycle or (lambda: self.step(wait=False))
        backoff = Backoff()
        try:
            while not stop.is_set():
                try:
                    await turn()
                    backoff.reset()
                except (RedisConnectionError, TimeoutError, OSError) as exc:
                    log.warning("redis unavailable, retrying", extra={"error": str(exc), "stream": self.stream})
                    await backoff.sleep(stop)
        finally:
            ahead, self._ahead = self._ahead, None
            try:
                if ahead is not None and (entries := await ahead):
                    await self._process(entries)  # read already: finish it rather than leave it pending
            except _COMMIT_ERRORS as exc:
                log.warning("could not finish the batch read ahead", extra={"error": str(exc), "stream": self.stream})
            try:
                await self.flush()
            except _COMMIT_ERRORS as exc:
                log.warning(
                    "last commit failed; its entries stay pending and are read again",
                    extra={"error": str(exc), "stream": self.stream},
                )

    async def step(self, block_ms: int | None = None, *, wait: bool = True) -> int:
        """One cycle: reclaim or read a batch, handle it, commit. Returns the number of entries taken.

        A group that does not exist (any more) is created again, and the cycle takes nothing.

        ``wait=False`` returns with the commit still running (see :meth:`run`); :meth:`flush` waits for
        it. It also reads ahead: after a full batch of new entries, the next batch is read (without
        blocking) while this one is handled, so a handler that awaits (the auditor computes in a
        thread) overlaps with the transfer of the next batch.
        """
        try:
            entries = await self._take(self.bus.settings.block_ms if block_ms is None else block_ms)
        except ResponseError as exc:
            if not is_nogroup(exc):
                raise
            # The group vanished without a broken connection: Redis came back (empty) between two
            # reads, was flushed, or the group was destroyed. Create it again and carry on.
            log.warning("consumer group is gone, creating it again", extra={"stream": self.stream})
            await self.ensure_group()
            return 0
        if entries:
            if (
                not wait
                and self._read_new
                and len(entries) >= self.batch_size
                and not self._retry
                and time.monotonic() < self._next_claim  # a reclaim that is due goes first
            ):
                self._ahead = asyncio.ensure_future(self._take_new(0))
            await self._process(entries)
            self.stats.batches += 1
            self.stats.last_batch_at = time.time()
        if wait:
            await self.flush()
        return len(entries)

    async def flush(self) -> None:
        """Wait for the commit in flight, if any; raises what it raised."""
        task, self._in_flight = self._in_flight, None
        if task is not None:
            await task

    async def _send_commit(
        self, commit: Callable[[], Awaitable[Any]], *, script: bool, handled: Sequence[Committed] = ()
    ) -> None:
        """Start ``commit()`` once the previous commit has finished, so commits keep their order.

        A previous commit that failed is logged, and this one is sent anyway: the failed one's
        entries stay pending and are reclaimed, and this batch need not join them.
        """
        try:
            await self.flush()
        except _COMMIT_ERRORS as exc:
            log.warning(
                "commit failed; its entries stay pending and are reclaimed",
                extra={"error": str(exc), "stream": self.stream},
            )
        self._in_flight = asyncio.ensure_future(self._run_commit(commit(), script, handled))

    async def _run_commit(self, commit: Awaitable[Any], script: bool, handled: Sequence[Committed]) -> None:
        reply = await commit
        if script and int(reply) < 0:
            raise FencedError(f"{self.stream} partition {self.partition}: another consumer owns it now")
        if script:  # the commit script answers how many entries it found done already
            self.stats.duplicates += int(reply)
        if handled and self.after_commit is not None:
            self.after_commit(handled)

    # --- reading --------------------------------------------------------------------------------

    async def _take(self, block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        self._read_new = False
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            entries = await ahead
            if entries:
                self._read_new = True
                return entries
        if self._retry:
            entries, self._retry = self._retry, []
            await asyncio.sleep(0.05)
            return entries
        redis = self.bus.redis
        count = self.batch_size
        if self._read_own_pending:  # entries delivered to this name before a restart
            # from after the last one read: with commits pipelined, those may not be acknowledged yet
            own = await redis.xreadgroup(self.group, self.name, {self._key: self._own_after}, count=count)
            entries = _entries(own)
            if entries:
                self._own_after = entries[-1][0]
                return entries
            self._read_own_pending = False
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + max(self.bus.settings.claim_idle_ms / 2000, 0.5)
            claimed = await self._reclaim(count)
            if claimed:
                return claimed
        entries = await self._take_new(block_ms)
        self._read_new = True
        return entries

    async def _take_new(self, block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Entries never delivered to the group (``>``); ``block_ms`` 0: do not wait for any."""
        response = await self.bus.redis.xreadgroup(
            self.group, self.name, {self._key: ">"}, count=self.batch_size, block=block_ms or None
        )
        return _entries(response)

    async def _reclaim(self, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        redis = self.bus.redis
        result = await redis.xautoclaim(
            self._key, self.group, self.name, min_idle_time=self._claim_idle_ms, start_id="0-0", count=count
        )
        self._claim_idle_ms = self.bus.settings.claim_idle_ms
        claimed = [(eid, dict(fields)) for eid, fields in result[1] if fields is not None]
        if not claimed:
            return []
        self.stats.reclaimed += len(claimed)
        pipe = redis.pipeline(transaction=False)
        for eid, _ in claimed:
            pipe.xpending_range(self._key, self.group, min=eid, max=eid, count=1)
        counts = await pipe.execute()
        for (eid, _), info in zip(claimed, counts, strict=True):
            if info and int(info[0]["times_delivered"]) > self.bus.settings.max_deliveries:
                self._failures[eid] = self.bus.settings.max_deliveries  # dead-letter below
        log.info("reclaimed entries from a dead consumer", extra={"stream": self.stream, "count": len(claimed)})
        return claimed

    # --- processing -----------------------------------------------------------------------------

    async def _process(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        settings = self.bus.settings
        outcomes: dict[bytes, Outcome] = {}
        deliveries: list[Delivery] = []
        for eid, fields in entries:
            if self._failures.get(eid, 0) >= settings.max_deliveries:
                outcomes[eid] = DeadLetter(f"delivered more than {settings.max_deliveries} times without success")
                continue
            try:
                deliveries.append(Delivery(eid, decode(self.stream, fields)))
            except EntryError as exc:
                outcomes[eid] = DeadLetter(exc.reason)
        fresh = await self._drop_duplicates(deliveries, outcomes)
        failed: list[bytes] = []
        if fresh:
            outcomes.update(await self._handle(fresh, failed))
        raw = dict(entries)
        self._retry.extend((eid, raw[eid]) for eid in failed)
        if outcomes:
            events = {d.entry_id: d.event for d in fresh}  # duplicates found above: nothing to mark
            handled: list[Committed] = []
            for d in fresh:
                outcome = outcomes.get(d.entry_id)
                if outcome is not None and not isinstance(outcome, DeadLetter):
                    handled.append((d, outcome))
            await self._commit(
                [(eid, raw[eid], events.get(eid), outcome) for eid, outcome in outcomes.items()], handled
            )

    async def _drop_duplicates(self, deliveries: list[Delivery], outcomes: dict[bytes, Outcome]) -> list[Delivery]:
        if not (self.dedupe and self.precheck) or not deliveries:
            return deliveries
        await self.flush()  # the marks of the commit in flight count too
        # one BITFIELD_RO per session in the batch, not one GETBIT per entry
        by_key: dict[str, list[int]] = {}
        for i, d in enumerate(deliveries):
            by_key.setdefault(self._dedupe_key(d.event), []).append(i)
        pipe = self.bus.redis.pipeline(transaction=False)
        for key, rows in by_key.items():
            args: list[Any] = []
            for i in rows:
                args += ["GET", "u1", deliveries[i].event.seq]
            pipe.execute_command("BITFIELD_RO", key, *args)
        seen = [0] * len(deliveries)
        for rows, bits in zip(by_key.values(), await pipe.execute(), strict=True):
            for i, bit in zip(rows, bits, strict=True):
                seen[i] = bit
        fresh = []
        for d, bit in zip(deliveries, seen, strict=True):
            if bit:
                outcomes[d.entry_id] = ()
                self.stats.duplicates += 1
            else:
                fresh.append(d)
        return fresh

    async def _handle(self, deliveries: list[Delivery], failed: list[bytes]) -> dict[bytes, Outcome]:
        """Run the handler on the batch; if it raises, run it on each entry alone to isolate the culprit."""
        try:
            results = await self.handler(deliveries)
            if len(results) != len(deliveries):
                raise RuntimeError(f"handler returned {len(results)} outcomes for {len(deliveries)} entries")
            return {d.entry_id: r for d, r in zip(deliveries, results, strict=True)}
        except Exception as exc:
            if len(deliveries) == 1:
                return self._failed(deliveries[0], exc, failed)
        outcomes: dict[bytes, Outcome] = {}
        for d in deliveries:
            try:
                (single,) = await self.handler([d])
                outcomes[d.entry_id] = single
            except Exception as exc:
                outcomes.update(self._failed(d, exc, failed))
        return outcomes

    def _failed(self, d: Delivery, exc: Exception, failed: list[bytes]) -> dict[bytes, Outcome]:
        self.stats.handler_failures += 1
        n = self._failures.get(d.entry_id, 0) + 1
        self._failures[d.entry_id] = n
        log.error(
            "handler failed",
            exc_info=exc,
            extra={
                "stream": self.stream,
                "entry_id": d.entry_id.decode(),
                "attempt": n,
                "session_id": d.event.session_id,
                "seq": d.event.seq,
            },
        )
        if n >= self.bus.settings.max_deliveries:
            return {d.entry_id: DeadLetter(f"handler failed {n} times, last with {exc!r}")}
        failed.append(d.entry_id)
        return {}

    def _dedupe_key(self, event: Event) -> str:
        return self.bus.partition_key(f"seen:{self.stream}:{self.group}:{event.session_id}", self.partition)

    async def commit_outputs(self, outputs: Sequence[Output | StateWrite]) -> None:
        """Publish ``outputs`` in this consumer's partition atomically, with its fence, acknowledging
        nothing (the alerter's timeouts: alerts that no entry caused); after the commit in flight."""
        await self.flush()
        keys = _Keys(self._key)
        fence = (keys(self.fence.key), self.fence.token) if self.fence is not None else (0, "")
        args: list[Any] = [self.group, self.bus.settings.dedupe_ttl_s, *fence, 1, "", 0, 0, len(outputs)]
        for out in outputs:
            args += self._output_args(keys, out)
        if int(await self._script(keys=keys.keys, args=args)) < 0:
            raise FencedError(f"{self.stream} partition {self.partition}: another consumer owns it now")

    def _output_args(self, keys: _Keys, out: Output | StateWrite) -> list[Any]:
        if isinstance(out, StateWrite):
            return [-keys(out.key), out.ttl_ms, 0, out.value]
        stream, event = out
        enc = encode(event)
        # outputs stay in the partition they came from: a session's entries never change partition
        args: list[Any] = [keys(self.bus.partition_key(stream, self.partition)), self.bus.maxlen(stream), len(enc)]
        for k, v in enc.items():
            args += [k, v]
        return args

    async def _commit(
        self,
        committed: list[tuple[bytes, dict[bytes, bytes], Event | None, Outcome]],
        handled: Sequence[Committed] = (),
    ) -> None:
        """Publish outputs, mark (session, seq) processed and XACK, atomically (one Lua script); then
        ``after_commit(handled)``."""
        if (
            self.fence is None
            and not self.dedupe
            and all(not isinstance(o, DeadLetter) and not o for *_, o in committed)
        ):
            # Nothing to publish, mark or dead-letter (e.g. the recorder): one plain XACK, n arguments
            # instead of the script's 4n.
            ids = [eid for eid, *_ in committed]
            await self._send_commit(
                lambda: self.bus.redis.xack(self._key, self.group, *ids), script=False, handled=handled
            )
            self.stats.processed += len(committed)
            for eid, *_ in committed:
                self._failures.pop(eid, None)
            return
        s = self.bus.settings
        keys = _Keys(self._key)
        fence = (keys(self.fence.key), self.fence.token) if self.fence is not None else (0, "")
        args: list[Any] = [self.group, s.dedupe_ttl_s, *fence, len(committed)]
        for eid, fields, event, outcome in committed:
            if isinstance(outcome, DeadLetter):
                dead = _dead_fields(self._key, self.group, eid, fields, outcome.reason, self.name)
                args += [eid, 0, 0, 1, keys(self.bus.partition_key(DEAD, self.partition)), self.bus.maxlen(DEAD)]
                args.append(len(dead))
                for k, v in dead.items():
                    args += [k, v]
                self.stats.dead_lettered += 1
                log.warning(
                    "dead-lettered entry",
                    extra={"stream": self.stream, "entry_id": eid.decode(), "reason": outcome.reason},
                )
            else:
                dedupe = self.dedupe and event is not None
                args += [
                    eid,
                    keys(self._dedupe_key(event)) if dedupe and event else 0,
                    event.seq if event else 0,
                    len(outcome),
                ]
                for out in outcome:
                    args += self._output_args(keys, out)
                self.stats.processed += 1
            self._failures.pop(eid, None)
        await self._send_commit(lambda: self._script(keys=keys.keys, args=args), script=True, handled=handled)


def is_nogroup(exc: ResponseError) -> bool:
    """Whether Redis answered that the consumer group (or its stream) does not exist."""
    return str(exc).startswith("NOGROUP")


def _entries(response: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    if not response:
        return []
    out = []
    for _stream, items in response:
        for eid, fields in items:
            if fields is not None:  # None: trimmed away while pending
                out.append((eid, dict(fields)))
    return out


def _dead_fields(
    stream_key: str, group: str, entry_id: bytes, fields: dict[bytes, bytes], reason: str, consumer: str
) -> dict[bytes, bytes]:
    dead: dict[bytes, bytes] = {
        b"stream": stream_key.encode(),
        b"group": group.encode(),
        b"entry_id": entry_id,
        b"consumer": consumer.encode(),
        b"reason": reason.encode(errors="replace")[:4096],
        b"ts_ns": str(now_ns()).encode(),
    }
    budget = _DEAD_ORIGINAL_LIMIT
    for k, v in fields.items():
        kept = v[:budget]
        dead[b"original:" + k] = kept
        budget -= len(kept)
        if len(kept) < len(v):
            dead[b"truncated"] = b"1"
    return dead
