"""Pydantic models of every stream entry (contracts v1).

Rules that hold for every model here:
- the envelope: ``schema_version``, ``type``, ``session_id``, a per-session ``seq`` and ``ts_ns``
  (nanoseconds since the epoch, set by the producer when it publishes);
- ``(session_id, seq)`` is unique within a stream, so a consumer dedupes on it;
- models are strict (``extra="forbid"``) and frozen.

The field descriptions below are the documentation: ``docs/streams.md`` lists the same fields and a
test fails when the two diverge.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
SessionId = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$", description="Session identifier."),
]
Seq = Annotated[int, Field(ge=0, le=100_000_000)]
RiskLevel: TypeAlias = Literal["safe", "warning", "critical", "emergency"]
RISK_LEVELS: tuple[RiskLevel, ...] = ("safe", "warning", "critical", "emergency")  # lowest to highest
Severity: TypeAlias = Literal["info", "warning", "critical"]
SessionStatus: TypeAlias = Literal["queued", "started", "finished", "failed", "cancelled"]


def now_ns() -> int:
    """Wall-clock nanoseconds since the epoch, the unit of every ``ts_ns``."""
    return time.time_ns()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(_Model):
    """Fields every entry carries."""

    schema_version: Literal[1] = Field(1, description="Contract version; 1.")
    session_id: SessionId
    seq: Seq = Field(description="Per-session sequence number within this stream; unique with session_id.")
    ts_ns: int = Field(default_factory=now_ns, ge=0, description="Publish time, ns since the Unix epoch.")


# --- uq:jobs -------------------------------------------------------------------------------------


class SamplingParams(_Model):
    """How the next token is chosen. Metrics are always computed on the raw distribution."""

    temperature: float = Field(0.7, ge=0.0, le=5.0, description="0 means greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass; 1 disables it.")
    top_k: int = Field(0, ge=0, le=100_000, description="Sample among the k most likely; 0 disables it.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Same seed, same text.")
    max_tokens: int = Field(256, ge=1, le=32_768, description="Most tokens to generate.")
    stop: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=16, description="Generation stops when the text ends with one."
    )


class ChatMessage(_Model):
    """One message of a chat conversation."""

    role: Literal["system", "user", "assistant"] = Field(description="Who speaks.")
    content: str = Field(max_length=200_000, description="What is said.")


def prompt_text(prompt: str | None, messages: Sequence[ChatMessage] | None) -> str | None:
    """A job's prompt as sessions show it: the plain prompt, or the chat one ``role: content`` line per message."""
    if prompt is not None:
        return prompt
    if messages:
        return "\n".join(f"{m.role}: {m.content}" for m in messages)
    return None


class JobRequest(Envelope):
    """A generation request (producer: gateway; consumer group: generators). ``seq`` is always 0."""

    type: Literal["job"] = Field("job", description="Entry type.")
    prompt: str | None = Field(None, max_length=200_000, description="Plain prompt; or use messages.")
    messages: list[ChatMessage] | None = Field(
        None, max_length=1_000, description="Chat messages; the model's chat template is applied."
    )
    model: str | None = Field(None, max_length=512, description="Model to use; null = the worker's default.")
    sampling: SamplingParams = Field(default_factory=SamplingParams, description="Sampling parameters.")
    logits_mode: Literal["full", "top_k"] | None = Field(
        None, description="Override of the worker's logits publishing mode for this job."
    )
    verify: int = Field(
        0,
        ge=0,
        le=20,
        description="Extra samples drawn after the answer to check it (0 = none); see Verification.",
    )


# --- uq:tokens -----------------------------------------------------------------------------------


class TopKAlternative(_Model):
    """One of the most likely next tokens under the raw distribution."""

    token_id: int | None = Field(None, ge=0, description="Vocabulary id; null when the producer has none.")
    text: str = Field(max_length=1_024, description="Decoded text of the token.")
    logprob: float = Field(le=0.0, description="Natural-log probability under the raw distribution.")


