"""The llama.cpp engine (registered as "llama.cpp"): services/generator/llamacpp/engine.py.

- ``engine``: loading GGUF files, prompts and chat templates, sampling, each step's record;
- ``batching``: concurrent jobs as sequences of one context, one decode per round;
- ``probe``: the calibration profile's hidden-state probe, read from the compute graph.
"""

from services.generator.llamacpp.engine import LlamaCppEngine, LlamaCppOptions, Sampler, gguf_path

__all__ = ["LlamaCppEngine", "LlamaCppOptions", "Sampler", "gguf_path"]
