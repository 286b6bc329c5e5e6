"""``python -m services.otel``: export the audit streams to an OTLP endpoint."""

from __future__ import annotations

from services.common.runner import run_service
from services.otel.service import main
from services.otel.settings import OtelSettings

run_service("otel", OtelSettings, main)
