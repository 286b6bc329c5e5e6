"""The auditor through the real Redis: token entries in, audits (or dead letters) out."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from services.auditor.service import Auditor
from services.auditor.settings import AuditorSettings
from services.common.bus import Bus, Delivery
from services.common.codec import DATA, LOGITS, decode, encode
from services.common.contracts import AuditEvent, TokenEvent
from services.common.settings import CommonSettings
from tests.auditor.factory import full_token, prob_only_token, top_k_token, with_logits
from tests.auditor.reference import reference


@pytest.fixture
def auditor_settings(settings: CommonSettings) -> AuditorSettings:
    return AuditorSettings(**(settings.model_dump() | {"display_top_k": 5}))


async def drain(bus: Bus, auditor: Auditor, settings: AuditorSettings) -> None:
    consumer = bus.consumer("tokens", settings.token_group, auditor.handle)
    await consumer.ensure_group()
    while await consumer.step(block_ms=50):
        pass


async def audits(redis: Redis, bus: Bus) -> list[AuditEvent]:
    entries = await redis.xrange(bus.key("audits"))
    out = [decode("audits", fields) for _id, fields in entries]
    assert all(isinstance(a, AuditEvent) for a in out)
    return out  # type: ignore[return-value]


async def dead(redis: Redis, bus: Bus) -> list[str]:
    return [fields[b"reason"].decode() for _id, fields in await redis.xrange(bus.key("dead"))]


async def test_all_three_kinds_in_right_audits_out(redis: Redis, bus: Bus, auditor_settings: AuditorSettings) -> None:
    rng = np.random.default_rng(0)
    logits = [rng.standard_normal(32_000) * 3 for _ in range(3)]
    tokens: list[TokenEvent] = [full_token("s-full", i, z, int(rng.integers(32_000))) for i, z in enumerate(logits)]
    tokens.append(full_token("s-full-49k", 0, rng.standard_normal(49_152) * 2, 7))  # another vocabulary, same batch
    tokens.append(top_k_token("s-topk", 0, [0.5, 0.25], emitted=1))
    tokens.append(prob_only_token("s-prob", 0, 0.125))
    tokens.append(TokenEvent(session_id="s-none", seq=0, text="?", distribution="none", model="m", provider="push"))
    await bus.publish_many(("tokens", t) for t in tokens)
    await drain(bus, Auditor(auditor_settings), auditor_settings)

    out = {(a.session_id, a.seq): a for a in await audits(redis, bus)}
    assert len(out) == len(tokens)
    assert await dead(redis, bus) == []
    for token in tokens[:4]:
        audit = out[(token.session_id, token.seq)]
        z = np.frombuffer(token.logits or b"", "<f2")
        expected = reference(z, token.token_id or 0)
        got = audit.metrics.model_dump(exclude={"coverage", "exact", "probe"})
        assert audit.metrics.probe is None  # no probe on these tokens: nothing to pass through
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-12)
        assert audit.metrics.exact is True
        assert audit.metrics.coverage == 1.0
        assert audit.top_k == token.top_k[:5]  # display list cut to display_top_k
        assert audit.token_ts_ns == token.ts_ns
        assert (audit.text, audit.token_id, audit.model, audit.distribution) == (
            token.text, token.token_id, "test-model", "full",
        )  # fmt: skip

    top = out[("s-topk", 0)].metrics
    assert (top.exact, top.coverage, top.entropy, top.rank, top.surprisal) == (False, 0.75, pytest.approx(1.5), 2, 2.0)
    assert top.hbar_s == pytest.approx(math.sqrt(3.0))
    prob = out[("s-prob", 0)].metrics
    assert prob.model_dump() == {
        "prob": pytest.approx(0.125), "surprisal": pytest.approx(3.0), "entropy": None, "margin": None,
        "rank": None, "hbar_s": None, "fisher_trace": None, "varentropy": None, "coverage": None, "probe": None,
        "exact": False,
    }  # fmt: skip
    none = out[("s-none", 0)].metrics
    assert none.model_dump(exclude={"exact"}) == dict.fromkeys(none.model_dump(exclude={"exact"}))


async def test_full_logits_without_alternatives_get_a_display_list(
    redis: Redis, bus: Bus, auditor_settings: AuditorSettings
) -> None:
    z = np.arange(100, dtype=np.float64) / 10.0  # token 99 most likely, then 98, …
    token = full_token("s", 0, z, 3).model_copy(update={"top_k": []})
    await bus.publish("tokens", token)
    await drain(bus, Auditor(auditor_settings), auditor_settings)
    (audit,) = await audits(redis, bus)
    assert [a.token_id for a in audit.top_k] == [99, 98, 97, 96, 95]
    assert math.exp(audit.top_k[0].logprob) == pytest.approx(reference(z.astype(np.float16), 99)["prob"], rel=1e-6)


async def test_bad_entries_go_to_dead_letters_and_good_ones_keep_flowing(
    redis: Redis, bus: Bus, auditor_settings: AuditorSettings
) -> None:
    rng = np.random.default_rng(1)
    good = [full_token("s", i, rng.standard_normal(1_000), 5) for i in range(4)]
    nan_z = rng.standard_normal(1_000)
    nan_z[10] = np.nan
    inf_z = rng.standard_normal(1_000)
    inf_z[20] = np.inf
    await bus.publish("tokens", good[0])
    await bus.publish("tokens", with_logits(full_token("bad", 0, rng.standard_normal(1_000), 5), nan_z))
    await bus.publish("tokens", good[1])
    await bus.publish("tokens", with_logits(full_token("bad", 1, rng.standard_normal(1_000), 5), inf_z))
    short = encode(full_token("bad", 2, rng.standard_normal(1_000), 5))
    short[LOGITS] = short[LOGITS][:-2]  # 999 values for a declared vocab_size of 1000
    await redis.xadd(bus.key("tokens"), short)  # type: ignore[arg-type]
    await redis.xadd(bus.key("tokens"), {DATA: b"{not json"})
    wrong_type = json.loads(good[2].model_dump_json())
    wrong_type["seq"] = "three"
    await redis.xadd(bus.key("tokens"), {DATA: json.dumps(wrong_type).encode()})
    out_of_vocab = encode(full_token("bad", 3, rng.standard_normal(1_000), 5))
    data = json.loads(out_of_vocab[DATA])
    data["token_id"] = 5_000
    out_of_vocab[DATA] = json.dumps(data).encode()
    await redis.xadd(bus.key("tokens"), out_of_vocab)  # type: ignore[arg-type]
    await bus.publish("tokens", top_k_token("bad", 4, [0.7, 0.6], emitted=0))
    await bus.publish_many(("tokens", t) for t in good[2:])

    await drain(bus, Auditor(auditor_settings), auditor_settings)

    assert sorted(a.seq for a in await audits(redis, bus) if a.session_id == "s") == [0, 1, 2, 3]
    assert len(await audits(redis, bus)) == 4
    reasons = sorted(await dead(redis, bus))  # decode failures are committed before handler verdicts
    assert len(reasons) == 7
    assert reasons[0].startswith("invalid tokens entry")
    assert reasons[1].startswith("invalid tokens entry: seq")
    assert reasons[2:] == [
        "logits contain +inf (session bad, seq 1)",
        "logits contain NaN (session bad, seq 0)",
        "logits field holds 1998 bytes = 999 float16 values, but vocab_size is 1000",
        "the top_k probabilities sum to more than 1: they are not log-probabilities of one distribution"
        " (session bad, seq 4)",
        "token_id is outside the vocabulary of the logits (session bad, seq 3)",
    ]
    pending = await redis.xpending(bus.key("tokens"), auditor_settings.token_group)
    assert pending["pending"] == 0


async def test_a_redelivered_token_is_audited_once(redis: Redis, bus: Bus, auditor_settings: AuditorSettings) -> None:
    token = top_k_token("s", 0, [0.6, 0.3], emitted=0)
    await bus.publish("tokens", token)
    await bus.publish("tokens", token)  # the producer retried
    await drain(bus, Auditor(auditor_settings), auditor_settings)
    assert len(await audits(redis, bus)) == 1


def test_full_entry_without_token_id_keeps_the_distribution_metrics(auditor_settings: AuditorSettings) -> None:
    z = np.array([2.0, 1.0, 0.0, -1.0])
    token = full_token("s", 0, z, 1).model_copy(update={"token_id": None})
    batch = [token, full_token("s", 1, z, 1)]  # same vocabulary: one batch, one array
    (first,), (second,) = Auditor(auditor_settings).audit(batch)  # type: ignore[misc]
    expected = reference(z.astype(np.float16), 1)
    unknown, known = first[1].metrics, second[1].metrics  # type: ignore[union-attr]
    assert (unknown.prob, unknown.surprisal, unknown.rank, unknown.hbar_s) == (None, None, None, None)
    assert unknown.entropy == pytest.approx(expected["entropy"], rel=1e-5)
    assert unknown.margin == known.margin == pytest.approx(expected["margin"], rel=1e-5)
    assert known.rank == 2


async def test_a_tokens_probe_projection_passes_through(
    redis: Redis, bus: Bus, auditor_settings: AuditorSettings
) -> None:
    token = full_token("s", 0, np.arange(10, dtype=np.float64), 3).model_copy(update={"probe": -1.25})
    await bus.publish("tokens", token)
    await drain(bus, Auditor(auditor_settings), auditor_settings)
    (audit,) = await audits(redis, bus)
    assert audit.metrics.probe == -1.25


async def test_batches_handled_at_once_keep_their_own_logits(auditor_settings: AuditorSettings) -> None:
    """Every partition's consumer calls one auditor's ``handle``, and full-logit batches are computed in
    worker threads at the same time: each batch's audits must come from its own logits (a buffer shared
    between the threads once mixed them)."""
    rng = np.random.default_rng(3)
    vocab, rows = 4096, 48
    auditor = Auditor(auditor_settings)
    batches = []
    for b in range(8):
        z = rng.normal(0.0, 1.0 + b, (rows, vocab))
        batches.append([full_token(f"s{b}", i, z[i], int(rng.integers(vocab))) for i in range(rows)])
    alone = [Auditor(auditor_settings).audit(batch) for batch in batches]
    for _ in range(5):
        together = await asyncio.gather(*(auditor.handle([Delivery(b"0-0", e) for e in batch]) for batch in batches))
        for got, want in zip(together, alone, strict=True):  # equal to float rounding; a mixed-up row is far off
            assert _values(got) == pytest.approx(_values(want), rel=1e-6)


def _values(outcomes: list[Any]) -> list[float]:
    return [v for o in outcomes for v in (o[0][1].metrics.surprisal, o[0][1].metrics.entropy, o[0][1].metrics.hbar_s)]
