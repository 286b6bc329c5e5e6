"""Batched decoding of concurrent jobs on llama.cpp: one context, one sequence per job, one decode per round.

llama.cpp decodes several sequences in one ``llama_decode``: each token of a ``llama_batch`` names
its sequence and position, and each sequence attends to its own cache only. The engine's one
context holds ``max_concurrent_jobs`` sequences, each in a KV stream of its own of
``context_length`` cells (``kv_unified`` off), so every job has room for its full context and a
sequence's numbers do not depend on the others: a job decodes the same logits, bit for bit, alone
or in a batch (tests/generator/test_llamacpp_batching.py). (A unified cache is not: its attention
spans the other jobs' cells too, masked, and the sums come out different in the last bits.)

With a stream per sequence, llama.cpp puts only sequences of consecutive ids in one micro-batch: a
batch on sequences 0, 2 and 3 would decode as two. So new jobs take the lowest free sequence (the
jobs stay packed from 0 up), and before a round the decoding job on the highest sequence moves down
into a gap left by one that ended (``llama_memory_seq_cp``: its cache is copied as it is, so it
decodes on unchanged): one copy per gap. A gap that cannot be closed (a job still reading its
prompt holds the only free sequence below) decodes as one run per stretch of consecutive ids.

As in the transformers engine (services/generator/hf/batching.py), each job is still one stream of
steps advanced by the worker one step at a time on its compute thread: when a job asks for its next
step and has none ready, one decode runs for *every* decoding job and leaves each its step.

- **Own parameters**: each row keeps its sampler (temperature, top-k/p, seed), stop strings, budget,
  text decoder and cancel (the worker closes its stream: the row leaves the batch and its sequence
  is cleared at once).
- **Joining**: a new job takes a free sequence and reads its prompt into it, ``PREFILL_CHUNK``
  tokens per worker step (``Prefilling``), so a long prompt delays the others' tokens by at most one
  chunk; then it joins the next round.
- **Logits**: one output row per job per round (``llama_get_logits_ith``), copied out before the next
  decode; the probe's hidden state is read in the same decode (services/generator/llamacpp/probe.py).

Everything here runs on the worker's one compute thread; a lock keeps other callers (benchmarks,
tests) safe.
"""

from __future__ import annotations

import bisect
import codecs
import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from services.generator.engine import Finished, GenerationRequest, Prefilling, Step
from services.generator.errors import GeneratorError, InvalidJobError, NumericalError, PromptTooLongError
from services.generator.text import StopMatcher

if TYPE_CHECKING:
    from services.generator.llamacpp.engine import LlamaCppEngine

log = logging.getLogger(__name__)

PREFILL_CHUNK = 512  # prompt tokens per decode while reading a prompt (the others' steps run between)
UNLOADED = "the model was unloaded while this job ran; submit it again"


class Row:
    """One job's decoding state in its sequence ``seq`` of the context (-1 while it holds none)."""

    def __init__(self, engine: LlamaCppEngine, request: GenerationRequest, ids: list[int], seq: int) -> None:
        from services.generator.llamacpp.engine import Sampler

        self.engine = engine
        self.request = request
        self.ids = ids
        self.seq = seq
        self.budget = min(request.sampling.max_tokens, engine.context_length - len(ids))
        self.sampler = Sampler(request.sampling)
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stops = StopMatcher(request.sampling.stop)
        self.k = min(request.top_k_alternatives, engine.vocab_size)
        self.produced = 0
        self.token = 0  # the last token chosen: the next decode's input
        self.length = len(ids)  # tokens in this row's sequence (its next position)
        self.finished = False
        self.error: Exception | None = None
        self.ready: deque[Step] = deque()  # steps computed, not yet taken by the stream

    def choose(self, logits: NDArray[np.float32], hidden: NDArray[np.float32] | None) -> None:
        """Choose the next token from ``logits`` and queue its step (and the Finished after the last)."""
        engine, n = self.engine, len(self.ids)
        token = self.sampler.choose(logits)
        full = self.request.full_logits
        if engine.is_end(token):
            held = self.stops.flush() + self.utf8.decode(b"", final=True)
            if held:  # text still held back rides on the end-of-sequence token
                self.ready.append(engine.describe(logits, token, held, self.k, full, hidden))
            self.ready.append(Finished("eos", n))
            self.finished = True
            return
        text, hit = self.stops.feed(self.utf8.decode(engine.piece(token)))
        self.produced += 1
        if self.produced >= self.budget and not hit:
            text += self.stops.feed(self.utf8.decode(b"", final=True))[0] + self.stops.flush()
        self.ready.append(engine.describe(logits, token, text, self.k, full, hidden))
        if hit or self.produced >= self.budget:
            self.ready.append(Finished("stop" if hit else "max_tokens", n))
            self.finished = True
        self.token = token


