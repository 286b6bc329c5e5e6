"""Batched decoding of concurrent jobs: every job that is decoding steps in one forward.

Each job is still one stream of steps (``Engine.stream``), advanced by the worker one step at a time
on its compute thread. Behind the streams one :class:`BatchScheduler` per model keeps the decoding
jobs in one batch with one KV cache: when a job asks for its next step and has none ready, one
batched forward runs for *every* job in the batch and leaves each its step, so the jobs asked next
find theirs ready. The worker serves its jobs round-robin, so N jobs cost one forward per round
instead of N.

- **Own parameters**: each row keeps its sampler (temperature, top-k/p, seed), stop strings, budget,
  decoder and cancel (the worker closes its stream: the row leaves the batch at once).
- **Different lengths**: rows join with their own prompt length; the batch cache is padded on the
  left, with an attention mask and each row's own positions (as ``generate()`` pads a batch). When
  no row is padded, the forward is the plain one (no mask), so a job alone decodes exactly as before.
- **Joining**: a new job reads its prompt on its own cache, in chunks of ``PREFILL_CHUNK`` tokens,
  one chunk per step of the worker (``Prefilling``), so a long prompt delays the others' tokens by at
  most one chunk; then its cache is merged into the batch's.
- Models whose cache is not made of plain dynamic layers (sliding windows, quantised caches) decode
  each row on its own cache, one forward per row: correct, not batched.

Everything here runs on the worker's one compute thread; a lock keeps other callers (benchmarks,
tests) safe.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import torch

from services.generator.engine import Finished, GenerationRequest, Prefilling, Step, TokenStep
from services.generator.errors import DeviceMemoryError, InvalidJobError, NumericalError, PromptTooLongError
from services.generator.hf import decoding
from services.generator.hf.decoding import Probe, Sampler, TokenTexts, _describe, _forward, prompt_ids
from services.generator.hf.loading import LoadedModel
from services.generator.text import IncrementalDecoder, StopMatcher


class Row:
    """One job's decoding state: what :func:`decoding.generate` keeps in its locals, as an object."""

    def __init__(self, lm: LoadedModel, request: GenerationRequest, texts: TokenTexts, probe: Probe | None) -> None:
        self.lm = lm
        self.ids = prompt_ids(lm, request)
        if len(self.ids) >= lm.context_length:
            raise PromptTooLongError(len(self.ids), lm.context_length)
        if request.sampling.top_k > lm.vocab_size:
            raise InvalidJobError(
                f"top_k {request.sampling.top_k} exceeds the vocabulary ({lm.vocab_size})", param="top_k"
            )
        self.request = request
        self.texts = texts
        self.probe = probe
        self.budget = min(request.sampling.max_tokens, lm.context_length - len(self.ids))
        self.sampler = Sampler(request.sampling, lm.device)
        self.decoder = IncrementalDecoder(
            lambda t: lm.tokenizer.decode(t, clean_up_tokenization_spaces=False), self.ids
        )
        self.stops = StopMatcher(request.sampling.stop)
        self.k = min(request.top_k_alternatives, lm.vocab_size)
        self.produced = 0
        self.token = 0  # the last token chosen: the next forward's input
        self.length = len(self.ids)  # tokens in this row's cache (its next position)
        self.finished = False
        self.error: Exception | None = None
        self.ready: deque[Step] = deque()  # steps computed, not yet taken by the stream

    def choose(self, logits: torch.Tensor, hidden: torch.Tensor | None) -> None:
        """Choose the next token from ``logits`` and queue its step (and the Finished after the last)."""
        lm, n = self.lm, len(self.ids)
        token = self.sampler.choose(logits)

        def describe(text: str) -> TokenStep:
            return _describe(lm, logits, token, text, self.k, self.request.full_logits, self.texts, self.probe, hidden)

        if token in lm.eos_ids:
            held = self.stops.flush() + self.decoder.flush()
            if held:  # text still held back must reach the output: it rides on the end-of-sequence token
                self.ready.append(describe(held))
            self.ready.append(Finished("eos", n))
            self.finished = True
            return
        text, hit = self.stops.feed(self.decoder.add(token))
        self.produced += 1
        if self.produced >= self.budget and not hit:
            text += self.stops.feed(self.decoder.flush())[0] + self.stops.flush()
        self.ready.append(describe(text))
        if hit or self.produced >= self.budget:
            self.ready.append(Finished("stop" if hit else "max_tokens", n))
            self.finished = True
        self.token = token


