"""The auditor's batch handler: token entries in, one audit per token out (or a dead letter).

Stateless: every output depends on its entry alone, so any replica in the consumer group can take
any entry; the bus commits outputs and acknowledgements exactly once.

A batch is split by what its entries carry; each group is computed at once:
- ``full``: stacked per vocabulary size into one ``(n, V)`` float16 array → :func:`metrics.from_logits`;
- ``top_k``: the alternatives' log-probabilities padded into ``(n, K)`` → :func:`metrics.from_top_k`;
- ``prob_only``: the token's log-probability → :func:`metrics.from_logprob`;
- ``none``: every metric null.
A full entry whose logits hold NaN or +inf (or are all -inf), or whose token id is outside its
vocabulary, is dead-lettered with that reason; the rest of the batch is published.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from services.auditor import metrics
from services.auditor.settings import AuditorSettings
from services.common.bus import BatchHandler, Bus, Consumer, DeadLetter, Delivery, Outcome
from services.common.codec import logits_array
from services.common.contracts import AuditEvent, Event, Metrics, TokenEvent, TopKAlternative


def token_consumer(
    bus: Bus, settings: AuditorSettings, handler: BatchHandler, name: str | None = None, partition: int = 0
) -> Consumer:
    """How an auditor reads a partition of ``uq:tokens``: in the auditors' group, deduped on
    ``(session_id, seq)``.

    No precheck of the dedupe marks before handling (one round trip a batch): audits depend on
    their entry alone, so a redelivered token is audited again and the commit drops the copy.
    """
    return bus.consumer("tokens", settings.token_group, handler, name=name, precheck=False, partition=partition)


def token_consumers(
    bus: Bus, settings: AuditorSettings, handler: BatchHandler, name: str | None = None
) -> list[Consumer]:
    """One :func:`token_consumer` per partition: every auditor reads every partition (audits are
    stateless, so replicas share each partition through the consumer group)."""
    return [token_consumer(bus, settings, handler, name, p) for p in bus.partitions]


class Auditor:
    """Computes audits for batches of token events; counts what it did for the heartbeat."""

    def __init__(self, settings: AuditorSettings, kernel: metrics.Kernel = "auto") -> None:
        self.settings = settings
        self.kernel = kernel
        self.audited: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.compute_s = 0.0
        # per worker thread and vocabulary size, reused: every partition's consumer calls handle, and
        # their batches are computed in worker threads at once, so one shared buffer would mix them
        self._local = threading.local()

    def warm_up(self) -> None:
        """Compile the fused kernels (seconds the first time, then read from numba's disk cache)."""
        for dtype in (np.float16, np.float32):
            metrics.from_logits(np.zeros((1, 2), dtype=dtype), [0], kernel=self.kernel)

    async def handle(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """The consumer's batch handler.

        A batch with full logits is computed in a worker thread: the fused kernel releases the GIL,
        so the event loop meanwhile receives the next batch, read ahead by the consumer (about a third
        of the time per full-vocabulary token is its transfer from Redis). Top-k batches are pure
        Python work and stay on the loop.
        """
        events = [d.event for d in deliveries]
        if any(isinstance(e, TokenEvent) and e.logits is not None for e in events):
            return await asyncio.to_thread(self.audit, events)
        return self.audit(events)

    def audit(self, events: Sequence[Event]) -> list[Outcome]:
        """One outcome per event, in order: ``[("audits", AuditEvent)]`` or a DeadLetter."""
        started = time.perf_counter()
        outcomes: list[Outcome | None] = [None] * len(events)
        groups: dict[tuple[str, int], list[int]] = defaultdict(list)
        for i, event in enumerate(events):
            if not isinstance(event, TokenEvent):
                outcomes[i] = DeadLetter(f"expected a token entry, got {type(event).__name__}")
                continue
            vocab = (event.vocab_size or 0) if event.distribution == "full" else 0
            groups[(event.distribution, vocab)].append(i)
        for (kind, _vocab), index in groups.items():
            batch = [cast(TokenEvent, events[i]) for i in index]
            if kind == "full":
                result = self._full(batch)
            elif kind == "top_k":
                result = _top_k(batch)
            elif kind == "prob_only":
                result = metrics.from_logprob(np.array([_or_nan(e.logprob) for e in batch]))
            else:
                result = metrics.empty(len(batch))
            values = result.rows()
            for row, i in enumerate(index):
                outcomes[i] = self._outcome(batch[row], result, row, values[row])  # batch: display top-k filled in
        self.compute_s += time.perf_counter() - started
        return [o if o is not None else DeadLetter("not audited") for o in outcomes]

    def details(self) -> dict[str, Any]:
        """What the heartbeat shows."""
        return {
            "audited": dict(self.audited),
            "dead_lettered": dict(self.dead),
            "compute_s": round(self.compute_s, 3),
            "kernel": self.kernel,
        }

    def _full(self, batch: list[TokenEvent]) -> metrics.TokenMetrics:
        vocab = len(batch[0].logits or b"") // 2
        logits = self._buffer(vocab, len(batch))
        for row, event in enumerate(batch):
            logits[row] = logits_array(event)
        ids = np.array([e.token_id if e.token_id is not None else 0 for e in batch], dtype=np.int64)
        result = metrics.from_logits(logits, ids, kernel=self.kernel)
        unknown = np.array([e.token_id is None for e in batch])
        if unknown.any():  # the distribution's metrics stand; those of "the emitted token" do not
            for name in ("prob", "surprisal", "rank", "hbar_s"):
                getattr(result, name)[unknown] = np.nan
        missing = [row for row, e in enumerate(batch) if not e.top_k and result.problem[row] == 0]
        if missing and self.settings.display_top_k:
            self._fill_display(batch, logits, missing)
        return result

    def _buffer(self, vocab: int, rows: int) -> np.ndarray[Any, np.dtype[np.float16]]:
        """A (rows, vocab) float16 array, reused across this thread's batches: a fresh 8 MB one costs
        ~4 ms of page faults. One per thread: batches of different partitions are computed at once."""
        buffers: dict[int, np.ndarray[Any, np.dtype[np.float16]]] | None = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        buf = buffers.get(vocab)
        if buf is None or buf.shape[0] < rows:
            buf = buffers[vocab] = np.empty((max(rows, self.settings.batch_size), vocab), dtype=np.float16)
        return buf[:rows]

    def _fill_display(self, batch: list[TokenEvent], logits: np.ndarray[Any, Any], rows: list[int]) -> None:
        """Entries with full logits but no alternatives: take the top for display (rare; not the hot path)."""
        k = min(self.settings.display_top_k, logits.shape[1])
        for row in rows:
            z = logits[row].astype(np.float64)
            top = np.argpartition(-z, k - 1)[:k]
            top = top[np.argsort(-z[top], kind="stable")]
            m = z.max()
            log_sum = m + np.log(np.exp(z - m).sum())
            alternatives = [
                TopKAlternative(token_id=int(t), text="", logprob=min(float(z[t] - log_sum), 0.0)) for t in top
            ]
            batch[row] = batch[row].model_copy(update={"top_k": alternatives})

    def _outcome(self, event: TokenEvent, result: metrics.TokenMetrics, row: int, values: dict[str, Any]) -> Outcome:
        reason = result.problem_reason(row)
        if reason is not None:
            self.dead[reason] += 1
            return DeadLetter(f"{reason} (session {event.session_id}, seq {event.seq})")
        self.audited[event.distribution] += 1
        audit = AuditEvent(
            session_id=event.session_id,
            seq=event.seq,
            token_id=event.token_id,
            text=event.text,
            distribution=event.distribution,
            metrics=Metrics(**values, probe=event.probe),
            top_k=event.top_k[: self.settings.display_top_k],
            model=event.model,
            token_ts_ns=event.ts_ns,
        )
        return [("audits", audit)]


def _top_k(batch: list[TokenEvent]) -> metrics.TokenMetrics:
    width = max(1, max(len(e.top_k) for e in batch))
    pad = [-math.inf] * width
    logprobs = np.array([([a.logprob for a in e.top_k] + pad)[:width] for e in batch], dtype=np.float64)
    token_pos = np.array([_position(e) for e in batch], dtype=np.int64)
    token_logprob = np.array([_or_nan(e.logprob) for e in batch])
    return metrics.from_top_k(logprobs, token_logprob, token_pos)


def _position(event: TokenEvent) -> int:
    """The emitted token's index among the alternatives (by id, else by text), or -1."""
    for col, alt in enumerate(event.top_k):
        if event.token_id is not None and alt.token_id is not None:
            if event.token_id == alt.token_id:
                return col
        elif event.text == alt.text:
            return col
    return -1


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value
