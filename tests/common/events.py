"""Sample entries of every contract, shared by the tests."""

from __future__ import annotations

import numpy as np

from services.common.codec import logits_bytes
from services.common.contracts import (
    AlertEvent,
    AuditEvent,
    ChatMessage,
    Event,
    JobRequest,
    Metrics,
    RiskEvent,
    SamplingParams,
    SessionEvent,
    SummaryEvent,
    TokenEvent,
    TopKAlternative,
)


def token(session_id: str = "s1", seq: int = 0, vocab: int = 8, *, text: str = " Paris") -> TokenEvent:
    logits = np.linspace(-4, 4, vocab).astype(np.float32)
    return TokenEvent(
        session_id=session_id,
        seq=seq,
        token_id=vocab - 1,
        text=text,
        logprob=-0.25,
        distribution="full",
        top_k=[TopKAlternative(token_id=vocab - 1, text=text, logprob=-0.25)],
        vocab_size=vocab,
        logits_dtype="float16",
        sampling=SamplingParams(temperature=0.0),
        model="test-model",
        logits=logits_bytes(logits),
    )


def samples(session_id: str = "s1") -> dict[str, list[Event]]:
    """One or more entries per stream, covering every model and the optional fields."""
    metrics = Metrics(
        prob=0.5,
        surprisal=1.0,
        entropy=2.0,
        margin=0.1,
        rank=2,
        hbar_s=1.41,
        fisher_trace=0.6,
        varentropy=0.3,
        coverage=None,
        exact=True,
    )
    return {
        "jobs": [
            JobRequest(
                session_id=session_id,
                seq=0,
                prompt="Explain AI",
                sampling=SamplingParams(max_tokens=100, seed=7, stop=["\n\n"]),
            ),
            JobRequest(session_id=session_id + "b", seq=0, messages=[ChatMessage(role="user", content="héllo ✓")]),
        ],
        "tokens": [
            token(session_id, 0),
            TokenEvent(
                session_id=session_id,
                seq=1,
                text="é",
                distribution="top_k",
                model="gpt",
                top_k=[TopKAlternative(text="é", logprob=-0.1), TopKAlternative(text="e", logprob=-2.5)],
                logprob=-0.1,
                provider="push",
            ),
            TokenEvent(session_id=session_id, seq=2, text="!", distribution="prob_only", logprob=-1.2, model="m"),
            TokenEvent(session_id=session_id, seq=3, text="?", distribution="none", model="m"),
        ],
        "audits": [
            AuditEvent(
                session_id=session_id,
                seq=0,
                text=" Paris",
                token_id=7,
                distribution="full",
                metrics=metrics,
                top_k=[TopKAlternative(token_id=7, text=" Paris", logprob=-0.7)],
                model="m",
                token_ts_ns=1,
            ),
        ],
        "alerts": [
            AlertEvent(
                session_id=session_id,
                seq=0,
                rule="LOW_CONFIDENCE",
                severity="warning",
                message='token " Paris" (#7): p = 0.12 below 0.30',
                token_seq=7,
                token_text=" Paris",
                values={"prob": 0.12, "hbar_s": None},
            ),
            RiskEvent(session_id=session_id, seq=1, level="warning", previous="safe", reason="2 alerts", token_seq=7),
            SummaryEvent(
                session_id=session_id,
                seq=2,
                tokens=10,
                firings_by_rule={"LOW_CONFIDENCE": 1},
                alerts_sent_by_rule={"LOW_CONFIDENCE": 1},
                max_hbar_s=2.0,
                mean_hbar_s=1.0,
                perplexity=2.5,
                final_risk="warning",
                status="finished",
            ),
        ],
        "sessions": [
            SessionEvent(session_id=session_id, seq=0, status="queued", prompt="Explain AI", model="m"),
            SessionEvent(session_id=session_id, seq=2, status="finished", reason="eos", tokens=10),
        ],
    }
