"""The OTLP exporter: consumer group ``otel-exporters`` on ``uq:sessions``, ``uq:audits`` and ``uq:alerts``.

An optional consumer of its own (it changes nothing on the bus): run it and Langfuse, Arize Phoenix
or any OpenTelemetry collector receives each generation as a GenAI span with its uncertainty as
``gen_ai.evaluation.result`` events (``services/otel/mapping.py`` has the mapping).

The OpenTelemetry SDK builds the spans and log-record events; they are exported with the SDK's
OTLP/HTTP exporters **synchronously, once per bus batch**, and the batch is acknowledged only after
the endpoint accepted it. While the endpoint is down the batch is retried with backoff and its
entries stay pending (never dead-lettered for an outage): at least once, as the recorder. A batch
delivered again after a crash is exported again; its span and events keep their ids (derived from
the session id), so a backend that deduplicates by id sees each once.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry._logs import LogRecord
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from services.common.backoff import Backoff
from services.common.bus import Bus, Delivery, Outcome
from services.common.contracts import AlertEvent, AuditEvent, Event, RiskEvent, SessionEvent, SummaryEvent
from services.common.contracts.events import TERMINAL_STATUSES
from services.common.runner import ServiceContext
from services.otel import mapping
from services.otel.settings import OtelSettings

log = logging.getLogger(__name__)

STREAMS = ("sessions", "audits", "alerts")
_OPEN_SESSIONS_MAX = 100_000  # first entries kept for sessions not ended yet (oldest forgotten first)
_NEXT_IDS: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("uq_otel_ids", default=None)


class SessionIds(IdGenerator):
    """Random ids, except for a generation span, whose ids come from its session (``mapping.span_ids``)."""

    def __init__(self) -> None:
        self.random = RandomIdGenerator()

    def generate_trace_id(self) -> int:
        ids = _NEXT_IDS.get()
        return ids[0] if ids else self.random.generate_trace_id()

    def generate_span_id(self) -> int:
        ids = _NEXT_IDS.get()
        return ids[1] if ids else self.random.generate_span_id()


class _Collect(SpanProcessor, LogRecordProcessor):
    """Keeps what the SDK finished, for the exporter to send at the end of the batch."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.logs: list[ReadableLogRecord] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.logs.append(
            ReadableLogRecord(
                log_record=log_record.log_record,
                resource=log_record.resource if log_record.resource is not None else Resource.create({}),
                instrumentation_scope=log_record.instrumentation_scope,
                limits=log_record.limits,
            )
        )

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class OtelExporter:
    """Turns the three streams into OTLP spans and events."""

    def __init__(
        self,
        bus: Bus,
        settings: OtelSettings,
        span_exporter: Any | None = None,
        log_exporter: Any | None = None,
    ) -> None:
        self.bus = bus
        self.settings = settings
        base = settings.otel_endpoint.rstrip("/")
        headers = settings.header_map()
        self.span_exporter = span_exporter or OTLPSpanExporter(
            endpoint=f"{base}/v1/traces", headers=headers, timeout=settings.otel_timeout_s
        )
        self.log_exporter = log_exporter or OTLPLogExporter(
            endpoint=f"{base}/v1/logs", headers=headers, timeout=settings.otel_timeout_s
        )
        resource = Resource.create({"service.name": settings.otel_service_name, "service.namespace": "uq"})
        self.collect = _Collect()
        self.tracer_provider = TracerProvider(resource=resource, id_generator=SessionIds())
        self.tracer_provider.add_span_processor(self.collect)
        self.tracer = self.tracer_provider.get_tracer("services.otel")
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(self.collect)
        self.logger = self.logger_provider.get_logger("services.otel")
        self.open: dict[str, SessionEvent] = {}  # each running session's first lifecycle entry
        self.lock = asyncio.Lock()
        self.stop = asyncio.Event()
        self.exported = {"spans": 0, "events": 0}
        self.endpoint_ok = True
        base_name = settings.instance_name()
        self.consumers = [
            bus.consumer(
                stream,
                settings.otel_group,
                self.handle,
                name=f"{base_name}:{stream}",
                dedupe=False,
                batch_size=settings.otel_batch_size,
                partition=p,
            )
            for stream in STREAMS
            for p in bus.partitions
        ]

    # --- one batch ------------------------------------------------------------------------------

    async def handle(self, deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        async with self.lock:  # the three consumers share the SDK's collector
            for d in deliveries:
                self.emit(d.event)
            spans, logs = self.collect.spans, self.collect.logs
            self.collect.spans, self.collect.logs = [], []
            await self._export(self.span_exporter, spans, SpanExportResult.SUCCESS, "spans")
            await self._export(self.log_exporter, logs, LogRecordExportResult.SUCCESS, "events")
        return [()] * len(deliveries)

    async def _export(self, exporter: Any, items: list[Any], success: object, what: str) -> None:
        if not items:
            return
        backoff = Backoff()
        while True:
            try:
                result = await asyncio.to_thread(exporter.export, items)
            except Exception as exc:  # the SDK's exporters may raise on a broken connection
                log.warning("OTLP export raised", extra={"error": str(exc)})
                result = None
            if result == success:
                self.endpoint_ok = True
                self.exported[what] += len(items)
                return
            self.endpoint_ok = False
            if self.stop.is_set():
                raise RuntimeError(f"OTLP endpoint refused {len(items)} {what}; the batch stays pending")
            log.warning(
                "OTLP endpoint did not accept the batch, retrying",
                extra={"what": what, "items": len(items), "retry_in_s": backoff.delay},
            )
            await backoff.sleep(self.stop)

    # --- entries → SDK objects ------------------------------------------------------------------

    def emit(self, e: Event) -> None:
        if isinstance(e, SessionEvent):
            self._session(e)
        elif isinstance(e, AuditEvent):
            if self.settings.otel_token_events:
                self._event(e.session_id, "uq.token", e.ts_ns, mapping.token_attributes(e, self._content))
        elif isinstance(e, AlertEvent):
            self._event(e.session_id, "uq.alert", e.ts_ns, mapping.alert_attributes(e, self._content), warn=True)
        elif isinstance(e, RiskEvent):
            self._event(e.session_id, "uq.risk.change", e.ts_ns, mapping.risk_attributes(e))
        elif isinstance(e, SummaryEvent):
            for attrs in mapping.evaluation_results(e):
                self._event(e.session_id, mapping.EVALUATION_EVENT, e.ts_ns, attrs)
        # scores entries (live, while a session runs) are superseded by the summary's

    @property
    def _content(self) -> bool:
        return self.settings.otel_capture_content

    def _session(self, e: SessionEvent) -> None:
        if e.status not in TERMINAL_STATUSES:
            first = self.open.get(e.session_id)
            if first is None:
                self.open[e.session_id] = e
            else:  # the earliest time; what any entry said of the prompt, model and provider
                self.open[e.session_id] = first.model_copy(
                    update={
                        "ts_ns": min(first.ts_ns, e.ts_ns),
                        "prompt": first.prompt or e.prompt,
                        "model": first.model or e.model,
                        "provider": first.provider or e.provider,
                    }
                )
            while len(self.open) > _OPEN_SESSIONS_MAX:
                self.open.pop(next(iter(self.open)))
            return
        start = self.open.pop(e.session_id, None)
        ids = mapping.span_ids(e.session_id)
        token = _NEXT_IDS.set(ids)
        try:
            span = self.tracer.start_span(
                mapping.span_name(e.model or (start.model if start else None)),
                kind=SpanKind.CLIENT,
                start_time=min(start.ts_ns, e.ts_ns) if start else e.ts_ns,
                attributes=mapping.span_attributes(start, e, self._content),
                context=Context(),  # a root span: its trace id is the session's
            )
        finally:
            _NEXT_IDS.reset(token)
        if e.status == "failed":
            span.set_status(Status(StatusCode.ERROR, e.reason or "failed"))
        span.end(end_time=e.ts_ns)

    def _event(self, session_id: str, name: str, ts_ns: int, attributes: dict[str, Any], warn: bool = False) -> None:
        trace_id, span_id = mapping.span_ids(session_id)
        parent = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1)))
        self.logger.emit(
            LogRecord(
                timestamp=ts_ns,
                context=set_span_in_context(parent),
                event_name=name,
                severity_text="WARN" if warn else "INFO",
                attributes=attributes,
            )
        )

    # --- running --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        watcher = asyncio.create_task(self._forward(stop))
        try:
            async with asyncio.TaskGroup() as group:
                for consumer in self.consumers:
                    group.create_task(consumer.run(self.stop))
        finally:
            watcher.cancel()

    async def _forward(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stop.set()

    def details(self) -> dict[str, object]:
        return {
            "endpoint": self.settings.otel_endpoint,
            "endpoint_ok": self.endpoint_ok,
            "exported": dict(self.exported),
            "open_sessions": len(self.open),
            "consumers": {c.label: vars(c.stats).copy() for c in self.consumers},
        }

    def close(self) -> None:
        self.span_exporter.shutdown()
        self.log_exporter.shutdown()


async def main(ctx: ServiceContext) -> None:
    settings: OtelSettings = ctx.settings
    exporter = OtelExporter(ctx.bus, settings)
    ctx.heartbeat.details = exporter.details
    ctx.heartbeat.status = "ready"
    log.info("exporting", extra={"endpoint": settings.otel_endpoint, "group": settings.otel_group})
    try:
        await exporter.run(ctx.stop)
    finally:
        exporter.close()
