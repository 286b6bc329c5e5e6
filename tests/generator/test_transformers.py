"""The transformers engine end to end: the real embedded model through the real Redis.

The model is loaded once for the module (from the cache under data/model-cache after the first run).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.common.bus import Bus
from services.common.codec import logits_array
from services.common.contracts import ChatMessage, SamplingParams
from services.common.settings import CommonSettings
from services.generator.engine import GenerationRequest, Step, TokenStep
from services.generator.hf.engine import TransformersEngine
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings
from services.generator.text import IncrementalDecoder
from tests.generator.support import cancel, running, sessions, submit, tokens, wait_end, wait_tokens

pytestmark = [pytest.mark.slow, pytest.mark.model]

PARIS = "The capital of France is"


@pytest.fixture(scope="module")
def pool() -> Iterator[EnginePool]:
    import torch

    threads = torch.get_num_threads()
    pool = EnginePool(
        GeneratorSettings(engine="transformers", max_loaded_models=3, torch_threads=1)
    )  # robust on a shared host
    pool.get()
    yield pool
    pool.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def engine(pool: EnginePool) -> TransformersEngine:
    engine = pool.get()
    assert isinstance(engine, TransformersEngine)
    return engine


@pytest.fixture
def gen_settings(settings: CommonSettings) -> GeneratorSettings:
    return GeneratorSettings(**(settings.model_dump() | {"max_loaded_models": 3}))


@pytest.fixture(scope="module")
def tiny_mistral(tmp_path_factory: pytest.TempPathFactory, engine: TransformersEngine) -> Path:
    """A MistralForCausalLM with random weights and the SmolLM2 tokenizer, saved as a local model."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    assert engine.loaded is not None
    tokenizer = engine.loaded.tokenizer
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    model = MistralForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-mistral")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


async def test_greedy_paris_with_full_logits(gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "paris", PARIS, temperature=0, max_tokens=6)
        end = await wait_end(bus, "paris")
    toks = await tokens(bus, "paris")
    text = "".join(t.text for t in toks)
    assert "Paris" in text
    assert (end.status, end.tokens, end.model) == ("finished", len(toks), "SmolLM2-135M-Instruct")
    for t in toks:
        assert (t.distribution, t.vocab_size, t.logits_dtype, t.model) == ("full", 49152, "float16", end.model)
        assert t.sampling == SamplingParams(temperature=0, max_tokens=6)
        assert len(t.top_k) == 20
        assert t.top_k[0].token_id == t.token_id  # greedy: the emitted token is the most likely one
        assert [a.logprob for a in t.top_k] == sorted((a.logprob for a in t.top_k), reverse=True)


async def test_logprobs_are_those_of_the_published_logits(
    gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool
) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "lp", "Once upon a time", temperature=1.0, seed=7, max_tokens=8)
        await wait_end(bus, "lp")
    toks = await tokens(bus, "lp")
    assert len(toks) == 8
    for t in toks:
        ref = log_softmax(logits_array(t))
        assert t.token_id is not None
        assert t.logprob == pytest.approx(ref[t.token_id], abs=0.02)
        top_ids = [a.token_id for a in t.top_k]
        assert [a.logprob for a in t.top_k] == pytest.approx(ref[top_ids].tolist(), abs=0.02)
        assert set(top_ids) >= set(np.argsort(-ref)[:5].tolist()) - {None}


async def test_token_texts_concatenate_to_the_decoded_output(
    gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool, engine: TransformersEngine
) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "emoji", "héllo 日本語 🎉", temperature=0.9, seed=3, max_tokens=16)
        await wait_end(bus, "emoji")
    toks = await tokens(bus, "emoji")
    assert engine.loaded is not None
    ids = [t.token_id for t in toks]
    decoded = engine.loaded.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    assert "".join(t.text for t in toks) == decoded


