"""The decoding loop: one forward per token on the KV cache, the raw distribution of each step
described (logprob, top-k, float16 logits) from the very logits that chose the token.

Why a loop of our own rather than ``generate()``: we need each step's raw logits as the token is
chosen, and a plain loop over ``model(input_ids=[[token]], cache=…)`` does less work per token than
``generate()`` (no logits processors, stopping criteria or output bookkeeping).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from services.common.codec import logits_bytes
from services.common.contracts import SamplingParams, TopKAlternative
from services.generator.engine import Finished, GenerationRequest, Prefilling, Step, TokenStep
from services.generator.errors import DeviceMemoryError, InvalidJobError, NumericalError, PromptTooLongError
from services.generator.hf.loading import LoadedModel
from services.generator.text import IncrementalDecoder, StopMatcher

log = logging.getLogger(__name__)

PREFILL_CHUNK = 512  # prompt tokens per forward while reading a prompt


class Sampler:
    """Chooses the next token from raw logits: greedy when temperature is 0, else seeded sampling."""

    def __init__(self, params: SamplingParams, device: torch.device) -> None:
        self.params = params
        self.greedy = params.temperature == 0.0
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))

    def choose(self, logits: torch.Tensor) -> int:
        if self.greedy:
            return int(torch.argmax(logits))
        p = self.params
        scaled = logits / p.temperature
        ids: torch.Tensor | None = None
        if p.top_k and p.top_k < scaled.shape[-1]:
            scaled, ids = torch.topk(scaled, p.top_k)  # sorted, most likely first
        if p.top_p < 1.0:
            if ids is None:
                scaled, ids = torch.sort(scaled, descending=True)
            probs = torch.softmax(scaled, dim=-1)
            before = torch.cumsum(probs, dim=-1) - probs  # mass of the more likely tokens
            keep = int((before < p.top_p).sum())  # always ≥ 1
            scaled, ids = scaled[:keep], ids[:keep]
        probs = torch.softmax(scaled, dim=-1)
        choice = int(torch.multinomial(probs, 1, generator=self.generator))
        return int(ids[choice]) if ids is not None else choice


class TokenTexts:
    """Decoded text of single tokens (for top-k alternatives), cached per model."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        text = self._cache.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id], clean_up_tokenization_spaces=False)[:1024]
            if len(self._cache) < 200_000:
                self._cache[token_id] = text
        return text


def prompt_ids(lm: LoadedModel, request: GenerationRequest) -> list[int]:
    """Token ids of the prompt; chat messages go through the model's chat template when it has one."""
    tok = lm.tokenizer
    if (request.prompt is None) == (request.messages is None):
        raise InvalidJobError("give either a prompt or chat messages, not both and not neither", param="prompt")
    if request.messages is not None:
        if not request.messages:
            raise InvalidJobError("messages is empty", param="messages")
        turns = [{"role": m.role, "content": m.content} for m in request.messages]
        if lm.chat_template:
            text = tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False).input_ids
        else:  # no template: a plain transcript the model can continue
            text = "".join(f"{t['role']}: {t['content']}\n" for t in turns) + "assistant:"
            ids = tok(text).input_ids
    else:
        ids = tok(request.prompt).input_ids
    if not ids:
        raise InvalidJobError("the prompt is empty", param="prompt")
    return [int(i) for i in ids]


@dataclass(frozen=True, slots=True)
class Probe:
    """A calibration profile's hidden-state probe: the direction ``weights`` in the output of layer
    ``layer`` (``hidden_states[layer]``: 0 is the embeddings). Each token's projection is
    ``weights · h``, with ``h`` the hidden state of the position the token was chosen from."""

    layer: int
    weights: torch.Tensor  # float32, hidden size

    def project(self, hidden: torch.Tensor) -> float:
        return float(torch.dot(hidden.float(), self.weights))


def probe_for(lm: LoadedModel, profiles_dir: str = "") -> Probe | None:
    """The probe of ``lm``'s calibration profile, when it has one that fits this model (else None)."""
    from services.alerter import profile

    found = profile.for_model(lm.name, profiles_dir)
    spec = found.probe if found is not None else None
    if spec is None:
        return None
    layers = int(getattr(lm.model.config, "num_hidden_layers", -1))
    hidden = int(getattr(lm.model.config, "hidden_size", -1))
    if not 0 <= spec.layer <= layers or len(spec.weights) != hidden:
        log.warning(
            "the calibration profile's probe does not fit this model; no probe",
            extra={"profile": found.id if found else None, "layer": spec.layer, "hidden_size": hidden},
        )
        return None
    return Probe(spec.layer, torch.tensor(spec.weights, dtype=torch.float32, device=lm.device))