class TopKSource(_Model):
    """Where a top-k list came from, when it is another server's (upstream engines, docs/generator.md)."""

    k: int = Field(ge=0, le=1_000, description="Alternatives the server was asked for (its maximum top_logprobs).")
    logprobs: Literal["raw", "processed"] = Field(
        description="raw: the model's distribution before sampling; processed: after temperature, top-p, penalties."
    )
    floor: float | None = Field(
        None, le=0.0, description="The server's lowest logprob (vLLM: -9999); values at it mean 'at most this'."
    )


class TokenEvent(Envelope):
    """One generated token (producers: generator, gateway push API; consumer group: auditors).

    ``seq`` is the token's position in the generated text, from 0. The raw next-token logits, when
    ``distribution == "full"``, travel beside the JSON in the binary ``logits`` field of the entry:
    ``vocab_size`` little-endian IEEE float16 values (``numpy.frombuffer(b, "<f2")``).
    """

    type: Literal["token"] = Field("token", description="Entry type.")
    token_id: int | None = Field(None, ge=0, description="Vocabulary id of the emitted token.")
    text: str = Field(max_length=4_096, description="The token's text; a session's texts concatenate to the output.")
    logprob: float | None = Field(
        None, le=0.0, description="Natural-log probability of the emitted token under the raw distribution."
    )
    distribution: Literal["full", "top_k", "prob_only", "none"] = Field(
        description="What is known of the distribution: full logits, top-k logprobs, only logprob, nothing."
    )
    top_k: list[TopKAlternative] = Field(
        default_factory=list, max_length=1_000, description="Most likely alternatives, most likely first."
    )
    vocab_size: int | None = Field(
        None, ge=2, le=1_000_000, description="Vocabulary size; with full logits, their length."
    )
    logits_dtype: Literal["float16"] | None = Field(
        None, description='"float16" when the entry carries the binary logits field, else null.'
    )
    sampling: SamplingParams | None = Field(None, description="Sampling parameters the token was drawn with.")
    top_k_source: TopKSource | None = Field(
        None, description="Upstream engines: which server's top-k this is, and what its logprobs mean."
    )
    probe: float | None = Field(
        None,
        description="White-box engines whose model's calibration profile has a probe: the projection of the "
        'hidden state the token was chosen from on the probe direction (docs/metrics.md, "Probe").',
    )
    model: str = Field(max_length=512, description="Model name.")
    provider: str = Field("transformers", max_length=128, description="Who produced it: transformers, push, …")
    logits: bytes | None = Field(
        None, exclude=True, repr=False, description="Raw logits, carried in the binary `logits` field."
    )


# --- uq:audits -----------------------------------------------------------------------------------


class Metrics(_Model):
    """Uncertainty of one token; bits (log base 2). Null when the input does not allow it."""

    prob: float | None = Field(None, ge=0.0, le=1.0, description="p(x) of the emitted token.")
    surprisal: float | None = Field(None, ge=0.0, description="-log2 p(x). Higher = more uncertain.")
    entropy: float | None = Field(None, ge=0.0, description="H = -Σ p log2 p. Higher = more uncertain.")
    margin: float | None = Field(None, ge=0.0, le=1.0, description="p(1st) - p(2nd). Higher = more certain.")
    rank: int | None = Field(None, ge=1, description="1 + tokens more likely than x. Higher = more surprising.")
    hbar_s: float | None = Field(None, ge=0.0, description="ℏₛ = √(H · surprisal) (experimental).")
    fisher_trace: float | None = Field(None, ge=0.0, le=1.0, description="1 - Σ p². Higher = more uncertain.")
    varentropy: float | None = Field(None, ge=0.0, description="Σ p (-log2 p - H)². Bits².")
    coverage: float | None = Field(None, ge=0.0, le=1.0, description="Σ p over the known top-k (top-k input).")
    probe: float | None = Field(
        None,
        description="White-box: the token's hidden-state probe projection (as on the token; docs/metrics.md). "
        "Higher = more likely wrong.",
    )
    exact: bool = Field(description="True when computed from the full distribution.")


