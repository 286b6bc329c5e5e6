"""Settings of the OTLP exporter (env prefix ``UQ_``; every one documented in docs/operations.md)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class OtelSettings(CommonSettings):
    """The OpenTelemetry exporter (``python -m services.otel``): streams → OTLP/HTTP (protobuf)."""

    otel_endpoint: str = Field(
        "http://127.0.0.1:4318",
        description="OTLP/HTTP base URL: spans go to `<endpoint>/v1/traces`, events to `<endpoint>/v1/logs` "
        "(an OpenTelemetry Collector, Langfuse's `/api/public/otel`, Arize Phoenix's collector).",
    )
    otel_headers: str = Field(
        "",
        description="Extra HTTP headers for the OTLP endpoint, `key=value` pairs separated by commas "
        "(e.g. `Authorization=Basic …` for Langfuse).",
    )
    otel_group: str = Field(
        "otel-exporters", description="Consumer group on `uq:sessions`, `uq:audits` and `uq:alerts`."
    )
    otel_service_name: str = Field("semantic-uncertainty-runtime", description="The `service.name` resource attribute.")
    otel_token_events: bool = Field(
        True,
        description="Export every audited token as a `uq.token` event on its generation's span (off: only "
        "alerts, risk changes and the evaluation results).",
    )
    otel_capture_content: bool = Field(
        False,
        description="Put the prompt and token texts on the spans and events (GenAI `gen_ai.input.messages`); "
        "off by default, as the GenAI conventions advise.",
    )
    otel_timeout_s: float = Field(10.0, gt=0, description="Timeout of one OTLP export request.")
    otel_batch_size: int = Field(512, gt=0, le=10_000, description="Entries read per XREADGROUP.")

    def header_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for pair in self.otel_headers.split(","):
            if "=" in pair:
                key, value = pair.split("=", 1)
                out[key.strip()] = value.strip()
        return out