def test_multibyte_characters_come_out_whole(engine: TransformersEngine) -> None:
    assert engine.loaded is not None
    tok = engine.loaded.tokenizer
    ids = tok("héllo 日本語 🎉 x").input_ids
    decoder = IncrementalDecoder(lambda t: tok.decode(t), tok("Say:").input_ids)
    deltas = [decoder.add(i) for i in ids]
    assert "".join(deltas) == "héllo 日本語 🎉 x"
    assert all("\ufffd" not in d for d in deltas)
    assert " 🎉" in deltas  # the emoji is three byte tokens: the first two hold their text back
    assert deltas.count("") >= 2


async def test_same_seed_same_text(gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool) -> None:
    async with running(gen_settings, bus, pool):
        for sid, seed in (("s1", 11), ("s2", 11), ("s3", 12)):
            await submit(
                bus, sid, "My favourite food is", temperature=1.2, top_p=0.95, top_k=50, seed=seed, max_tokens=6
            )
        for sid in ("s1", "s2", "s3"):
            await wait_end(bus, sid)
    runs = {sid: [t.token_id for t in await tokens(bus, sid)] for sid in ("s1", "s2", "s3")}
    assert runs["s1"] == runs["s2"]
    assert runs["s1"] != runs["s3"]


async def test_stop_sequence_is_trimmed(gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "stop1", PARIS, temperature=0, max_tokens=12, stop=["\n\n"])
        await submit(bus, "stop2", PARIS, temperature=0, max_tokens=12, stop=["answer"])
        first, second = await wait_end(bus, "stop1"), await wait_end(bus, "stop2")
    assert (first.status, first.reason) == ("finished", "stop")
    assert "".join(t.text for t in await tokens(bus, "stop1")) == " Paris."
    assert second.reason == "stop"
    assert "".join(t.text for t in await tokens(bus, "stop2")) == " Paris.\n\nThe "


async def test_top_k_only_mode(gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "topk", PARIS, temperature=0, max_tokens=3, logits_mode="top_k")
        await wait_end(bus, "topk")
    toks = await tokens(bus, "topk")
    assert [(t.distribution, t.logits, t.logits_dtype, len(t.top_k)) for t in toks] == [("top_k", None, None, 20)] * 3


def test_chat_messages_use_the_chat_template(engine: TransformersEngine) -> None:
    from services.generator.hf.decoding import prompt_ids

    assert engine.loaded is not None
    request = GenerationRequest(
        session_id="x",
        prompt=None,
        messages=[ChatMessage(role="user", content="What is the capital of France?")],
        sampling=SamplingParams(),
        full_logits=False,
        top_k_alternatives=5,
    )
    text = engine.loaded.tokenizer.decode(prompt_ids(engine.loaded, request))
    assert text.startswith("<|im_start|>")
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


async def test_cancel_a_running_job(gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "cx", "Once upon a time, in a land far away,", temperature=0, max_tokens=300)
        await wait_tokens(bus, "cx", 2)
        await cancel(bus, "cx")
        seen = len(await tokens(bus, "cx"))
        end = await wait_end(bus, "cx")
    assert end.status == "cancelled"
    assert seen <= (end.tokens or 0) <= seen + 1
    assert end.tokens == len(await tokens(bus, "cx"))


async def test_two_jobs_progress_together(gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "ja", "Once upon a time, in a land far away,", temperature=0, max_tokens=8)
        await submit(bus, "jb", "Once upon a time, in a land far away,", temperature=0, max_tokens=8)
        a, b = await wait_end(bus, "ja"), await wait_end(bus, "jb")
    ta, tb = await tokens(bus, "ja"), await tokens(bus, "jb")
    assert (a.status, a.tokens, b.status, b.tokens) == ("finished", 8, "finished", 8)
    assert [t.token_id for t in ta] == [t.token_id for t in tb]  # interleaving does not change the text
    assert tb[0].ts_ns < ta[-1].ts_ns  # b started before a was done
    assert ta[0].ts_ns < tb[-1].ts_ns