class AuditEvent(Envelope):
    """A token with its metrics (producer: auditor; consumers: alerter, gateway, recorder).

    ``seq`` is the token's seq.
    """

    type: Literal["audit"] = Field("audit", description="Entry type.")
    token_id: int | None = Field(None, ge=0, description="Vocabulary id of the token.")
    text: str = Field(max_length=4_096, description="The token's text.")
    distribution: Literal["full", "top_k", "prob_only", "none"] = Field(description="As on the token.")
    metrics: Metrics = Field(description="The token's uncertainty metrics.")
    top_k: list[TopKAlternative] = Field(
        default_factory=list, max_length=100, description="Most likely alternatives, for display."
    )
    model: str = Field(max_length=512, description="Model name.")
    token_ts_ns: int = Field(ge=0, description="`ts_ns` of the token entry, for end-to-end latency.")


# --- uq:alerts -----------------------------------------------------------------------------------


class AlertFinding(_Model):
    """One rule's finding on the token of an alert."""

    rule: str = Field(max_length=128, description="Rule name.")
    severity: Severity = Field(description="info, warning or critical.")
    message: str = Field(max_length=2_048, description="What the rule saw.")
    values: dict[str, float | None] = Field(default_factory=dict, description="Metric values it looked at, by name.")


class AlertEvent(Envelope):
    """Rules fired on a token (producer: alerter): one entry per token, listing every rule that fired on
    it. ``rule``, ``severity`` and ``values`` are the most severe finding's; ``message`` joins them all.
    ``seq`` counts the alerter's entries per session."""

    type: Literal["alert"] = Field("alert", description="Entry type.")
    rule: str = Field(max_length=128, description="The most severe rule that fired, e.g. HIGH_UNCERTAINTY.")
    severity: Severity = Field(description="info, warning or critical: the highest of the findings.")
    message: str = Field(max_length=2_048, description="One line a person understands at a glance.")
    token_seq: Seq = Field(description="seq of the token that fired it.")
    token_text: str = Field(max_length=4_096, description="Text of that token.")
    values: dict[str, float | None] = Field(
        default_factory=dict, description="Metric values the most severe rule looked at, by name."
    )
    rules: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Every rule that fired on the token, most severe first (`rule` is the first); "
        "empty from an alerter older than this field.",
    )
    findings: list[AlertFinding] = Field(
        default_factory=list, max_length=64, description="Each rule's finding, in the order of `rules`."
    )


class RiskEvent(Envelope):
    """The session's risk level changed (producer: alerter)."""

    type: Literal["risk"] = Field("risk", description="Entry type.")
    level: RiskLevel = Field(description="New level.")
    previous: RiskLevel = Field(description="Level before.")
    reason: str = Field(max_length=2_048, description="Why it changed: a sentence naming its evidence.")
    token_seq: Seq = Field(description="seq of the token at which it changed.")
    evidence: Literal["answer", "session", "loop", "rules"] | None = Field(
        None,
        description="What set the new level: `answer` (calibrated P(wrong) of the answer), `session` (unusual "
        "against the model's reference sessions), `loop` (the text repeats itself), `rules` (uncalibrated: "
        "the rules' firings); null from an alerter older than this field.",
    )
    p_wrong: float | None = Field(
        None, ge=0.0, le=1.0, description="Calibrated P(answer wrong), once the answer has been judged."
    )
    profile: str | None = Field(
        None, max_length=256, description="Calibration profile of the session's model; null = uncalibrated."
    )


class SequenceScores(_Model):
    """Sequence scores of one span of a session's tokens (docs/metrics.md, "Sequence scores").

    Every score is "higher = more likely wrong"; null when no token of the span had the metric.
    """

    tokens: int = Field(ge=0, description="Tokens in the span.")
    gnll: float | None = Field(None, ge=0.0, description="G-NLL: Σ surprisal = -log2 p(sequence), bits.")
    msp: float | None = Field(None, ge=0.0, le=1.0, description="1 - p(sequence): one minus its probability.")
    mean_nll: float | None = Field(None, ge=0.0, description="Mean surprisal, bits (log2 perplexity).")
    max_nll: float | None = Field(None, ge=0.0, description="Largest surprisal, bits.")
    first_nll: float | None = Field(None, ge=0.0, description="Surprisal of the span's first token, bits.")
    mean_entropy: float | None = Field(None, ge=0.0, description="Mean entropy, bits.")
    max_entropy: float | None = Field(None, ge=0.0, description="Largest entropy, bits.")
    first_entropy: float | None = Field(None, ge=0.0, description="Entropy of the span's first token, bits.")
    mean_hbar_s: float | None = Field(None, ge=0.0, description="Mean ℏₛ (experimental).")
    max_hbar_s: float | None = Field(None, ge=0.0, description="Largest ℏₛ (experimental).")
    min_margin_gap: float | None = Field(
        None, ge=0.0, le=1.0, description="1 - the smallest margin: how close the closest call was."
    )
    first_margin_gap: float | None = Field(None, ge=0.0, le=1.0, description="1 - the first token's margin.")
    probe: float | None = Field(
        None, description='White-box: mean hidden-state probe projection over the span (docs/metrics.md, "Probe").'
    )