class BatchScheduler:
    """The decoding jobs of one llama.cpp context (see the module docstring)."""

    def __init__(self, engine: LlamaCppEngine, context: Any, n_seq: int) -> None:
        import llama_cpp

        self.engine = engine
        self.context = context
        self.n_seq = n_seq
        self.free: list[int] = list(range(n_seq))  # sequence ids not in use, ascending (new jobs take the first)
        self.rows: list[Row] = []  # decoding, in sequence order
        self.batch: Any = llama_cpp.llama_batch_init(max(PREFILL_CHUNK, n_seq), 0, 1)
        self.lock = threading.RLock()
        self.rounds = 0  # decodes of the batch, for tests and benchmarks
        self.widest = 0  # the most rows one decode has carried
        self.moves = 0  # rows moved down into a gap (see _compact)
        self.closed = False  # the context is freed: streams still open touch it no more
        self.warned = False  # said once that a batch's hidden states were not captured

    def free_sequences(self) -> int:
        return len(self.free)

    def stream(self, request: GenerationRequest) -> Iterator[Step]:
        """The steps of one job; invalid jobs fail here, before the stream starts."""
        engine = self.engine
        ids = engine.prompt_ids(request)
        if len(ids) >= engine.context_length:
            raise PromptTooLongError(len(ids), engine.context_length)
        if request.sampling.top_k > engine.vocab_size:
            raise InvalidJobError(
                f"top_k {request.sampling.top_k} exceeds the vocabulary ({engine.vocab_size})", param="top_k"
            )
        return self._steps(Row(engine, request, ids, -1))

    def stream_together(self, requests: Sequence[GenerationRequest]) -> Iterator[list[Step]]:
        """Several jobs as one stream: per round one step of each (a finished one repeats its Finished)."""
        streams = [self.stream(r) for r in requests]
        last: list[Step | None] = [None] * len(streams)
        try:
            while not all(isinstance(s, Finished) for s in last):
                for i, s in enumerate(streams):
                    if not isinstance(last[i], Finished):
                        last[i] = next(s)
                yield [s for s in last if s is not None]
        finally:
            for s in streams:
                s.close()  # type: ignore[attr-defined]

    def _steps(self, row: Row) -> Iterator[Step]:
        ids = row.ids
        with self.lock:  # a sequence from the first step on (a stream closed before it holds none)
            if not self.free:
                raise GeneratorError(
                    f"the llama.cpp engine decodes {self.n_seq} jobs at once (max_concurrent_jobs) and all are running"
                )
            row.seq = self.free.pop(0)
        try:
            for start in range(0, len(ids) - PREFILL_CHUNK, PREFILL_CHUNK):  # one chunk per worker step
                with self.lock:
                    self._read(row, start, start + PREFILL_CHUNK, last=False)
                yield Prefilling(start + PREFILL_CHUNK, len(ids))
            last = (max(len(ids) - 1, 0) // PREFILL_CHUNK) * PREFILL_CHUNK
            with self.lock:
                logits, hidden = self._read(row, last, len(ids), last=True)
                row.choose(logits, hidden)
                if not row.finished:
                    self.rows.append(row)
                    self.rows.sort(key=lambda r: r.seq)
            while True:
                if not row.ready:
                    with self.lock:
                        if not row.ready and row.error is None:
                            self._round()
                if row.error is not None:
                    raise row.error
                step = row.ready.popleft()
                yield step
                if isinstance(step, Finished):
                    return
        finally:
            with self.lock:
                self._leave(row)

    def _read(
        self, row: Row, start: int, end: int, *, last: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
        """Decode the prompt tokens ``start:end`` into the row's sequence; for the last chunk, the
        logits (and hidden state) of its last position."""
        b = self.batch
        n = end - start
        b.n_tokens = n
        for i, token in enumerate(row.ids[start:end]):
            b.token[i] = token
            b.pos[i] = start + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = row.seq
            b.logits[i] = 0
        b.logits[n - 1] = int(last)
        self._decode(armed=last)
        if not last:
            return np.empty(0, dtype=np.float32), None
        rows = self.engine.capture.rows if self.engine.capture is not None else None
        return self._logits(n - 1, 0), rows[-1] if rows is not None else None

    def _round(self) -> None:
        """One decode of one token for every decoding row; each gets its next step (or its error)."""
        rows = [r for r in self.rows if not r.finished]
        if not rows:
            return
        if self.closed:
            for r in rows:
                r.error, r.finished = GeneratorError(UNLOADED), True
            self._drop(rows)
            return
        self._compact(rows)
        self.rounds += 1
        self.widest = max(self.widest, len(rows))
        runs: list[list[Row]] = [[rows[0]]]  # rows on consecutive sequences: one micro-batch each
        for r in rows[1:]:
            if r.seq == runs[-1][-1].seq + 1:
                runs[-1].append(r)
            else:
                runs.append([r])
        for run in runs:  # one run unless a gap could not be closed (a job reading its prompt holds it)
            self._decode_run(run)
        self._drop([r for r in rows if r.finished])

    def _decode_run(self, rows: list[Row]) -> None:
        b = self.batch
        b.n_tokens = len(rows)
        for i, r in enumerate(rows):
            b.token[i] = r.token
            b.pos[i] = r.length
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = r.seq
            b.logits[i] = 1
        try:
            self._decode(armed=True)
        except GeneratorError as exc:
            for r in rows:
                r.error, r.finished = exc, True
            return
        capture = self.engine.capture
        hidden = capture.rows if capture is not None else None
        if capture is not None and (hidden is None or hidden.shape[0] != len(rows)):
            if not self.warned:
                log.warning(
                    "the probe's layer was not captured for a batch; its tokens have no probe",
                    extra={"rows": len(rows), "captured": None if hidden is None else hidden.shape[0]},
                )
                self.warned = True
            hidden = None
        for i, r in enumerate(rows):
            r.length += 1
            try:
                logits = self._logits(i, r.produced)
            except NumericalError as exc:
                r.error, r.finished = exc, True
                continue
            r.choose(logits, hidden[i] if hidden is not None else None)

    def _compact(self, rows: list[Row]) -> None:
        """Move the decoding rows onto consecutive sequence ids, the highest into the lowest gap below
        it, so that one round is one micro-batch; ``rows`` ends in sequence order."""
        import llama_cpp

        rows.sort(key=lambda r: r.seq)
        while rows[-1].seq - rows[0].seq + 1 > len(rows) and self.free and self.free[0] < rows[-1].seq:
            high, gap = rows[-1], self.free.pop(0)
            llama_cpp.llama_memory_seq_cp(self.context.memory, high.seq, gap, -1, -1)
            llama_cpp.llama_memory_seq_rm(self.context.memory, high.seq, -1, -1)
            bisect.insort(self.free, high.seq)
            high.seq = gap
            self.moves += 1
            rows.sort(key=lambda r: r.seq)
        self.rows.sort(key=lambda r: r.seq)

    def _decode(self, *, armed: bool) -> None:
        import llama_cpp

        if self.closed:
            raise GeneratorError(UNLOADED)
        capture = self.engine.capture
        if capture is not None:
            capture.arm(armed)
        rc = llama_cpp.llama_decode(self.context.ctx, self.batch)
        if rc != 0:
            raise GeneratorError(f"llama.cpp could not decode the batch (llama_decode returned {rc})")

    def _logits(self, i: int, produced: int) -> NDArray[np.float32]:
        """A copy of the logits of the batch's output ``i``."""
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.context.ctx, i)
        row = np.ctypeslib.as_array(ptr, shape=(self.engine.vocab_size,)).copy()
        if not np.isfinite(row).all():
            raise NumericalError(produced, "gguf")
        return row

    def _drop(self, gone: list[Row]) -> None:
        """Take finished rows out of the batch and give their sequences back."""
        for r in gone:
            self._leave(r)

    def _leave(self, row: Row) -> None:
        import llama_cpp

        if row in self.rows:
            self.rows.remove(row)
        if row.seq >= 0 and not self.closed:
            llama_cpp.llama_memory_seq_rm(self.context.memory, row.seq, -1, -1)
            bisect.insort(self.free, row.seq)
            row.seq = -1

    def close(self) -> None:
        import llama_cpp

        with self.lock:
            self.closed = True
            if self.batch is not None:
                llama_cpp.llama_batch_free(self.batch)
                self.batch = None
