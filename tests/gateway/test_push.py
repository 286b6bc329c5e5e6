"""The push API's service layer: token conversion and sessions, through the real Redis."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time

import numpy as np
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.codec import decode, logits_array
from services.common.contracts import SessionEvent, TokenEvent
from services.common.leases import Leases
from services.common.settings import CommonSettings
from services.common.validation import summarise
from services.gateway.errors import BadRequestError, ConflictError, NotFoundError
from services.gateway.history import HistoryService
from services.gateway.live import LiveState
from services.gateway.models import PushFinishRequest, PushStartRequest, PushToken
from services.gateway.push import PushService, token_events
from services.gateway.settings import GatewaySettings
from tests.waiting import eventually


def convert(**fields: object) -> TokenEvent:
    (event,) = token_events("s", "m", "openai", [PushToken.model_validate(fields)])
    return event


def test_probability_becomes_logprob_prob_only() -> None:
    ev = convert(text="Hi", probability=0.25)
    assert ev.distribution == "prob_only"
    assert ev.logprob == pytest.approx(math.log(0.25))
    assert (ev.seq, ev.model, ev.provider, ev.text) == (0, "m", "openai", "Hi")  # seqs come when published


def test_openai_content_item_accepted_as_it_comes() -> None:
    item = {
        "token": " Paris",
        "logprob": -0.1,
        "bytes": [32, 80, 97, 114, 105, 115],
        "top_logprobs": [
            {"token": " Lyon", "logprob": -3.0, "bytes": [32]},
            {"token": " Paris", "logprob": -0.1, "bytes": [32]},
        ],
    }
    ev = convert(**item)
    assert ev.distribution == "top_k"
    assert ev.text == " Paris"
    assert [(a.text, a.logprob) for a in ev.top_k] == [(" Paris", -0.1), (" Lyon", -3.0)]


def test_legacy_top_logprobs_dict() -> None:
    ev = convert(text="a", logprob=-0.5, top_logprobs={"b": -2.0, "a": -0.5})
    assert [a.text for a in ev.top_k] == ["a", "b"]


def test_no_distribution_is_none() -> None:
    assert convert(text="x").distribution == "none"


def test_full_logits_list_and_base64_give_the_same_entry() -> None:
    logits = np.array([2.0, 1.0, 0.0, -1.0], dtype=np.float16)
    as_list = convert(text="b", token_id=1, logits=[float(x) for x in logits])
    as_b64 = convert(text="b", token_id=1, logits=base64.b64encode(logits.astype("<f2").tobytes()).decode())
    for ev in (as_list, as_b64):
        assert ev.distribution == "full"
        assert ev.vocab_size == 4
        assert np.array_equal(logits_array(ev), logits)
        p = np.exp(logits.astype(np.float64)) / np.exp(logits.astype(np.float64)).sum()
        assert ev.logprob == pytest.approx(math.log(p[1]))
        assert ev.top_k == []  # the auditor takes its display top-k from the logits (UQ_DISPLAY_TOP_K)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"text": "a", "logits": [1.0, 2.0]}, "tokens.0.token_id"),
        ({"text": "a", "token_id": 5, "logits": [1.0, 2.0]}, "tokens.0.token_id"),
        ({"text": "a", "token_id": 0, "logits": "%%%"}, "tokens.0.logits"),
        ({"text": "a", "token_id": 0, "logits": base64.b64encode(b"abc").decode()}, "tokens.0.logits"),
        ({"text": "a", "token_id": 0, "logits": [1.0]}, "tokens.0.logits"),
        ({"text": "a", "token_id": 0, "logits": [1.0, 1e6]}, "tokens.0.logits"),
        ({"text": "a", "top_logprobs": {"b": 0.5}}, "tokens.0.top_logprobs"),
        ({"text": "a", "top_logprobs": {"a": -0.1, "b": -0.2}}, "tokens.0.top_logprobs"),  # mass 1.72
    ],
)
def test_unusable_tokens_name_the_field(fields: dict[str, object], param: str) -> None:
    with pytest.raises(BadRequestError) as err:
        convert(**fields)
    assert err.value.param == param


def test_nan_logits_refused() -> None:
    nan = base64.b64encode(np.array([1.0, np.nan], dtype="<f2").tobytes()).decode()
    with pytest.raises(BadRequestError, match="finite"):
        convert(text="a", token_id=0, logits=nan)


@pytest.fixture
def service(redis: Redis, settings: GatewaySettings) -> PushService:
    s = GatewaySettings(**settings.model_dump(), push_max_batch=3)
    return PushService(Bus(redis, s), s, HistoryService(None, LiveState()))


async def read(redis: Redis, service: PushService, stream: str) -> list[object]:
    entries = await redis.xrange(service.bus.key(stream))
    return [decode(stream, fields) for _, fields in entries]


async def test_session_lifecycle_publishes_sessions_and_tokens(service: PushService, redis: Redis) -> None:
    started = await service.start(PushStartRequest(model="gpt-x", provider="openai", prompt="Hi"))
    sid = started.session_id
    first = await service.push(sid, [PushToken(text="a", probability=0.5), PushToken(text="b")])
    second = await service.push(sid, [PushToken(text="c", logprob=-1.0)])
    assert (first.first_seq, first.last_seq, second.first_seq, second.last_seq) == (0, 1, 2, 2)
    done = await service.finish(sid, PushFinishRequest(reason="stop"))
    assert (done.status, done.tokens) == ("finished", 3)

    tokens = await read(redis, service, "tokens")
    assert [(t.seq, t.text, t.distribution, t.model, t.provider) for t in tokens] == [  # type: ignore[attr-defined]
        (0, "a", "prob_only", "gpt-x", "openai"),
        (1, "b", "none", "gpt-x", "openai"),
        (2, "c", "prob_only", "gpt-x", "openai"),
    ]
    sessions = await read(redis, service, "sessions")
    assert all(isinstance(e, SessionEvent) for e in sessions)
    assert [(e.seq, e.status, e.tokens, e.reason) for e in sessions] == [  # type: ignore[attr-defined]
        (0, "queued", None, None),
        (1, "started", None, None),
        (2, "finished", 3, "stop"),
    ]
    with pytest.raises(ConflictError):
        await service.push(sid, [PushToken(text="late")])
    with pytest.raises(ConflictError):
        await service.finish(sid, PushFinishRequest())


async def test_unknown_session_duplicate_id_and_batch_limit(service: PushService) -> None:
    with pytest.raises(NotFoundError):
        await service.push("nope", [PushToken(text="a")])
    await service.start(PushStartRequest(model="m", session_id="mine-1"))
    with pytest.raises(ConflictError):
        await service.start(PushStartRequest(model="m", session_id="mine-1"))
    with pytest.raises(BadRequestError) as err:
        await service.push("mine-1", [PushToken(text="a")] * 4)
    assert err.value.param == "tokens"


async def test_a_bad_token_rejects_the_whole_batch(service: PushService, redis: Redis) -> None:
    sid = (await service.start(PushStartRequest(model="m"))).session_id
    with pytest.raises(BadRequestError) as err:
        await service.push(sid, [PushToken(text="ok"), PushToken(text="bad", logits=[1.0, 2.0])])
    assert err.value.param == "tokens.1.token_id"
    assert await read(redis, service, "tokens") == []
    assert (await service.push(sid, [PushToken(text="ok")])).first_seq == 0


# --- session ids are claimed once (issue 14, item 1) ---------------------------------------------------


async def sessions_of(redis: Redis, service: PushService, sid: str) -> list[tuple[int, str]]:
    return [(e.seq, e.status) for e in await read(redis, service, "sessions") if e.session_id == sid]  # type: ignore[attr-defined]


async def test_the_id_of_a_generated_session_is_refused(service: PushService, redis: Redis) -> None:
    service.live.ensure("gen-1", model="SmolLM2", provider="transformers", prompt="Hi")  # a job this gateway saw
    with pytest.raises(ConflictError, match="already exists") as err:
        await service.start(PushStartRequest(model="m", session_id="gen-1"))
    assert err.value.param == "session_id"
    assert await sessions_of(redis, service, "gen-1") == []  # the generated session's record is untouched
    with pytest.raises(NotFoundError):
        await service.push("gen-1", [PushToken(text="a")])


async def test_the_id_of_a_push_session_whose_key_expired_is_refused(service: PushService, redis: Redis) -> None:
    await service.start(PushStartRequest(model="m", session_id="old-1"))
    await service.push("old-1", [PushToken(text="a", logprob=-0.5)])
    await service.finish("old-1", PushFinishRequest())
    hash_ttl = await redis.ttl(service._key("old-1"))
    claim_ttl = await redis.ttl(service._claim_key("old-1"))
    assert claim_ttl - hash_ttl >= service.settings.dedupe_ttl_s - 5  # outlives the hash by the dedupe window
    await redis.delete(service._key("old-1"))  # as UQ_PUSH_SESSION_TTL_S would
    with pytest.raises(ConflictError, match="already exists"):
        await service.start(PushStartRequest(model="m", session_id="old-1"))
    assert await sessions_of(redis, service, "old-1") == [(0, "queued"), (1, "started"), (2, "finished")]


async def test_concurrent_starts_with_one_id_have_one_winner(service: PushService) -> None:
    results = await asyncio.gather(
        *(service.start(PushStartRequest(model=f"m{i}", session_id="race-1")) for i in range(8)), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(r, ConflictError) for r in results if r not in won)


# --- abandoned push sessions end (issue 14, item 2) ----------------------------------------------------


@pytest.fixture
def quiet_service(redis: Redis, settings: GatewaySettings) -> PushService:
    s = GatewaySettings(**settings.model_dump(), push_idle_timeout_s=0.2)
    return PushService(Bus(redis, s), s, HistoryService(None, LiveState()))


async def sweep_until(leases: Leases, sid: str, wait_s: float = 10.0) -> None:
    async def swept() -> bool:
        return sid in await leases.sweep(30.0)

    await eventually(swept, what=f"{sid}'s lease to expire and be swept", timeout_s=wait_s, interval_s=0.05)


async def test_a_quiet_push_session_ends_failed_and_late_calls_get_409(
    quiet_service: PushService, redis: Redis
) -> None:
    sid = (await quiet_service.start(PushStartRequest(model="m"))).session_id
    await quiet_service.push(sid, [PushToken(text="a", logprob=-0.1)])
    await sweep_until(quiet_service.leases, sid)
    [failed] = [e for e in await read(redis, quiet_service, "sessions") if e.status == "failed"]  # type: ignore[attr-defined]
    assert failed.session_id == sid and failed.seq == 2  # type: ignore[attr-defined]
    assert failed.reason.startswith("abandoned: no tokens or finish for 0.2 s (UQ_PUSH_IDLE_TIMEOUT_S)")  # type: ignore[attr-defined]
    with pytest.raises(ConflictError, match=r"already ended failed: abandoned: no tokens or finish for 0\.2 s"):
        await quiet_service.push(sid, [PushToken(text="late")])
    with pytest.raises(ConflictError, match="already ended failed"):
        await quiet_service.finish(sid, PushFinishRequest())
    with pytest.raises(ConflictError, match="already ended"):
        await quiet_service.finish(sid, PushFinishRequest())
    assert [t.seq for t in await read(redis, quiet_service, "tokens")] == [0]  # type: ignore[attr-defined]
    statuses = [e.status for e in await read(redis, quiet_service, "sessions")]  # type: ignore[attr-defined]
    assert statuses == ["queued", "started", "failed"]  # one terminal entry, the sweeper's


async def test_pushing_renews_the_lease_and_finishing_releases_it(service: PushService, redis: Redis) -> None:
    sid = (await service.start(PushStartRequest(model="m"))).session_id
    zset = service.leases.zset(sid)
    owner = await redis.hget(service.leases.owners(sid), sid)
    assert owner == b"push-api:300"
    first = await redis.zscore(zset, sid)
    assert first is not None and abs(first / 1000 - time.time() - 300) < 5
    await redis.zadd(zset, {sid: 0})  # as if long ago
    await service.push(sid, [PushToken(text="a")])
    renewed = await redis.zscore(zset, sid)
    assert renewed is not None and abs(renewed / 1000 - time.time() - 300) < 5
    await service.finish(sid, PushFinishRequest())
    assert await redis.zscore(zset, sid) is None
    assert await service.leases.sweep(30.0) == []  # a finished session is never failed afterwards


# --- OpenAI's conventions (issue 14, item 6) -----------------------------------------------------------


def test_logprobs_a_rounding_over_zero_are_clamped_to_zero() -> None:
    ev = convert(
        token="a", logprob=1e-7, top_logprobs=[{"token": "a", "logprob": 1.2e-7}, {"token": "b", "logprob": -20}]
    )
    assert ev.logprob == 0.0
    assert [(a.text, a.logprob) for a in ev.top_k] == [("a", 0.0), ("b", -20.0)]
    assert convert(text="a", top_logprobs={"a": 3e-7}).top_k[0].logprob == 0.0
    with pytest.raises(ValidationError) as err:
        PushToken.model_validate({"text": "a", "logprob": 0.01})  # not rounding: a probability of 1.01
    assert err.value.errors()[0]["loc"] == ("logprob",)


def test_a_logprob_below_the_floor_passes_as_it_is() -> None:
    ev = convert(
        token=" x",
        logprob=-9999.0,
        top_logprobs=[{"token": " y", "logprob": -0.01}, {"token": " x", "logprob": -9999.0}],
    )
    assert (ev.distribution, ev.logprob) == ("top_k", -9999.0)
    assert [(a.text, a.logprob) for a in ev.top_k] == [(" y", -0.01), (" x", -9999.0)]
    assert convert(text="x", logprob=-9999.0).distribution == "prob_only"
    # two values below the floor are the same "below the floor", not a contradiction
    assert convert(text="x", logprob=-9999.0, top_logprobs={"x": -12000.0}).logprob == -9999.0


def test_empty_top_logprobs_means_no_alternatives_known() -> None:
    assert convert(text="a", logprob=-0.2, top_logprobs=[]).distribution == "prob_only"
    assert convert(text="a", top_logprobs={}).distribution == "none"


def test_agreeing_up_to_rounding_is_accepted() -> None:
    ev = convert(
        token="a", logprob=-0.1000004, top_logprobs=[{"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -3}]
    )
    assert ev.logprob == pytest.approx(-0.1000004)
    # the same text twice with different bytes is two tokens; the emitted one agrees with one of them
    two = [{"token": "\ufffd", "logprob": -1.0, "bytes": [226]}, {"token": "\ufffd", "logprob": -2.0, "bytes": [227]}]
    assert len(convert(token="\ufffd", logprob=-2.0, bytes=[227], top_logprobs=two).top_k) == 2


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        (
            {
                "token": "a",
                "logprob": -0.1,
                "top_logprobs": [{"token": "b", "logprob": -0.5}, {"token": "a", "logprob": -2.0}],
            },
            "tokens.0.logprob",
            "contradicts top_logprobs.1 = -2",
        ),
        ({"text": "a", "probability": 0.9, "top_logprobs": {"a": -2.0}}, "tokens.0.logprob", "contradicts"),
        (
            {
                "token": "a",
                "logprob": -0.1,
                "top_logprobs": [{"token": "b", "logprob": -3}, {"token": "b", "logprob": -3}],
            },
            "tokens.0.top_logprobs.1.token",
            "again (as top_logprobs.0)",
        ),
        ({"text": "z", "logprob": -0.1, "top_logprobs": {"a": -0.5}}, "tokens.0.logprob", "is not in top_logprobs"),
        ({"text": "a", "top_logprobs": {"b": 0.5}}, "tokens.0.top_logprobs", "must be a finite number"),
    ],
)
def test_contradictory_tokens_are_refused_naming_the_field(fields: dict[str, object], param: str, says: str) -> None:
    with pytest.raises(BadRequestError) as err:
        convert(**fields)
    assert err.value.param == param
    assert says in err.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ('{"text": "a", "logprob": -Infinity}', "tokens.0.logprob"),
        ('{"text": "a", "logprob": NaN}', "tokens.0.logprob"),
        ('{"text": "a", "top_logprobs": {"b": -Infinity}}', "tokens.0.top_logprobs.b"),
        ('{"text": "a", "top_logprobs": {"b": NaN}}', "tokens.0.top_logprobs.b"),
        (
            '{"text": "a", "top_logprobs": [{"token": "c", "logprob": -1}, {"token": "b", "logprob": -Infinity}]}',
            "tokens.0.top_logprobs.1.logprob",
        ),
    ],
)
def test_non_finite_logprobs_are_refused_by_the_strict_model(body: str, param: str) -> None:
    """-Infinity was accepted and then reached the auditor as null (dead-lettered: a 202 lost); the
    floor convention is -9999. The request model refuses it before any token is published."""
    with pytest.raises(ValidationError, match="finite number") as err:
        PushToken.model_validate_json(body)
    assert (
        summarise(
            err.value.errors(),
            root=json.loads(body.replace("-Infinity", "null").replace("NaN", "null")),
            under="tokens.0",
        ).param
        == param
    )


async def test_concurrent_finishes_end_the_session_once_with_every_token_counted(
    service: PushService, redis: Redis
) -> None:
    sid = (await service.start(PushStartRequest(model="m"))).session_id
    await service.push(sid, [PushToken(text="a"), PushToken(text="b")])
    results = await asyncio.gather(
        service.finish(sid, PushFinishRequest()),
        service.finish(sid, PushFinishRequest(status="cancelled")),
        service.push(sid, [PushToken(text="c")]),
        return_exceptions=True,
    )
    finished = [r for r in results[:2] if not isinstance(r, BaseException)]
    assert len(finished) == 1 and isinstance(next(r for r in results[:2] if r not in finished), ConflictError)
    pushed = 0 if isinstance(results[2], ConflictError) else 1
    terminal = [e for e in await read(redis, service, "sessions") if e.seq == 2]  # type: ignore[attr-defined]
    assert len(terminal) == 1
    assert terminal[0].tokens == finished[0].tokens == 2 + pushed  # type: ignore[attr-defined, union-attr]
    assert len(await read(redis, service, "tokens")) == 2 + pushed


async def test_admission_never_admits_more_than_the_room_even_between_readings(
    redis: Redis, settings: CommonSettings
) -> None:
    """Concurrent pushes draw from one reading of the backlog; what they admitted but have not published
    yet counts against the next reading, so together they never pass the room."""
    from services.gateway.push import Admission
    from services.gateway.settings import GatewaySettings
    from tests.common.events import token

    gw = GatewaySettings(**(settings.model_dump() | {"maxlen_tokens": 100, "push_backlog_share": 0.8}))
    bus = Bus(redis, gw)
    await redis.xgroup_create(bus.key("tokens"), gw.token_group, id="0", mkstream=True)
    admission = Admission(bus, gw)

    answers = await asyncio.gather(*(admission.admit(10) for _ in range(12)))  # 120 asked, room 80

    assert answers.count(-1) == 8 and all(a in (-1, 0) for a in answers)
    admission.expire()  # a fresh reading: the 80 are still in flight, not yet on the stream
    assert await admission.admit(1) == 0
    await bus.publish_many([("tokens", token("s", i)) for i in range(80)])
    admission.published(80)
    admission.expire()
    assert await admission.admit(1) == 0  # now on the stream, unread: still no room
    taken = await redis.xreadgroup(gw.token_group, "c", {bus.key("tokens"): ">"}, count=80)
    await redis.xack(bus.key("tokens"), gw.token_group, *[eid for eid, _ in taken[0][1]])
    assert await admission.admit(40) == -1  # it did not fit in the last reading: read again, the auditors caught up