async def test_bad_requests_fail_and_the_worker_goes_on(
    gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool
) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "nopath", model="/nonexistent/model-folder", max_tokens=2)
        await submit(bus, "toolong", "hello " * 9000, max_tokens=2)
        await submit(bus, "badk", PARIS, top_k=60000, max_tokens=2)
        await submit(bus, "after", PARIS, temperature=0, max_tokens=2)
        ends = {sid: await wait_end(bus, sid) for sid in ("nopath", "toolong", "badk", "after")}
    assert ends["nopath"].status == "failed"
    assert "cannot load model '/nonexistent/model-folder': no such folder" in (ends["nopath"].reason or "")
    assert ends["toolong"].status == "failed"
    assert "context holds 8192" in (ends["toolong"].reason or "")
    assert ends["badk"].status == "failed"
    assert "top_k 60000 exceeds the vocabulary (49152)" in (ends["badk"].reason or "")
    assert (ends["after"].status, ends["after"].tokens) == ("finished", 2)
    assert [e.status for e in await sessions(bus, "after")] == ["started", "finished"]


async def test_tiny_mistral_by_local_path(
    gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool, tiny_mistral: Path
) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "mistral", PARIS, model=str(tiny_mistral), temperature=0.7, seed=5, max_tokens=6)
        end = await wait_end(bus, "mistral")
    toks = await tokens(bus, "mistral")
    assert (end.status, end.model) == ("finished", str(tiny_mistral))
    assert end.tokens == len(toks) > 0
    assert pool.get(str(tiny_mistral)).loaded.model.config.model_type == "mistral"  # type: ignore[attr-defined]
    for t in toks:
        assert (t.distribution, t.vocab_size, t.model) == ("full", 49152, str(tiny_mistral))
        assert t.logprob == pytest.approx(log_softmax(logits_array(t))[t.token_id], abs=0.02)


