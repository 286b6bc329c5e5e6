"""A small engine of our own, registered through the same registry as the built-in one.

It is what a user's engine looks like (services/generator/engine.py) and lets the worker's
scheduling, cancellation and failure paths be tested in milliseconds, without a model.
Model names it understands: "count" (tokens "t0 ", "t1 ", …), "broken" (fails to load),
"crash" (raises a GeneratorError at the third token).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from services.common.contracts import TopKAlternative
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
from services.generator.errors import InvalidJobError, ModelLoadError


class ScriptedOptions(EngineOptions):
    step_s: float = 0.0


@register_engine
class ScriptedEngine(Engine):
    name = "scripted"
    provider = "scripted"
    Options = ScriptedOptions
    full_logits = False
    seeded = True

    def load(self) -> None:
        if self.model == "broken":
            raise ModelLoadError(self.model, "no such folder")
        self.display_name = f"scripted-{self.model}"

    def stream(self, request: GenerationRequest) -> Iterator[Step]:
        assert isinstance(self.options, ScriptedOptions)
        yield Prefilling(done=1, total=2)  # as an engine reading a long prompt in chunks does
        for i in range(request.sampling.max_tokens):
            time.sleep(self.options.step_s)  # a deliberately slow engine: the tests set how long a token takes
            if self.model == "crash" and i == 2:
                raise InvalidJobError("this engine cannot go on", param="prompt")
            alternative = TopKAlternative(token_id=i, text=f"t{i} ", logprob=-0.5)
            yield TokenStep(token_id=i, text=f"t{i} ", logprob=-0.5, top_k=[alternative], vocab_size=100)
        yield Finished("max_tokens", prompt_tokens=len((request.prompt or "").split()))
