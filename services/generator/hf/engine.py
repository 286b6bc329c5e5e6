"""The built-in engine: any Hugging Face causal LM through transformers (registered as "transformers").

torch and transformers are imported when a model is loaded, not when this module is.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from services.generator.engine import Engine, EngineOptions, GenerationRequest, Step, register_engine

if TYPE_CHECKING:
    from services.generator.hf.batching import BatchScheduler
    from services.generator.hf.decoding import Probe, TokenTexts
    from services.generator.hf.loading import LoadedModel


class TransformersOptions(EngineOptions):
    """Options of the transformers engine; each is also a generator setting of the same name."""

    device: str = Field("auto", pattern="^(auto|cpu|cuda(:[0-9]+)?)$")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    load_in_8bit: bool = False
    model_cache_dir: str = "data/model-cache"
    torch_threads: int = Field(0, ge=0, le=1024)
    profiles_dir: str = ""  # where the model's calibration profile (and its probe) is looked up


@register_engine
class TransformersEngine(Engine):
    """Greedy or sampled decoding on the KV cache with the raw distribution of every step."""

    name = "transformers"
    provider = "transformers"
    Options = TransformersOptions
    full_logits = True
    chat = True
    seeded = True
    hub_models = True

    def __init__(self, model: str, options: EngineOptions) -> None:
        super().__init__(model, options)
        self.loaded: LoadedModel | None = None
        self._texts: TokenTexts | None = None
        self._probe: Probe | None = None
        self.scheduler: BatchScheduler | None = None

    def load(self) -> None:
        from services.generator.hf import decoding, loading

        opts = self.options
        assert isinstance(opts, TransformersOptions)
        if opts.torch_threads:
            import torch

            torch.set_num_threads(opts.torch_threads)  # process-wide; oversubscribed OpenMP threads crawl
        self.loaded = loading.load(
            self.model,
            device=opts.device,
            dtype=opts.dtype,
            load_in_8bit=opts.load_in_8bit,
            model_cache_dir=opts.model_cache_dir,
        )
        self._texts = decoding.TokenTexts(self.loaded.tokenizer)
        self.display_name = self.loaded.name
        self._probe = decoding.probe_for(self.loaded, opts.profiles_dir)
        self._schedule()

    def _schedule(self) -> None:
        from services.generator.hf.batching import BatchScheduler

        assert self.loaded is not None
        assert self._texts is not None
        self.scheduler = BatchScheduler(self.loaded, self._texts, self._probe)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, options: EngineOptions | None = None) -> TransformersEngine:
        """An engine around a model already in memory (see loading.from_objects)."""
        from services.generator.hf import decoding

        engine = cls(loaded.name, options or TransformersOptions())
        engine.loaded = loaded
        engine._texts = decoding.TokenTexts(loaded.tokenizer)
        engine.display_name = loaded.name
        engine._probe = decoding.probe_for(loaded, engine.options.profiles_dir)  # type: ignore[attr-defined]
        engine._schedule()
        return engine

    def stream(self, request: GenerationRequest) -> Iterator[Step]:
        """The job's steps; jobs streamed at once decode in one batch (services/generator/hf/batching.py)."""
        if self.scheduler is None:
            raise RuntimeError("TransformersEngine.stream called before load()")
        return self.scheduler.stream(request)

    def stream_samples(self, requests: Sequence[GenerationRequest]) -> Iterator[list[Step]]:
        from services.generator.hf import decoding

        if self.loaded is None or self._texts is None:
            raise RuntimeError("TransformersEngine.stream_samples called before load()")
        return decoding.generate_samples(self.loaded, requests, self._texts)

    def close(self) -> None:
        if self.loaded is not None:
            device = self.loaded.device
            self.loaded = None
            self._texts = None
            self.scheduler = None
            gc.collect()
            if device.type == "cuda":
                import torch

                torch.cuda.empty_cache()
