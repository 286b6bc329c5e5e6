"""An OTLP/HTTP receiver for tests: accepts ``/v1/traces`` and ``/v1/logs`` (protobuf), decodes them
with opentelemetry-proto and keeps what arrived; it can refuse requests to play an endpoint that is down."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def value_of(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(v.kvlist_value.values)
    return getattr(v, kind) if kind else None


def attributes_of(kvs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


@dataclass
class Received:
    spans: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    refused: int = 0


class OtlpReceiver:
    """``with OtlpReceiver() as r:`` → ``r.url`` is the OTLP base URL; ``r.got`` what arrived."""

    def __init__(self) -> None:
        self.got = Received()
        self.refuse = 0  # answer this many requests with 503 first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.got.requests += 1
                    if receiver.refuse > 0:
                        receiver.refuse -= 1
                        receiver.got.refused += 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    if self.path == "/v1/traces":
                        answer = receiver._traces(body)
                    elif self.path == "/v1/logs":
                        answer = receiver._logs(body)
                    else:
                        self.send_response(404)
                        self.end_headers()
                        return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _traces(self, body: bytes) -> bytes:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            resource = attributes_of(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.got.spans.append(
                        {
                            "name": s.name,
                            "kind": s.kind,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex(),
                            "start": s.start_time_unix_nano,
                            "end": s.end_time_unix_nano,
                            "status": s.status.code,
                            "attributes": attributes_of(s.attributes),
                            "resource": resource,
                        }
                    )
        return ExportTraceServiceResponse().SerializeToString()

    def _logs(self, body: bytes) -> bytes:
        req = ExportLogsServiceRequest.FromString(body)
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    self.got.logs.append(
                        {
                            "event_name": r.event_name,
                            "time": r.time_unix_nano,
                            "trace_id": r.trace_id.hex(),
                            "span_id": r.span_id.hex(),
                            "attributes": attributes_of(r.attributes),
                        }
                    )
        return ExportLogsServiceResponse().SerializeToString()

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
