"""The OTLP exporter against the real Redis and an OTLP/HTTP receiver decoding what it gets
(opentelemetry-proto): GenAI spans, ``gen_ai.evaluation.result`` events parented to them, retries
while the endpoint is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.contracts import (
    AlertEvent,
    AuditEvent,
    Event,
    Metrics,
    RiskEvent,
    SessionEvent,
    SummaryEvent,
)
from services.common.settings import CommonSettings
from services.otel import mapping
from services.otel.service import STREAMS, OtelExporter
from services.otel.settings import OtelSettings
from tests.otel_receiver import OtlpReceiver
from tests.waiting import eventually

T0 = 1_700_000_000_000_000_000


def session(sid: str, n: int = 3, *, status: str = "finished", reason: str = "eos") -> list[Event]:
    events: list[Event] = [
        SessionEvent(session_id=sid, seq=0, ts_ns=T0, status="queued", prompt="Capital of France?", model="m-1"),
        SessionEvent(session_id=sid, seq=1, ts_ns=T0 + 5, status="started", model="m-1", provider="transformers"),
    ]
    for i in range(n):
        metrics = Metrics(prob=0.5, surprisal=1.0, entropy=0.8 + i, hbar_s=0.9 + i, rank=1 + i, exact=True)
        events.append(
            AuditEvent(
                session_id=sid,
                seq=i,
                ts_ns=T0 + 10 + i,
                text=f" w{i}",
                distribution="full",
                metrics=metrics,
                model="m-1",
                token_ts_ns=T0 + 10 + i,
            )
        )
    events += [
        AlertEvent(
            session_id=sid,
            seq=0,
            ts_ns=T0 + 20,
            rule="HIGH_UNCERTAINTY",
            severity="warning",
            message="ℏₛ 2.9 ≥ 2.5",
            token_seq=2,
            token_text=" w2",
            values={"hbar_s": 2.9},
            rules=["HIGH_UNCERTAINTY"],
        ),
        RiskEvent(session_id=sid, seq=1, ts_ns=T0 + 21, level="critical", previous="safe", reason="r", token_seq=2),
        SessionEvent(session_id=sid, seq=2, ts_ns=T0 + 30, status=status, reason=reason, tokens=n, prompt_tokens=7),  # type: ignore[arg-type]
        SummaryEvent(
            session_id=sid,
            seq=2,
            ts_ns=T0 + 31,
            tokens=n,
            firings_by_rule={"HIGH_UNCERTAINTY": 1},
            alerts_by_rule={"HIGH_UNCERTAINTY": 1},
            max_hbar_s=2.9,
            mean_hbar_s=1.9,
            perplexity=2.0,
            final_risk="critical",
            peak_risk="critical",
            status=status,  # type: ignore[arg-type]
            p_wrong=0.81,
            profile="m-1@qa-v1",
        ),
    ]
    return events


def stream_of(e: Event) -> str:
    if isinstance(e, SessionEvent):
        return "sessions"
    return "audits" if isinstance(e, AuditEvent) else "alerts"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def otel_settings(settings: CommonSettings, receiver: OtlpReceiver, **kw: object) -> OtelSettings:
    return OtelSettings(**{**settings.model_dump(), "otel_endpoint": receiver.url, "otel_timeout_s": 1.0, **kw})


@pytest.fixture
async def running(bus: Bus, settings: CommonSettings, receiver: OtlpReceiver) -> AsyncIterator[OtelExporter]:
    exporter = OtelExporter(bus, otel_settings(settings, receiver))
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(stop))
    yield exporter
    stop.set()
    await asyncio.wait_for(task, 15)
    exporter.close()


async def test_a_session_becomes_a_genai_span_with_its_scores_as_evaluation_events_parented_to_it(
    bus: Bus, receiver: OtlpReceiver, running: OtelExporter
) -> None:
    await bus.publish_many([(stream_of(e), e) for e in session("otel-1")])

    await eventually(lambda: receiver.got.spans and len(receiver.got.logs) >= 10, what="span and events", timeout_s=20)

    [span] = receiver.got.spans
    trace_id, span_id = mapping.span_ids("otel-1")
    assert (span["trace_id"], span["span_id"]) == (f"{trace_id:032x}", f"{span_id:016x}")
    assert span["name"] == "text_completion m-1" and span["kind"] == 3  # SPAN_KIND_CLIENT
    assert (span["start"], span["end"]) == (T0, T0 + 30)
    assert span["attributes"] == {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "transformers",
        "gen_ai.request.model": "m-1",
        "gen_ai.response.model": "m-1",
        "gen_ai.response.id": "otel-1",
        "gen_ai.response.finish_reasons": ["eos"],
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.input_tokens": 7,
        "uq.session_id": "otel-1",
        "uq.status": "finished",
    }  # no prompt: content capture is off by default
    assert span["resource"]["service.name"] == "semantic-uncertainty-runtime"

    assert all((r["trace_id"], r["span_id"]) == (span["trace_id"], span["span_id"]) for r in receiver.got.logs)
    evaluations = {
        r["attributes"]["gen_ai.evaluation.name"]: r["attributes"]
        for r in receiver.got.logs
        if r["event_name"] == "gen_ai.evaluation.result"
    }
    assert evaluations["uq.p_wrong"] == {
        "gen_ai.evaluation.name": "uq.p_wrong",
        "gen_ai.evaluation.score.value": 0.81,
        "gen_ai.evaluation.score.label": "critical",
        "gen_ai.evaluation.explanation": "calibrated on profile m-1@qa-v1",
        "gen_ai.response.id": "otel-1",
    }
    assert evaluations["uq.hbar_s.mean"]["gen_ai.evaluation.score.value"] == 1.9
    assert evaluations["uq.risk.peak"]["gen_ai.evaluation.score.label"] == "critical"
    assert evaluations["uq.perplexity"]["gen_ai.evaluation.score.value"] == 2.0
    tokens = sorted((r for r in receiver.got.logs if r["event_name"] == "uq.token"), key=lambda r: r["time"])
    assert [t["attributes"]["uq.token.seq"] for t in tokens] == [0, 1, 2]
    assert tokens[2]["attributes"]["uq.token.hbar_s"] == 2.9 and "uq.token.text" not in tokens[2]["attributes"]
    [alert] = [r for r in receiver.got.logs if r["event_name"] == "uq.alert"]
    assert alert["attributes"]["uq.alert.rule"] == "HIGH_UNCERTAINTY"
    assert alert["attributes"]["uq.alert.value.hbar_s"] == 2.9 and alert["attributes"]["uq.token.seq"] == 2
    [risk] = [r for r in receiver.got.logs if r["event_name"] == "uq.risk.change"]
    assert risk["attributes"]["uq.risk.level"] == "critical"


async def test_a_failed_session_is_an_error_span(bus: Bus, receiver: OtlpReceiver, running: OtelExporter) -> None:
    await bus.publish_many([(stream_of(e), e) for e in session("otel-f", status="failed", reason="out of memory")])

    await eventually(lambda: receiver.got.spans, what="the span", timeout_s=20)

    [span] = receiver.got.spans
    assert span["status"] == 2  # STATUS_CODE_ERROR
    assert span["attributes"]["error.type"] == "out of memory"


async def test_while_the_endpoint_is_down_entries_stay_pending_and_all_arrive_after(
    bus: Bus, redis: Redis, receiver: OtlpReceiver, running: OtelExporter
) -> None:
    receiver.refuse = 6
    await bus.publish_many([(stream_of(e), e) for e in session("otel-down")])

    await eventually(lambda: receiver.got.refused >= 6, what="the endpoint refusing", timeout_s=30)
    await eventually(lambda: receiver.got.spans, what="the span after the outage", timeout_s=60)
    await eventually(
        lambda: sum(r["event_name"] == "gen_ai.evaluation.result" for r in receiver.got.logs) >= 5,
        what="the evaluation events after the outage",
        timeout_s=60,
    )

    async def nothing_pending() -> bool:
        counts = [int((await redis.xpending(bus.key(s), "otel-exporters"))["pending"]) for s in STREAMS]
        return sum(counts) == 0

    await eventually(nothing_pending, what="every entry acknowledged", timeout_s=30)
    assert await redis.xlen(bus.key("dead")) == 0
    # at least once: a batch held back long enough is delivered again, with the same ids (a backend dedupes)
    assert {(s["trace_id"], s["span_id"]) for s in receiver.got.spans} == {
        (f"{mapping.span_ids('otel-down')[0]:032x}", f"{mapping.span_ids('otel-down')[1]:016x}")
    }


async def test_content_is_exported_only_when_asked(bus: Bus, settings: CommonSettings, receiver: OtlpReceiver) -> None:
    exporter = OtelExporter(bus, otel_settings(settings, receiver, otel_capture_content=True, otel_token_events=False))
    for e in session("otel-c"):
        exporter.emit(e)
    spans, logs = exporter.collect.spans, exporter.collect.logs

    [span] = spans
    assert span.attributes is not None
    assert "Capital of France?" in str(span.attributes["gen_ai.input.messages"])
    assert not [r for r in logs if r.log_record.event_name == "uq.token"]  # token events off
    [alert] = [r for r in logs if r.log_record.event_name == "uq.alert"]
    assert alert.log_record.attributes is not None and alert.log_record.attributes["uq.token.text"] == " w2"
    exporter.close()


def test_ids_are_the_sessions_and_differ_between_sessions() -> None:
    assert mapping.span_ids("a") == mapping.span_ids("a") != mapping.span_ids("b")
    trace_id, span_id = mapping.span_ids("a")
    assert 0 < trace_id < 2**128 and 0 < span_id < 2**64
