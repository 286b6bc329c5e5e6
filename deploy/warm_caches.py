"""Warm, at image build time, what a service's first start would otherwise build.

- the embedded model's dequantised cache in ``UQ_MODEL_CACHE_DIR`` (~20 s from the GGUF on first
  load, ~1 s from the cache afterwards);
- the auditor's numba kernel, compiled once and cached in ``NUMBA_CACHE_DIR``.

    python deploy/warm_caches.py [--no-model] [--no-kernel]

A cache that cannot be warmed is not fatal to the image: the service builds it on its first start.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `services`


def warm_model(cache_dir: str) -> str:
    from services.generator.hf.loading import load

    lm = load("embedded", device="cpu", dtype="float32", load_in_8bit=False, model_cache_dir=cache_dir)
    return f"embedded model ready in {cache_dir} (loaded from {lm.source} in {lm.load_s:.1f} s)"


def warm_kernel() -> str:
    import numpy as np

    from services.auditor.metrics._fused import stats_fused

    ids = np.zeros(2, dtype=np.int64)
    logits = np.zeros((2, 64), dtype=np.float16)
    stats_fused(logits, ids)
    stats_fused(logits.astype(np.float32), ids)
    return f"auditor kernel compiled into {os.environ.get('NUMBA_CACHE_DIR', 'the default numba cache')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-model", action="store_true", help="skip the embedded model's cache")
    parser.add_argument("--no-kernel", action="store_true", help="skip the auditor's numba kernel")
    args = parser.parse_args()
    steps = (
        [] if args.no_model else [lambda: warm_model(os.environ.get("UQ_MODEL_CACHE_DIR", "data/model-cache"))]
    ) + ([] if args.no_kernel else [warm_kernel])
    for step in steps:
        started = time.perf_counter()
        print(f"{step()} [{time.perf_counter() - started:.1f} s]", flush=True)


if __name__ == "__main__":
    main()
