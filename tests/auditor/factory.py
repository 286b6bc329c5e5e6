"""Token events of each kind, for the auditor's tests and benchmark."""

from __future__ import annotations

import math

import numpy as np

from services.common.codec import logits_bytes
from services.common.contracts import TokenEvent, TopKAlternative


def full_token(session: str, seq: int, logits: np.ndarray, token_id: int, *, k: int = 20) -> TokenEvent:
    """A token with its full float16 logits and the top-k alternatives the generator would send."""
    z = logits.astype(np.float16)
    z64 = z.astype(np.float64)
    m = z64.max()
    logp = z64 - (m + math.log(np.exp(z64 - m).sum()))
    top = np.argsort(-z64, kind="stable")[:k]
    return TokenEvent(
        session_id=session,
        seq=seq,
        token_id=token_id,
        text=f"t{token_id}",
        logprob=min(float(logp[token_id]), 0.0),
        distribution="full",
        top_k=[TopKAlternative(token_id=int(t), text=f"t{t}", logprob=min(float(logp[t]), 0.0)) for t in top],
        vocab_size=z.shape[0],
        logits_dtype="float16",
        model="test-model",
        logits=logits_bytes(z),
    )


def with_logits(token: TokenEvent, logits: np.ndarray) -> TokenEvent:
    """The same token carrying other logits (NaN, +inf: what a broken producer sends)."""
    return token.model_copy(update={"logits": logits_bytes(logits)})


def top_k_token(session: str, seq: int, probs: list[float], emitted: int) -> TokenEvent:
    """A token known only by the top-k probabilities (as an OpenAI-compatible server reports them)."""
    return TokenEvent(
        session_id=session,
        seq=seq,
        token_id=emitted,
        text=f"t{emitted}",
        logprob=math.log(probs[emitted]),
        distribution="top_k",
        top_k=[TopKAlternative(token_id=i, text=f"t{i}", logprob=math.log(p)) for i, p in enumerate(probs)],
        model="test-model",
        provider="push",
    )


def prob_only_token(session: str, seq: int, prob: float) -> TokenEvent:
    return TokenEvent(
        session_id=session,
        seq=seq,
        text="x",
        logprob=math.log(prob),
        distribution="prob_only",
        model="test-model",
        provider="push",
    )
