"""The engine extension point: what turns a job into a stream of token steps.

An engine is a class with capability attributes, a strict options model and one streaming method::

    from services.generator.engine import Engine, EngineOptions, register_engine

    class EchoOptions(EngineOptions):
        delay_s: float = 0.0

    @register_engine
    class EchoEngine(Engine):
        name = "echo"
        Options = EchoOptions
        full_logits = False
        def load(self) -> None: ...
        def stream(self, request: GenerationRequest) -> Iterator[Step]: ...

and is chosen with ``UQ_ENGINE=mypackage.engines:EchoEngine`` (importing the module registers it;
``UQ_ENGINE_OPTIONS='{"delay_s": 0.1}'`` sets its options, validated by its ``Options`` model).
The built-in ``transformers`` engine (services/generator/hf/) registers the same way; it is imported
only when it is chosen, so torch and transformers load only in a process that generates.

``stream`` is a plain (synchronous) generator: the worker advances it one step at a time on its
compute thread and publishes each step, so an engine needs no asyncio and no Redis. Each
``TokenStep`` carries the token, its text (the texts of a stream concatenate to the output), the
logprob under the raw distribution, the top alternatives and, when asked, the raw logits as float16
bytes; the last item is ``Finished(reason)``. Errors are :class:`GeneratorError` subclasses whose
message the user sees.
"""

from __future__ import annotations

import importlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from services.common.contracts import ChatMessage, SamplingParams, TopKAlternative, TopKSource
from services.generator.errors import EngineNotFoundError, GeneratorError

log = logging.getLogger(__name__)

#: Engines shipped with the generator: name → module that registers it when imported.
BUILTIN_ENGINES: dict[str, str] = {
    "transformers": "services.generator.hf.engine",
    "openai": "services.generator.upstream",
    "llama.cpp": "services.generator.llamacpp",
}
#: Entry-point group through which installed packages may offer engines.
ENTRY_POINT_GROUP = "uq.generator.engines"
#: ``UQ_ENGINE=auto`` (the default): the fastest engine here that runs the model, see resolve_engine.
AUTO = "auto"

FinishReason = Literal["eos", "max_tokens", "stop"]


class EngineOptions(BaseModel):
    """Base of every engine's options: strict, so a misspelt option is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One job as an engine sees it."""

    session_id: str
    prompt: str | None
    messages: list[ChatMessage] | None
    sampling: SamplingParams
    full_logits: bool
    top_k_alternatives: int


@dataclass(frozen=True, slots=True)
class TokenStep:
    """One generated token and what the model knew when it chose it."""

    token_id: int | None  # None when the producer knows only the text (an upstream server)
    text: str
    logprob: float | None  # natural log, raw distribution (before temperature / top-p / top-k); None = unknown
    top_k: list[TopKAlternative]
    vocab_size: int | None
    logits: bytes | None = None  # little-endian float16, vocab_size values, when full logits were asked for
    probe: float | None = None  # hidden-state probe projection, when the model's profile has a probe
    top_k_source: TopKSource | None = None  # upstream engines: whose top-k this is and what it means


@dataclass(frozen=True, slots=True)
class Prefilling:
    """Optional: part of a long prompt has been read (no token yet). Yielding it between chunks lets
    the worker serve its other jobs meanwhile, so a long prompt does not stall them."""

    done: int
    total: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The stream's last item: why generation ended, and (optional) how many prompt tokens were read."""

    reason: FinishReason
    prompt_tokens: int | None = None  # lands on the session's terminal entry (OpenAI's usage.prompt_tokens)


Step = TokenStep | Prefilling | Finished