def generate(
    lm: LoadedModel, request: GenerationRequest, texts: TokenTexts, probe: Probe | None = None
) -> Iterator[Step]:
    """Stream the tokens of one request (see services/generator/engine.py for the protocol)."""
    ids = prompt_ids(lm, request)
    if len(ids) >= lm.context_length:
        raise PromptTooLongError(len(ids), lm.context_length)
    if request.sampling.top_k > lm.vocab_size:
        raise InvalidJobError(f"top_k {request.sampling.top_k} exceeds the vocabulary ({lm.vocab_size})", param="top_k")
    budget = min(request.sampling.max_tokens, lm.context_length - len(ids))
    sampler = Sampler(request.sampling, lm.device)
    decoder = IncrementalDecoder(lambda t: lm.tokenizer.decode(t, clean_up_tokenization_spaces=False), ids)
    stops = StopMatcher(request.sampling.stop)
    k = min(request.top_k_alternatives, lm.vocab_size)

    cache = None
    for start in range(0, len(ids) - PREFILL_CHUNK, PREFILL_CHUNK):  # long prompts in chunks, between others' steps
        _logits, cache, _ = _forward(lm, ids[start : start + PREFILL_CHUNK], cache, 0)
        yield Prefilling(start + PREFILL_CHUNK, len(ids))
    last = (max(len(ids) - 1, 0) // PREFILL_CHUNK) * PREFILL_CHUNK
    logits, cache, hidden = _forward(lm, ids[last:], cache, 0, probe)
    produced = 0
    while True:
        token = sampler.choose(logits)
        if token in lm.eos_ids:
            held = stops.flush() + decoder.flush()
            if held:  # text still held back must reach the output: it rides on the end-of-sequence token
                yield _describe(lm, logits, token, held, k, request.full_logits, texts, probe, hidden)
            yield Finished("eos", len(ids))
            return
        text, hit = stops.feed(decoder.add(token))
        produced += 1
        if produced >= budget and not hit:
            text += stops.feed(decoder.flush())[0] + stops.flush()
        yield _describe(lm, logits, token, text, k, request.full_logits, texts, probe, hidden)
        if hit:
            yield Finished("stop", len(ids))
            return
        if produced >= budget:
            yield Finished("max_tokens", len(ids))
            return
        logits, cache, hidden = _forward(lm, [token], cache, produced, probe)


def _forward(
    lm: LoadedModel, ids: list[int], cache: Any, produced: int, probe: Probe | None = None
) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
    """Run the model on ``ids`` after ``cache``: the float32 logits of the last position, the cache,
    and with a probe the last position's hidden state at the probe's layer."""
    try:
        with torch.inference_mode():
            inputs = torch.tensor([ids], dtype=torch.long, device=lm.device)
            extra = {"output_hidden_states": True} if probe is not None else {}
            out = lm.model(input_ids=inputs, use_cache=True, logits_to_keep=1, **{lm.cache_arg: cache}, **extra)
            logits = out.logits[0, -1].float()
            hidden = out.hidden_states[probe.layer][0, -1] if probe is not None else None
            broken = bool(torch.isnan(logits).any()) or not bool(torch.isfinite(logits.max()))
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise DeviceMemoryError(str(lm.device), produced) from None
    if broken:
        raise NumericalError(produced, str(lm.dtype).removeprefix("torch."))
    new_cache = out.cache if lm.cache_arg == "cache" else out.past_key_values
    return logits, new_cache, hidden


def _describe(
    lm: LoadedModel,
    logits: torch.Tensor,
    token: int,
    text: str,
    k: int,
    full_logits: bool,
    texts: TokenTexts,
    probe: Probe | None = None,
    hidden: torch.Tensor | None = None,
) -> TokenStep:
    """The step's record: logprob of ``token`` and the top-k under the raw distribution, and the logits."""
    with torch.inference_mode():
        logprobs = torch.log_softmax(logits, dim=-1)
        top_values, top_ids = torch.topk(logprobs, k)
        logprob = float(logprobs[token])
        blob = logits_bytes(logits.to(torch.float16).cpu().numpy()) if full_logits else None
    top = [
        TopKAlternative(token_id=i, text=texts(i), logprob=min(v, 0.0))
        for i, v in zip(top_ids.tolist(), top_values.tolist(), strict=True)
    ]
    return TokenStep(
        token_id=token,
        text=text,
        logprob=min(logprob, 0.0),
        top_k=top,
        vocab_size=lm.vocab_size,
        logits=blob,
        probe=probe.project(hidden) if probe is not None and hidden is not None else None,
    )


def generate_samples(lm: LoadedModel, requests: Sequence[GenerationRequest], texts: TokenTexts) -> Iterator[list[Step]]:
    """Several samples of one prompt decoded as one batch (see ``Engine.stream_samples``).

    The prompt is read once and its KV cache repeated per sample; each round is one forward of the
    samples still running, each with its own sampler (seed), stop strings and budget. A finished
    sample leaves the batch and repeats its ``Finished`` in later rounds.
    """
    first = requests[0]
    if any((r.prompt, r.messages) != (first.prompt, first.messages) for r in requests):
        raise InvalidJobError("batched samples must share one prompt", param="prompt")
    ids = prompt_ids(lm, first)
    if len(ids) >= lm.context_length:
        raise PromptTooLongError(len(ids), lm.context_length)
    n = len(requests)
    rows = [_Row(lm, r, ids) for r in requests]
    cache = None
    for start in range(0, len(ids) - PREFILL_CHUNK, PREFILL_CHUNK):
        _logits, cache, _ = _forward(lm, ids[start : start + PREFILL_CHUNK], cache, 0)
    last = (max(len(ids) - 1, 0) // PREFILL_CHUNK) * PREFILL_CHUNK
    logits, cache, _ = _forward(lm, ids[last:], cache, 0)
    cache.batch_repeat_interleave(n)
    batch_logits = logits.unsqueeze(0).expand(n, -1)
    active = list(range(n))  # rows in the batch, in batch order
    produced = 0
    while active:
        steps: list[Step] = [row.finished or Finished("eos") for row in rows]
        for b, i in enumerate(active):
            steps[i] = rows[i].step(batch_logits[b], texts)
        yield steps
        keep = [b for b, i in enumerate(active) if rows[i].finished is None]
        if not keep:
            return
        if len(keep) < len(active):
            cache.batch_select_indices(torch.tensor(keep, device=lm.device))
        active = [active[b] for b in keep]
        produced += 1
        batch_logits, cache = _forward_rows(lm, [rows[i].token for i in active], cache, produced)


class _Row:
    """One sample of :func:`generate_samples`: its sampler, decoder, stops and budget."""

    def __init__(self, lm: LoadedModel, request: GenerationRequest, ids: list[int]) -> None:
        self.lm = lm
        self.sampler = Sampler(request.sampling, lm.device)
        self.decoder = IncrementalDecoder(lambda t: lm.tokenizer.decode(t, clean_up_tokenization_spaces=False), ids)
        self.stops = StopMatcher(request.sampling.stop)
        self.budget = min(request.sampling.max_tokens, lm.context_length - len(ids))
        self.produced = 0
        self.token = 0
        self.finished: Finished | None = None

    def step(self, logits: torch.Tensor, texts: TokenTexts) -> Step:
        """This round's step; sets ``finished`` when it is the sample's last."""
        lm = self.lm
        token = self.token = self.sampler.choose(logits)
        if token in lm.eos_ids:
            self.finished = Finished("eos")
            held = self.stops.flush() + self.decoder.flush()
            return _describe(lm, logits, token, held, 1, False, texts) if held else self.finished
        text, hit = self.stops.feed(self.decoder.add(token))
        self.produced += 1
        if self.produced >= self.budget and not hit:
            text += self.stops.feed(self.decoder.flush())[0] + self.stops.flush()
        if hit or self.produced >= self.budget:
            self.finished = Finished("stop" if hit else "max_tokens")
        return _describe(lm, logits, token, text, 1, False, texts)


def _forward_rows(lm: LoadedModel, tokens: list[int], cache: Any, produced: int) -> tuple[torch.Tensor, Any]:
    """One batched step: the next token of each row after ``cache``; the float32 logits per row."""
    try:
        with torch.inference_mode():
            inputs = torch.tensor([[t] for t in tokens], dtype=torch.long, device=lm.device)
            out = lm.model(input_ids=inputs, use_cache=True, logits_to_keep=1, **{lm.cache_arg: cache})
            logits = out.logits[:, -1].float()
            broken = bool(torch.isnan(logits).any())
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise DeviceMemoryError(str(lm.device), produced) from None
    if broken:
        raise NumericalError(produced, str(lm.dtype).removeprefix("torch."))
    return logits, out.cache if lm.cache_arg == "cache" else out.past_key_values