class Verification(_Model):
    """Opt-in verification (``verify: N`` on a job): N more answers to the same prompt, sampled after
    the session's own, and how well they agree with its answer span. Agreements are means over the
    samples, in [0, 1]: 1 = every sample said the same. Higher = more certain."""

    samples: list[Annotated[str, Field(max_length=4_096)]] = Field(
        max_length=20, description="Answer span of each sample, in the order drawn."
    )
    answer: str = Field(max_length=4_096, description="The session's own answer span they were compared with.")
    temperature: float = Field(ge=0.0, le=5.0, description="Temperature the samples were drawn at.")
    exact: float = Field(ge=0.0, le=1.0, description="Share of samples whose normalised answer equals the session's.")
    lexical: float = Field(ge=0.0, le=1.0, description="Mean SQuAD token F1 of each sample against the answer.")
    embedding: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="Mean cosine similarity of MiniLM sentence embeddings (null unless UQ_VERIFY_EMBEDDINGS).",
    )
    consistency: float = Field(
        ge=-1.0, le=1.0, description="The agreement the system reports as the session's consistency (see docs)."
    )


class ScoresEvent(Envelope):
    """The session's sequence scores so far, while it runs (producer: alerter): sent when the answer
    is complete and every ``UQ_SCORES_EVERY`` tokens (docs/alerts.md, "Live scores"). The summary
    carries the final ones."""

    type: Literal["scores"] = Field("scores", description="Entry type.")
    token_seq: Seq = Field(description="seq of the last token the scores include.")
    tokens: int = Field(ge=0, description="Tokens the scores include.")
    answer_complete: bool = Field(description="Whether the answer span has ended (its scores are final).")
    answer_scores: SequenceScores | None = Field(None, description="Scores of the answer (so far).")
    scores: SequenceScores | None = Field(None, description="Scores of the whole generation so far.")
    p_wrong: float | None = Field(
        None, ge=0.0, le=1.0, description="Calibrated P(answer wrong) once the answer has been judged, else null."
    )
    profile: str | None = Field(
        None, max_length=256, description="Calibration profile of the session's model; null = uncalibrated."
    )


