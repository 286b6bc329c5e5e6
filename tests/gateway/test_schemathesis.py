"""Property-based: requests generated from the OpenAPI schema never get a 5xx (schemathesis, in-process ASGI).

The OpenAI completions get only requests that break the schema: a valid one would wait for a
generator, which this test does not run (tests/gateway/test_openai_e2e.py runs them on the real stack).

Drives schemathesis through hypothesis directly (its pytest plugin does not support pytest 9 yet).
"""

from __future__ import annotations

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings

pytestmark = pytest.mark.slow


def test_generated_requests_get_no_server_error(gw_settings: GatewaySettings) -> None:
    # nothing required in /health (its 503 is by design), no rate limit (hypothesis is fast)
    app = create_app(gw_settings.model_copy(update={"required_services": "", "rate_limit_per_s": 0.0}))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checked = []
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            completion = operation.method.upper() == "POST" and operation.path.startswith("/v1/")
            mode = GenerationMode.NEGATIVE if completion else GenerationMode.POSITIVE
            shape = (
                {"message", "type", "param", "code"}
                if operation.path.startswith("/v1/")
                else {"message", "type", "param"}
            )

            @given(case=operation.as_strategy(mode))
            @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def no_5xx(case: schemathesis.Case) -> None:
                response = case.call()
                assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
                if response.status_code >= 400:
                    assert set(response.json()["error"]) == shape  # noqa: B023 - called before the next iteration

            no_5xx()
            checked.append(f"{operation.method.upper()} {operation.path}")
    finally:
        shutdown_lifespans()
        client = redis.Redis.from_url(gw_settings.redis_url)
        keys = list(client.scan_iter(match=f"{gw_settings.stream_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    assert "POST /generate" in checked
    assert "POST /push/sessions/{session_id}/tokens" in checked
    assert "POST /v1/chat/completions" in checked
    assert len(checked) >= 17
