"""How far metrics from an upstream server's top-k are from the full-logit metrics of the same tokens.

An upstream engine (services/generator/upstream.py) sees only the k most likely tokens per step. The
auditor then treats the unlisted mass ``1 - coverage`` as one bucket, so entropy, varentropy and the
Fisher trace are lower bounds, exact only when the list covers the whole distribution; prob and
surprisal of a listed token are exact up to the server's numerics (here: a Q4_1 GGUF in llama.cpp
against the same weights dequantised to fp32 in transformers).

:func:`teacher_forced_logits` runs the upstream's tokens through our own model to get their full
logits; :func:`compare` computes both kinds of metrics with the auditor's own functions and
summarises the differences. ``bench/upstream.py`` prints the report; tests/generator/test_upstream.py
checks its invariants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.auditor import metrics
from services.common.contracts import TopKAlternative

COMPARED = ("prob", "surprisal", "entropy", "fisher_trace", "margin", "rank")


@dataclass(frozen=True)
class UpstreamToken:
    """One token as the upstream server gave it."""

    text: str
    logprob: float | None
    top_k: list[TopKAlternative]


def token_ids(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Our vocabulary's id of each token text, as far as each text is one token (the aligned prefix)."""
    ids: list[int] = []
    for text in texts:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) != 1:
            break
        ids.append(int(encoded[0]))
    return ids


def teacher_forced_logits(loaded: Any, prompt: str, ids: Sequence[int]) -> NDArray[np.float32]:
    """Full next-token logits ``(len(ids), V)`` of our model for ``ids`` following ``prompt`` (one forward)."""
    import torch

    prompt_ids = loaded.tokenizer(prompt, add_special_tokens=True).input_ids
    full = torch.tensor([list(prompt_ids) + list(ids)], device=loaded.device)
    with torch.inference_mode():
        logits = loaded.model(input_ids=full).logits[0]
    start = len(prompt_ids) - 1
    out: NDArray[np.float32] = logits[start : start + len(ids)].float().cpu().numpy()
    return out


def topk_metrics(tokens: Sequence[UpstreamToken]) -> metrics.TokenMetrics:
    """The auditor's metrics of the upstream's tokens from their top-k (as the auditor computes them)."""
    width = max(1, max((len(t.top_k) for t in tokens), default=1))
    lp = np.full((len(tokens), width), -np.inf)
    pos = np.full(len(tokens), -1, np.int64)
    tok = np.full(len(tokens), np.nan)
    for i, t in enumerate(tokens):
        for j, alt in enumerate(t.top_k[:width]):
            lp[i, j] = alt.logprob
            if pos[i] < 0 and alt.text == t.text:
                pos[i] = j
        if t.logprob is not None:
            tok[i] = t.logprob
    return metrics.from_top_k(lp, tok, pos)


def compare(tokens: Sequence[UpstreamToken], logits: NDArray[Any], ids: Sequence[int]) -> dict[str, Any]:
    """Both kinds of metrics for the aligned tokens and a summary of their differences (top-k − full).

    Per metric: the median and largest absolute difference, and for entropy the share of tokens where
    the top-k value is at most the full one (the lower bound, up to quantisation noise). Coverage:
    mean and minimum of Σ p over the listed tokens.
    """
    n = min(len(tokens), len(ids), logits.shape[0])
    top = topk_metrics(tokens[:n])
    full = metrics.from_logits(logits[:n], np.asarray(ids[:n], dtype=np.int64))
    report: dict[str, Any] = {"tokens": n, "k": max((len(t.top_k) for t in tokens[:n]), default=0)}
    for name in COMPARED:
        a, b = getattr(top, name), getattr(full, name)
        ok = np.isfinite(a) & np.isfinite(b)
        diff = np.abs(a[ok] - b[ok])
        report[name] = {
            "n": int(ok.sum()),
            "median_abs_diff": float(np.median(diff)) if diff.size else None,
            "max_abs_diff": float(diff.max()) if diff.size else None,
        }
    ok = np.isfinite(top.entropy) & np.isfinite(full.entropy)
    report["entropy"]["topk_at_most_full"] = (
        float(np.mean(top.entropy[ok] <= full.entropy[ok] + 0.05)) if ok.any() else None
    )
    report["entropy"]["mean_topk"] = float(np.mean(top.entropy[ok])) if ok.any() else None
    report["entropy"]["mean_full"] = float(np.mean(full.entropy[ok])) if ok.any() else None
    cov = top.coverage[np.isfinite(top.coverage)]
    report["coverage"] = {
        "mean": float(cov.mean()) if cov.size else None,
        "min": float(cov.min()) if cov.size else None,
    }
    return report