class SummaryEvent(Envelope):
    """The session ended; what happened in it (producer: alerter).

    A rule *fires* on a token when its condition holds there; an *alert* is an ``alert`` entry on
    ``uq:alerts``, sent for a firing the cooldown let through. ``firings_by_rule`` counts the first,
    ``alerts_sent_by_rule`` the second. ``alerts_by_rule`` is the deprecated first name of
    ``firings_by_rule`` (same values; removed in contract version 2); either one alone is accepted.
    """

    type: Literal["summary"] = Field("summary", description="Entry type.")
    tokens: int = Field(ge=0, description="Tokens audited.")
    firings_by_rule: dict[str, int] = Field(
        default_factory=dict,
        description="Tokens each rule fired on, by rule, including firings the cooldown held back.",
    )
    alerts_sent_by_rule: dict[str, int] | None = Field(
        None,
        description="Alert entries sent on uq:alerts for the session, by rule (after the cooldown); "
        "null from an alerter older than this field.",
    )
    alerts_by_rule: dict[str, int] = Field(
        default_factory=dict,
        description="Deprecated: the same counts as firings_by_rule (tokens fired on, not alerts sent); "
        "removed in contract version 2.",
    )
    max_hbar_s: float | None = Field(None, ge=0.0, description="Largest ℏₛ.")
    mean_hbar_s: float | None = Field(None, ge=0.0, description="Mean ℏₛ.")
    mean_entropy: float | None = Field(None, ge=0.0, description="Mean entropy, bits.")
    perplexity: float | None = Field(None, ge=1.0, description="2^(mean surprisal).")
    nll_bits: float | None = Field(None, ge=0.0, description="Sum of surprisal, bits.")
    low_confidence_share: float | None = Field(
        None, ge=0.0, le=1.0, description="Share of tokens below the low-confidence threshold."
    )
    final_risk: RiskLevel = Field(description="Risk level at the end.")
    peak_risk: RiskLevel = Field("safe", description="Highest risk level the session reached.")
    status: SessionStatus = Field(description="How the session ended.")
    p_wrong: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Calibrated probability that the answer is wrong; null without a labelled calibration profile.",
    )
    profile: str | None = Field(
        None, max_length=256, description="Calibration profile the session was judged with; null = uncalibrated."
    )
    answer_scores: SequenceScores | None = Field(
        None, description="Sequence scores of the answer: the tokens up to the end of the first line or sentence."
    )
    scores: SequenceScores | None = Field(None, description="Sequence scores of the whole generation.")
    verification: Verification | None = Field(
        None, description="The job's verification samples and their agreement (null unless it asked for them)."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_name_for_firings(cls, data: Any) -> Any:
        """An entry with only one of ``firings_by_rule`` and its old name ``alerts_by_rule`` gets both."""
        if isinstance(data, dict):
            firings, old = data.get("firings_by_rule"), data.get("alerts_by_rule")
            if firings is None and old is not None:
                data = {**data, "firings_by_rule": old}
            elif old is None and firings is not None:
                data = {**data, "alerts_by_rule": firings}
        return data


# --- uq:sessions ---------------------------------------------------------------------------------


class SessionEvent(Envelope):
    """Lifecycle of a session (producers: gateway, generator).

    ``seq`` is fixed by status: queued 0, started 1, and 2 for the one terminal entry
    (finished, failed or cancelled), so a session has at most one of each.
    """

    type: Literal["session"] = Field("session", description="Entry type.")
    status: SessionStatus = Field(description="queued, started, finished, failed or cancelled.")
    reason: str | None = Field(
        None, max_length=4_096, description="Why it ended: eos, max_tokens, stop, or an error a user can act on."
    )
    model: str | None = Field(None, max_length=512, description="Model name.")
    provider: str | None = Field(None, max_length=128, description="transformers, push, …")
    prompt: str | None = Field(None, max_length=200_000, description="Prompt (queued/started entries).")
    tokens: int | None = Field(None, ge=0, description="Tokens generated (terminal entries).")
    prompt_tokens: int | None = Field(
        None, ge=0, description="Prompt tokens the model read (terminal entries, when the engine reports it)."
    )
    verification: Verification | None = Field(
        None, description="Finished entries of jobs that asked for verification: the samples' agreement."
    )


Event: TypeAlias = (
    JobRequest | TokenEvent | AuditEvent | AlertEvent | RiskEvent | ScoresEvent | SummaryEvent | SessionEvent
)

#: A session's ``uq:sessions`` seq by status: one entry of each, the terminal one last.
STATUS_SEQ: dict[str, int] = {"queued": 0, "started": 1, "finished": 2, "failed": 2, "cancelled": 2}
#: The statuses a session ends in.
TERMINAL_STATUSES: frozenset[str] = frozenset({"finished", "failed", "cancelled"})

AlertStreamEvent = Annotated[AlertEvent | RiskEvent | ScoresEvent | SummaryEvent, Field(discriminator="type")]

#: Which models may appear on which stream (short stream name → model or discriminated union).
STREAM_MODELS: dict[str, object] = {
    "jobs": JobRequest,
    "tokens": TokenEvent,
    "audits": AuditEvent,
    "alerts": AlertStreamEvent,
    "sessions": SessionEvent,
}
