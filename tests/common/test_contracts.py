"""Every contract survives encoding, Redis and decoding unchanged; bad entries are refused with a reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from services.common.codec import DATA, LOGITS, decode, encode, logits_array
from services.common.contracts import JobRequest, SamplingParams, SummaryEvent, TokenEvent
from services.common.errors import EntryError
from tests.common.events import samples, token


@pytest.mark.parametrize("stream", ["jobs", "tokens", "audits", "alerts", "sessions"])
async def test_round_trip_through_redis(stream: str, redis: Redis, prefix: str) -> None:
    events = samples()[stream]
    key = f"{prefix}{stream}"
    for event in events:
        await redis.xadd(key, encode(event))  # type: ignore[arg-type]
    read = await redis.xrange(key)
    decoded = [decode(stream, fields) for _, fields in read]
    assert decoded == events
    assert [type(d) for d in decoded] == [type(e) for e in events]


def test_full_logits_travel_as_float16_bytes() -> None:
    event = token(vocab=49152)
    fields = encode(event)
    assert set(fields) == {DATA, LOGITS}
    assert len(fields[LOGITS]) == 2 * 49152
    assert b'"logits":' not in fields[DATA]  # not in the JSON
    expected = np.linspace(-4, 4, 49152).astype(np.float32).astype(np.float16)
    np.testing.assert_array_equal(logits_array(decode("tokens", fields)), expected)


def test_envelope_fields_present_in_json() -> None:
    for stream, events in samples().items():
        for event in events:
            data = json.loads(encode(event)[DATA])
            assert data["schema_version"] == 1, stream
            assert {"type", "session_id", "seq", "ts_ns"} <= set(data), stream
            assert data["ts_ns"] > 1_600_000_000 * 10**9


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"nodata": b"x"}, "no 'data' field"),
        ({DATA: b"{not json"}, "invalid tokens entry"),
        ({DATA: b'{"session_id": "a", "seq": -1, "text": "x", "distribution": "none", "model": "m"}'}, "seq"),
        (
            {DATA: b'{"session_id": "a", "seq": 0, "text": "x", "distribution": "none", "model": "m", "bogus": 1}'},
            "bogus: Extra inputs are not permitted",
        ),
        (
            {
                DATA: b'{"session_id": "a", "seq": 0, "text": "x", "distribution": "full", "model": "m", '
                b'"vocab_size": 4, "logits_dtype": "float16"}'
            },
            "no 'logits' field",
        ),
        (
            {
                DATA: b'{"session_id": "a", "seq": 0, "text": "x", "distribution": "full", "model": "m", '
                b'"vocab_size": 4, "logits_dtype": "float16"}',
                LOGITS: b"\x00" * 6,
            },
            "3 float16 values, but vocab_size is 4",
        ),
        (
            {
                DATA: b'{"session_id": "a", "seq": 0, "text": "x", "distribution": "none", "model": "m"}',
                LOGITS: b"\x00\x00",
            },
            "distribution is 'none'",
        ),
        ({DATA: b'{"session_id": "a b", "seq": 0, "text": "x", "distribution": "none", "model": "m"}'}, "session_id"),
    ],
)
def test_bad_token_entries_are_refused_with_a_reason(fields: dict[bytes, bytes], reason: str) -> None:
    with pytest.raises(EntryError) as caught:
        decode("tokens", fields)
    assert reason in caught.value.reason


def test_alerts_stream_is_discriminated_by_type() -> None:
    for event in samples()["alerts"]:
        assert type(decode("alerts", encode(event))) is type(event)
    with pytest.raises(EntryError, match=r"does not match any of the expected tags|type"):
        decode("alerts", {DATA: b'{"type": "nope", "session_id": "a", "seq": 0}'})


def test_models_are_strict() -> None:
    with pytest.raises(ValidationError, match="temprature"):
        SamplingParams.model_validate({"temprature": 1.0})
    with pytest.raises(ValidationError, match="max_tokens"):
        JobRequest(session_id="a", seq=0, prompt="x", sampling=SamplingParams(max_tokens=0))
    with pytest.raises(ValidationError, match="logprob"):
        TokenEvent(session_id="a", seq=0, text="x", distribution="prob_only", logprob=0.5, model="m")


def test_a_summary_names_firings_and_keeps_the_old_name_as_an_alias() -> None:
    """docs/streams.md, "Changes": ``alerts_by_rule`` (v1.0) is ``firings_by_rule``; both are written."""
    old = {"session_id": "s", "seq": 3, "tokens": 9, "final_risk": "safe", "status": "finished"}
    from_old = decode("alerts", {DATA: json.dumps({**old, "type": "summary", "alerts_by_rule": {"R": 4}}).encode()})
    new = SummaryEvent(**old, firings_by_rule={"R": 4}, alerts_sent_by_rule={"R": 1})  # type: ignore[arg-type]

    assert isinstance(from_old, SummaryEvent)
    assert (from_old.firings_by_rule, from_old.alerts_by_rule, from_old.alerts_sent_by_rule) == (
        {"R": 4},
        {"R": 4},
        None,
    )
    written = json.loads(encode(new)[DATA])
    assert (written["firings_by_rule"], written["alerts_by_rule"], written["alerts_sent_by_rule"]) == (
        {"R": 4},
        {"R": 4},
        {"R": 1},
    )