class Engine(ABC):
    """A model that streams tokens. Subclasses set the class attributes and implement two methods."""

    #: Registry key, the value of ``UQ_ENGINE``.
    name: ClassVar[str]
    #: Written on every token and session entry as ``provider``.
    provider: ClassVar[str] = "custom"
    #: Options model (subclass of EngineOptions), filled from same-named settings and ``UQ_ENGINE_OPTIONS``.
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    #: Capabilities the worker relies on.
    full_logits: ClassVar[bool] = False  # can publish the raw logits of the whole vocabulary
    chat: ClassVar[bool] = True  # accepts chat messages
    seeded: ClassVar[bool] = False  # the same seed gives the same text
    hub_models: ClassVar[bool] = False  # loads models by Hugging Face hub id (services/common/model_policy.py)
    #: False for engines whose steps wait on the network (upstream servers): the worker then advances
    #: each job's stream on a thread of its own instead of its one compute thread.
    compute_bound: ClassVar[bool] = True

    def __init__(self, model: str, options: EngineOptions) -> None:
        self.model = model
        self.options = options
        #: The name written on events; engines may replace it with a nicer one when loading.
        self.display_name = model

    @abstractmethod
    def load(self) -> None:
        """Load the model (blocking; called once, off the event loop). Raise ModelLoadError on failure."""

    @abstractmethod
    def stream(self, request: GenerationRequest) -> Iterator[Step]:
        """Yield one TokenStep per generated token (Prefilling while reading a long prompt), then one Finished. Raise GeneratorError to fail the job."""

    def stream_samples(self, requests: Sequence[GenerationRequest]) -> Iterator[list[Step]] | None:
        """Optional: several requests of one prompt (each its own sampling) decoded as one batch,
        yielding per round one Step per request (a finished request repeats its Finished). None when
        the engine cannot; the caller then streams them one by one (verification samples use this)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model's memory (called when the worker unloads it)."""

    @classmethod
    def build_options(cls, settings: Any, overrides: Mapping[str, Any]) -> EngineOptions:
        """Options from the settings whose names match option fields, then ``overrides`` on top."""
        fields = cls.Options.model_fields
        values = {name: getattr(settings, name) for name in fields if hasattr(settings, name)}
        values.update(overrides)
        try:
            return cls.Options.model_validate(values)
        except ValidationError as exc:
            raise GeneratorError(f"invalid options for engine {cls.name!r} (UQ_ENGINE_OPTIONS): {exc}") from None


E = TypeVar("E", bound=type[Engine])
_REGISTRY: dict[str, type[Engine]] = {}
_LOCK = threading.Lock()


def register_engine(cls: E) -> E:
    """Class decorator: make an engine available under ``cls.name`` (and its ``module:Class`` path)."""
    with _LOCK:
        _REGISTRY[cls.name] = cls
        _REGISTRY[f"{cls.__module__}:{cls.__qualname__}"] = cls
    return cls


def engine_class(name: str) -> type[Engine]:
    """The engine registered as ``name``: a built-in, an entry point, or ``package.module:Class``."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTIN_ENGINES:
        importlib.import_module(BUILTIN_ENGINES[name])
    elif ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise EngineNotFoundError(name, known_engines()) from exc
        if not (isinstance(obj, type) and issubclass(obj, Engine)):
            raise EngineNotFoundError(name, known_engines())
        if name not in _REGISTRY:
            register_engine(obj)
    else:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                register_engine(ep.load())
    if name not in _REGISTRY:
        raise EngineNotFoundError(name, known_engines())
    return _REGISTRY[name]


def resolve_engine(name: str, model: str, device: str = "auto") -> str:
    """The engine ``name`` stands for with ``model``: itself, or for ``auto`` the fastest engine that
    runs the model here: ``llama.cpp`` for the embedded model and GGUF files on a CPU when
    llama-cpp-python is installed and loads (2.8 × the transformers engine on this CPU, with the same
    audit quality: docs/generator.md), else ``transformers`` (hub ids, model folders, and any model
    on a GPU: ``device`` ``cuda…``, or ``auto`` where an NVIDIA GPU is present, since the llama.cpp
    the set-up builds is CPU-only unless ``UQ_LLAMA_CMAKE_ARGS`` says otherwise).

    The engine is chosen once per worker from its default model: a job naming a hub model on a
    worker whose engine is llama.cpp is refused (``UQ_ENGINE=transformers`` serves them)."""
    if name != AUTO:
        return name
    from services.generator.embedded import EMBEDDED, EMBEDDED_NAME

    gguf = model in (EMBEDDED, EMBEDDED_NAME) or model.endswith(".gguf")
    gpu = device.startswith("cuda") or (device == "auto" and Path("/proc/driver/nvidia/version").exists())
    if not gguf or gpu:
        return "transformers"
    try:
        import llama_cpp  # noqa: F401 - installed, and its shared libraries load
    except Exception as exc:  # a broken build raises RuntimeError as well as ImportError or OSError
        if not isinstance(exc, ImportError):
            log.warning(
                "llama-cpp-python does not load; the transformers engine runs the model", extra={"error": str(exc)}
            )
        return "transformers"
    return "llama.cpp"


def known_engines() -> list[str]:
    names = {n for n in _REGISTRY if ":" not in n} | set(BUILTIN_ENGINES)
    names |= {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)