def test_embedded_model_is_cached_dequantised(engine: TransformersEngine) -> None:
    assert engine.loaded is not None
    assert engine.loaded.source in ("gguf", "cache")
    folders = list(Path(GeneratorSettings().model_cache_dir).glob("SmolLM2-135M-Instruct*"))
    assert len(folders) == 1
    config = json.loads((folders[0] / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["vocab_size"] == 49152
    assert (folders[0] / "model.safetensors").stat().st_size > 400e6  # fp32 weights, not the 98 MB GGUF


async def test_service_process_runs_jobs_and_stops_on_sigterm(
    settings: CommonSettings, bus: Bus, tiny_mistral: Path
) -> None:
    """``python -m services.generator`` as deployed: loads its model, reports ready, runs a job, exits 0."""
    import asyncio
    import os
    import signal
    import sys

    from services.common.health import read_heartbeats
    from tests.waiting import eventually

    env = os.environ | {
        "UQ_REDIS_URL": settings.redis_url,
        "UQ_STREAM_PREFIX": settings.stream_prefix,
        "UQ_MODEL": str(tiny_mistral),
        "UQ_TORCH_THREADS": "1",
        "UQ_HEARTBEAT_INTERVAL_S": "0.2",
        "UQ_BLOCK_MS": "100",
        "HF_HUB_OFFLINE": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.generator", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        await submit(bus, "proc", PARIS, temperature=0, max_tokens=4)
        end = await wait_end(bus, "proc", timeout_s=90)
        await submit(bus, "hub", PARIS, max_tokens=4, model="uq-test/not-in-any-cache")
        hub = await wait_end(bus, "hub", timeout_s=30)
        beats: list[dict[str, Any]] = []

        async def ready() -> bool:  # heartbeats are periodic: wait for one written after the model loaded
            nonlocal beats
            beats = [b for b in await read_heartbeats(bus.redis, settings) if b["service"] == "generator"]
            return bool(beats) and beats[0]["status"] == "ready"

        await eventually(ready, what=lambda: f"a ready heartbeat from the generator; last: {beats}", timeout_s=10)
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert (end.status, end.tokens, end.model) == ("finished", 4, str(tiny_mistral))
    assert [(b["status"], b["details"]["model"]) for b in beats] == [("ready", str(tiny_mistral))], beats
    policy = beats[0]["details"]["model_policy"]
    assert {k: v for k, v in policy.items() if k != "cached"} == {
        "default": str(tiny_mistral),
        "aliases": [],
        "loaded": [str(tiny_mistral)],
        "job_models": True,
        "hub": "offline",  # HF_HUB_OFFLINE: decided at start, the hub never asked
    }
    assert (hub.status, "hub is unreachable" in (hub.reason or "")) == ("failed", True), hub.reason
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b'"msg": "service stopped"' in err
    assert [b for b in await read_heartbeats(bus.redis, settings) if b["service"] == "generator"] == []


async def test_nan_logits_fail_the_job(
    gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool, engine: TransformersEngine
) -> None:
    """A model whose output is NaN (e.g. float16 overflow) fails the job with a way out, not garbage."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from services.generator.hf.loading import from_objects

    assert engine.loaded is not None
    tokenizer = engine.loaded.tokenizer
    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
    )  # fmt: skip
    broken = MistralForCausalLM(config)
    with torch.no_grad():
        broken.lm_head.weight[7] = float("nan")
    pool.add("nan-model", TransformersEngine.from_loaded(from_objects("nan-model", broken, tokenizer)))
    async with running(gen_settings, bus, pool):
        await submit(bus, "nan", PARIS, model="nan-model", max_tokens=3)
        end = await wait_end(bus, "nan")
    assert (end.status, end.tokens, end.model) == ("failed", 0, "nan-model")
    assert end.reason == (
        "the model produced NaN or infinite logits at token 0 in float32; "
        "its weights may be damaged: check the model files, or try another UQ_DTYPE"
    )
    assert await tokens(bus, "nan") == []


def test_long_prompts_are_read_in_chunks_with_the_same_result(
    engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.generator.engine import Finished, Prefilling, TokenStep
    from services.generator.hf import decoding

    request = GenerationRequest(
        session_id="x",
        prompt="The capital of France is a city that",
        messages=None,
        sampling=SamplingParams(temperature=0, max_tokens=4),
        full_logits=False,
        top_k_alternatives=3,
    )
    whole = list(engine.stream(request))
    monkeypatch.setattr(decoding, "PREFILL_CHUNK", 3)
    chunked = list(engine.stream(request))
    assert engine.loaded is not None
    n_prompt = len(decoding.prompt_ids(engine.loaded, request))
    prefill = [s for s in chunked if isinstance(s, Prefilling)]
    assert [p.done for p in prefill] == list(range(3, n_prompt, 3))
    assert all(not isinstance(s, Prefilling) for s in whole)
    steps_whole = [s for s in whole if isinstance(s, TokenStep)]
    steps_chunked = [s for s in chunked if isinstance(s, TokenStep)]
    assert [s.token_id for s in steps_chunked] == [s.token_id for s in steps_whole]
    assert [s.logprob for s in steps_chunked] == pytest.approx([s.logprob for s in steps_whole], abs=1e-4)
    assert chunked[-1] == whole[-1] == Finished("max_tokens", n_prompt)


def test_batched_samples_equal_the_same_samples_drawn_one_by_one(engine: TransformersEngine) -> None:
    """Verification samples decode as one batch: each must be exactly what its request gives alone
    (own seed, own stop string, own budget; finished samples leave the batch)."""
    from services.generator import verify

    prompt = [ChatMessage(role="user", content="Name a fruit. Answer in one sentence.")]
    base = GenerationRequest("s1", None, prompt, SamplingParams(temperature=0.0, seed=3, max_tokens=10), False, 1)
    requests = [verify.sample_request(base, i, 1.0, 10) for i in range(4)]
    requests[1] = dataclasses.replace(requests[1], sampling=requests[1].sampling.model_copy(update={"stop": [" "]}))
    requests[2] = dataclasses.replace(requests[2], sampling=requests[2].sampling.model_copy(update={"max_tokens": 3}))

    def texts(steps: Iterator[Step]) -> tuple[list[int], str]:
        tokens = [s for s in steps if isinstance(s, TokenStep)]
        return [t.token_id for t in tokens], "".join(t.text for t in tokens)

    alone = [texts(engine.stream(r)) for r in requests]
    rounds = list(engine.stream_samples(requests))
    together = [texts(iter(step[i] for step in rounds)) for i in range(len(requests))]
    assert together == alone
    assert len({text for _, text in alone}) > 1  # the seeds differ
    assert len(alone[2][0]) <= 3