class BatchScheduler:
    """The batch of one model's decoding jobs (see the module docstring)."""

    def __init__(self, lm: LoadedModel, texts: TokenTexts, probe: Probe | None) -> None:
        self.lm = lm
        self.texts = texts
        self.probe = probe
        self.rows: list[Row] = []  # in batch order
        self.cache: Any = None  # the batch's KV cache (batchable models)
        self.mask: torch.Tensor | None = None  # [batch, cache length]: 1 for a row's tokens, 0 for padding
        self.caches: dict[int, Any] = {}  # each row's own cache (models that cannot batch)
        self.lock = threading.RLock()
        self.rounds = 0  # forwards of the batch, for tests and benchmarks
        self.widest = 0  # the most rows one forward has decoded

    def stream(self, request: GenerationRequest) -> Iterator[Step]:
        row = Row(self.lm, request, self.texts, self.probe)  # invalid jobs fail before the stream starts
        return self._steps(row)

    def _steps(self, row: Row) -> Iterator[Step]:
        ids = row.ids
        try:
            cache = None
            chunk = decoding.PREFILL_CHUNK
            for start in range(0, len(ids) - chunk, chunk):  # one chunk per worker step
                with self.lock:
                    _logits, cache, _ = _forward(self.lm, ids[start : start + chunk], cache, 0)
                yield Prefilling(start + chunk, len(ids))
            last = (max(len(ids) - 1, 0) // chunk) * chunk
            with self.lock:
                logits, cache, hidden = _forward(self.lm, ids[last:], cache, 0, self.probe)
                row.choose(logits, hidden)
                if not row.finished:
                    self._join(row, cache)
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

    # --- the batch ------------------------------------------------------------------------------

    def _join(self, row: Row, cache: Any) -> None:
        if not _batchable(cache):
            self.caches[id(row)] = cache
            self.rows.append(row)
            return
        n = row.length
        if not self.rows or self.cache is None:
            self.cache, self.mask = cache, torch.ones((1, n), dtype=torch.long, device=self.lm.device)
            self.rows.append(row)
            return
        assert self.mask is not None
        width = max(self.mask.shape[1], n)
        self.cache, self.mask = _pad_left(self.cache, self.mask, width)
        row_mask = torch.ones((1, n), dtype=torch.long, device=self.lm.device)
        cache, row_mask = _pad_left(cache, row_mask, width)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([mine.keys, theirs.keys], dim=0)
            mine.values = torch.cat([mine.values, theirs.values], dim=0)
        self.mask = torch.cat([self.mask, row_mask], dim=0)
        self.rows.append(row)

    def _batched_rows(self) -> list[Row]:
        """The rows in the batch cache, in its batch order."""
        return [r for r in self.rows if id(r) not in self.caches]

    def _drop(self, gone: list[Row]) -> None:
        """Take rows out of the batch (finished, failed, closed)."""
        batched = self._batched_rows()
        keep = [i for i, r in enumerate(batched) if r not in gone]
        for r in gone:
            self.caches.pop(id(r), None)
        self.rows = [r for r in self.rows if r not in gone]
        if len(keep) == len(batched):
            return
        if keep:
            self._select(keep)
        else:
            self.cache, self.mask = None, None

    def _leave(self, row: Row) -> None:
        if row in self.rows:
            self._drop([row])

    def _select(self, keep: list[int]) -> None:
        assert self.mask is not None
        where = torch.tensor(keep, device=self.lm.device)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, where)
            layer.values = layer.values.index_select(0, where)
        self.mask = self.mask.index_select(0, where)
        # columns that are padding in every row left: drop them
        real = self.mask.any(dim=0).nonzero()
        start = int(real[0]) if real.numel() else 0
        if start:
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, start:]
                layer.values = layer.values[:, :, start:]
            self.mask = self.mask[:, start:]

    def _round(self) -> None:
        """One forward for every decoding row; each gets its next step (or its error)."""
        rows = [r for r in self.rows if not r.finished]
        if not rows:
            return
        self.rounds += 1
        self.widest = max(self.widest, len(rows))
        unbatched = [r for r in rows if id(r) in self.caches]
        for r in unbatched:
            try:
                logits, self.caches[id(r)], hidden = _forward(
                    self.lm, [r.token], self.caches[id(r)], r.produced, self.probe
                )
            except NumericalError as exc:
                r.error, r.finished = exc, True
                continue
            r.length += 1
            r.choose(logits, hidden)
        batched = self._batched_rows()
        if batched:
            self._batched_round(batched)
        finished = [r for r in self.rows if r.finished]
        if finished:
            self._drop(finished)

    def _batched_round(self, rows: list[Row]) -> None:
        lm = self.lm
        assert self.mask is not None
        device = lm.device
        padded = not bool(self.mask.all())
        mask = torch.cat([self.mask, torch.ones((len(rows), 1), dtype=torch.long, device=device)], dim=1)
        try:
            with torch.inference_mode():
                inputs = torch.tensor([[r.token] for r in rows], dtype=torch.long, device=device)
                extra: dict[str, Any] = {"output_hidden_states": True} if self.probe is not None else {}
                if padded:  # each row its own position, padding masked; else the plain forward
                    extra["attention_mask"] = mask
                    extra["position_ids"] = torch.tensor([[r.length] for r in rows], dtype=torch.long, device=device)
                out = lm.model(
                    input_ids=inputs, use_cache=True, logits_to_keep=1, **{lm.cache_arg: self.cache}, **extra
                )
                logits = out.logits[:, -1].float()
                hidden = out.hidden_states[self.probe.layer][:, -1] if self.probe is not None else None
                broken = torch.isnan(logits).any(dim=-1) | ~torch.isfinite(logits.max(dim=-1).values)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise DeviceMemoryError(str(device), max(r.produced for r in rows)) from None
        self.cache = out.cache if lm.cache_arg == "cache" else out.past_key_values
        self.mask = mask
        for b, r in enumerate(rows):
            r.length += 1
            if bool(broken[b]):
                r.error, r.finished = NumericalError(r.produced, str(lm.dtype).removeprefix("torch.")), True
                continue
            r.choose(logits[b], hidden[b] if hidden is not None else None)


def _batchable(cache: Any) -> bool:
    """Whether a cache is plain dynamic layers (keys and values ``[batch, heads, seq, dim]``)."""
    from transformers.cache_utils import DynamicLayer

    layers: list[Any] = list(getattr(cache, "layers", None) or [])
    return bool(layers) and all(type(layer) is DynamicLayer and layer.is_initialized for layer in layers)


def _pad_left(cache: Any, mask: torch.Tensor, width: int) -> tuple[Any, torch.Tensor]:
    """``cache`` and ``mask`` padded on the left to ``width`` positions (zeros, masked out)."""
    pad = width - mask.shape[1]
    if pad <= 0:
        return cache, mask
    for layer in cache.layers:
        b, h, _, d = layer.keys.shape
        layer.keys = torch.cat([layer.keys.new_zeros((b, h, pad, d)), layer.keys], dim=2)
        layer.values = torch.cat([layer.values.new_zeros((b, h, pad, layer.values.shape[-1])), layer.values], dim=2)
    return cache, torch.cat([mask.new_zeros((mask.shape[0], pad)), mask], dim=1)
