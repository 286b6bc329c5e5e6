"""Errors of the generator. Their message is what a user reads on the failed session, so each one
says what went wrong and how to fix it.

UQError (services.common.errors)
└── GeneratorError               a job (or the worker's default model) cannot run
    ├── EngineNotFoundError      no engine registered under that name (name, known)
    ├── ModelLoadError           a model id or path cannot be loaded (model, cause)
    ├── InvalidJobError          the request cannot be served as asked (param)
    │   └── PromptTooLongError   the prompt does not fit the model's context (prompt_tokens, context)
    ├── DeviceMemoryError        the device ran out of memory mid-job (device)
    └── NumericalError           the model produced NaN or infinite logits (position)
"""

from __future__ import annotations

from services.common.errors import UQError


class GeneratorError(UQError):
    """A job, or the worker's default model, cannot run."""


class EngineNotFoundError(GeneratorError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"no generator engine named {name!r} (known: {', '.join(known) or 'none'}); set UQ_ENGINE to one "
            "of them or to `package.module:EngineClass` of your own (see services/generator/engine.py)"
        )


class ModelLoadError(GeneratorError):
    def __init__(self, model: str, cause: str) -> None:
        self.model = model
        self.cause = cause
        super().__init__(
            f"cannot load model {model!r}: {cause}. Give a local folder holding config.json, the weights and "
            "the tokenizer, a Hugging Face id already in the local cache (HF_HOME), or 'embedded'"
        )


class InvalidJobError(GeneratorError):
    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class PromptTooLongError(InvalidJobError):
    def __init__(self, prompt_tokens: int, context: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.context = context
        super().__init__(
            f"the prompt is {prompt_tokens} tokens but the model's context holds {context}; "
            "shorten the prompt (or the chat history) or use a model with a longer context",
            param="prompt",
        )


class DeviceMemoryError(GeneratorError):
    def __init__(self, device: str, tokens: int) -> None:
        self.device = device
        self.tokens = tokens
        super().__init__(
            f"out of memory on {device} after {tokens} tokens; lower max_tokens or the prompt length, "
            "or set UQ_MAX_CONCURRENT_JOBS lower, UQ_LOAD_IN_8BIT=true or a smaller model"
        )


class NumericalError(GeneratorError):
    def __init__(self, position: int, dtype: str) -> None:
        self.position = position
        self.dtype = dtype
        hint = (
            "float16 overflows easily: try UQ_DTYPE=bfloat16 or float32"
            if dtype == "float16"
            else "its weights may be damaged: check the model files, or try another UQ_DTYPE"
        )
        super().__init__(f"the model produced NaN or infinite logits at token {position} in {dtype}; {hint}")
