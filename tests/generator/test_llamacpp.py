"""The llama.cpp engine on the embedded GGUF: llama.cpp's own greedy output token for token, the same
prompt ids (chat template) as the transformers engine, the last position's full logits, stops, seeds,
concurrent jobs batched (tests/generator/test_llamacpp_batching.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from services.common.contracts import ChatMessage, SamplingParams
from services.generator.engine import Finished, GenerationRequest, TokenStep, engine_class
from services.generator.errors import ModelLoadError, PromptTooLongError
from services.generator.llamacpp import LlamaCppEngine, LlamaCppOptions

CHAT = [ChatMessage(role="user", content="What is the capital of France?")]


def request(
    *, prompt: str | None = None, messages: list[ChatMessage] | None = None, full: bool = False, **sampling: Any
) -> GenerationRequest:
    params = SamplingParams(**{"temperature": 0.0, "max_tokens": 24, **sampling})
    return GenerationRequest("s", prompt, messages, params, full, 20)


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    e = LlamaCppEngine("embedded", LlamaCppOptions(llama_threads=2, llama_n_ctx=1024, max_concurrent_jobs=2))
    e.load()
    yield e
    e.close()


def tokens(steps: list[Any]) -> list[TokenStep]:
    return [s for s in steps if isinstance(s, TokenStep)]


def test_registered_and_named(engine: LlamaCppEngine) -> None:
    assert engine_class("llama.cpp") is LlamaCppEngine
    assert engine.display_name == "SmolLM2-135M-Instruct" and engine.vocab_size == 49152


@pytest.mark.parametrize(("prompt", "messages"), [("The capital of France is", None), (None, CHAT)])
def test_greedy_is_llama_cpps_own_greedy(engine: LlamaCppEngine, prompt: str | None, messages: Any) -> None:
    from llama_cpp import Llama

    req = request(prompt=prompt, messages=messages, max_tokens=32)
    mine = [t.token_id for t in tokens(list(engine.stream(req)))]
    # llama.cpp's own generate() with the attention kernel the engine uses (flash attention, as
    # llama.cpp's "auto" picks on the CPU); with the other kernel the logits differ in the last bits
    ref = Llama(str(engine.path), n_ctx=1024, n_threads=2, flash_attn=True, verbose=False)
    theirs: list[int] = []
    for token in ref.generate(engine.prompt_ids(req), temp=0.0, top_k=1, repeat_penalty=1.0):
        if token == ref.token_eos() or len(theirs) == 32:
            break
        theirs.append(token)
    ref.close()
    assert mine == theirs and len(mine) > 5


def test_prompt_ids_are_the_transformers_engines() -> None:
    """The chat template is the GGUF's own, the one transformers reads from the same file."""
    from services.generator.hf.decoding import prompt_ids
    from services.generator.hf.loading import load

    lm = load("embedded", device="cpu", dtype="float32", load_in_8bit=False, model_cache_dir="data/model-cache")
    e = LlamaCppEngine("embedded", LlamaCppOptions(llama_n_ctx=512, max_concurrent_jobs=1))
    e.load()
    convo = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Capital? é 中文")]
    for req in (request(prompt="The capital of France is é 中文"), request(messages=CHAT), request(messages=convo)):
        assert e.prompt_ids(req) == prompt_ids(lm, req)
    e.close()


def test_each_step_carries_the_last_positions_full_logits(engine: LlamaCppEngine) -> None:
    for step in tokens(list(engine.stream(request(prompt="Once upon a time", full=True, max_tokens=6)))):
        assert step.logits is not None and len(step.logits) == 2 * engine.vocab_size
        z = np.frombuffer(step.logits, "<f2").astype(np.float64)
        logprobs = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
        assert int(np.argmax(z)) == step.token_id  # greedy chose from these very logits
        assert step.logprob == pytest.approx(logprobs[step.token_id], abs=0.02)  # float16 rounding
        assert [a.token_id for a in step.top_k][:1] == [step.token_id]
        assert [a.logprob for a in step.top_k] == sorted((a.logprob for a in step.top_k), reverse=True)


def test_stop_sequence_cuts_the_text(engine: LlamaCppEngine) -> None:
    steps = list(engine.stream(request(prompt="The capital of France is", stop=["\n"], max_tokens=40)))
    assert steps[-1] == Finished("stop", prompt_tokens=5)
    text = "".join(t.text for t in tokens(steps))
    assert text and "\n" not in text


def test_same_seed_same_text(engine: LlamaCppEngine) -> None:
    def run(seed: int) -> str:
        steps = engine.stream(request(prompt="My favourite animal is", temperature=1.0, seed=seed, max_tokens=16))
        return "".join(t.text for t in tokens(list(steps)))

    assert run(3) == run(3)
    assert len({run(s) for s in (1, 2, 3, 4)}) > 1


def test_interleaved_jobs_each_have_their_own_context(engine: LlamaCppEngine) -> None:
    a = request(prompt="The capital of France is", max_tokens=12)
    b = request(messages=CHAT, max_tokens=12)
    alone = [[t.token_id for t in tokens(list(engine.stream(r)))] for r in (a, b)]
    streams = [engine.stream(a), engine.stream(b)]
    together: list[list[int | None]] = [[], []]
    done = [False, False]
    while not all(done):  # one step of each in turn, as the worker's compute thread does
        for i, s in enumerate(streams):
            if done[i]:
                continue
            step = next(s, None)
            if step is None or isinstance(step, Finished):
                done[i] = True
            elif isinstance(step, TokenStep):
                together[i].append(step.token_id)
    assert together == alone


def test_a_prompt_longer_than_the_context_is_refused(engine: LlamaCppEngine) -> None:
    with pytest.raises(PromptTooLongError):
        list(engine.stream(request(prompt="word " * 2000)))


def test_only_gguf_files_load() -> None:
    with pytest.raises(ModelLoadError, match="GGUF"):
        LlamaCppEngine("HuggingFaceTB/SmolLM2-135M-Instruct", LlamaCppOptions()).load()
