"""The REST surface in-process (httpx → ASGI, lifespan running, real Redis, real recorder store)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.alerter import profile
from services.alerter.builtin import threshold_policy
from services.alerter.settings import AlerterSettings
from services.common.codec import decode
from services.common.errors import ConfigError
from services.common.health import Heartbeat
from services.common.settings import CommonSettings
from services.gateway.app import create_app
from services.gateway.services import Gateway
from services.gateway.settings import GatewaySettings
from services.recorder.store import Store
from tests.gateway.conftest import gateway_of, running_app
from tests.gateway.events import alert, audit, lifecycle, summary


def assert_error(resp: httpx.Response, status: int, type_: str, param: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param"}
    assert body["error"]["type"] == type_
    assert body["error"]["param"] == param
    message: str = body["error"]["message"]
    assert message
    return message


async def test_original_readme_curl_example(
    client: httpx.AsyncClient, redis: Redis, gw_settings: GatewaySettings
) -> None:
    resp = await client.post("/generate", json={"prompt": "Explain AI", "max_tokens": 100})
    assert resp.status_code == 202
    body = resp.json()
    sid = body["session_id"]
    assert body["status"] == "queued"
    assert body["urls"] == {
        "session": f"/sessions/{sid}",
        "status": f"/sessions/{sid}/status",
        "cancel": f"/sessions/{sid}/cancel",
        "ws": "/ws",
    }
    ((_, fields),) = await redis.xrange(gw_settings.stream("jobs"))
    job = decode("jobs", fields)
    assert (job.session_id, job.prompt, job.sampling.max_tokens) == (sid, "Explain AI", 100)  # type: ignore[union-attr]
    status = await client.get(f"/sessions/{sid}/status")
    assert status.json()["status"] == "queued"
    cancel = await client.post(f"/sessions/{sid}/cancel")
    assert (cancel.status_code, cancel.json()["status"]) == (202, "cancelling")
    assert await redis.get(gw_settings.stream(f"cancel:{sid}")) == b"1"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x", "max_tokens": "many"}, "max_tokens"),
        ({"prompt": "x", "temperature": -1}, "temperature"),
        ({"prompt": "x", "surprise": 1}, "surprise"),
        ({"prompt": "x", "max_tokens": 100_000}, "max_tokens"),
        ({"prompt": "x", "max_tokens": 10_000}, "max_tokens"),  # over UQ_MAX_TOKENS_LIMIT (4096)
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ],
)
async def test_validation_errors_name_the_field(client: httpx.AsyncClient, body: dict[str, object], param: str) -> None:
    resp = await client.post("/generate", json=body)
    assert resp.status_code in (400, 422)
    message = assert_error(
        resp, resp.status_code, "invalid_request" if resp.status_code == 422 else "bad_request", param
    )
    assert param in message or "max_tokens" in message


async def test_malformed_json_404_405_and_413(gw_settings: GatewaySettings) -> None:
    async with running_app(gw_settings.model_copy(update={"max_body_bytes": 1000})) as (_, client):
        assert_error(
            await client.post("/generate", content=b"{nope", headers={"content-type": "application/json"}),
            400,
            "invalid_json",
        )
        assert_error(await client.get("/sessions/x/nothing"), 404, "not_found")
        assert_error(await client.get("/sessions/no-such"), 404, "not_found", "session_id")
        assert_error(await client.put("/generate"), 405, "method_not_allowed")
        assert_error(await client.post("/generate", json={"prompt": "x" * 2000}), 413, "payload_too_large")


async def test_rate_limit_answers_429_with_retry_after(gw_settings: GatewaySettings) -> None:
    settings = gw_settings.model_copy(update={"rate_limit_per_s": 0.5, "rate_limit_burst": 2})
    async with running_app(settings) as (_, client):
        for _ in range(2):
            assert (await client.get("/sessions/status-probe/status")).status_code == 404
        resp = await client.get("/sessions/status-probe/status")
        assert_error(resp, 429, "rate_limited")
        assert resp.headers["retry-after"] == "2"
        assert (await client.get("/health")).status_code in (200, 503)  # not rate limited


async def test_auth_on_and_off(gw_settings: GatewaySettings) -> None:
    async with running_app(gw_settings.model_copy(update={"auth": "on", "api_keys": "k1,k2"})) as (_, client):
        assert_error(await client.post("/generate", json={"prompt": "x"}), 401, "unauthorized")
        assert_error(
            await client.post("/generate", json={"prompt": "x"}, headers={"Authorization": "Bearer bad"}),
            401,
            "unauthorized",
        )
        ok = await client.post("/generate", json={"prompt": "x"}, headers={"Authorization": "Bearer k2"})
        assert ok.status_code == 202
        assert (await client.get("/config")).json()["auth_required"] is True
        assert (await client.get("/health")).status_code in (200, 503)
    async with running_app(gw_settings) as (_, client):
        assert (await client.post("/generate", json={"prompt": "x"})).status_code == 202
        assert (await client.get("/config")).json()["auth_required"] is False


def test_keys_required_without_keys_refuses_to_start(gw_settings: GatewaySettings) -> None:
    with pytest.raises(ConfigError, match="UQ_API_KEYS"):
        create_app(gw_settings.model_copy(update={"auth": "auto", "host": "0.0.0.0"}))


async def test_metrics_count_what_the_fan_out_saw(gw_settings: GatewaySettings) -> None:
    async with running_app(gw_settings) as (app, client):
        live = gateway_of(app).live
        for event in (lifecycle("m1", "started"), audit("m1", 0), audit("m1", 1), alert("m1", 0, 1)):
            live.apply(event.model_dump(mode="json"))
        text = (await client.get("/metrics")).text
        assert "uq_tokens_audited_total 2.0" in text
        assert 'uq_alerts_total{rule="LOW_CONFIDENCE"} 1.0' in text
        assert "uq_active_sessions 1.0" in text
        live.apply(lifecycle("m1", "finished", tokens=2).model_dump(mode="json"))
        text = (await client.get("/metrics")).text
        assert "uq_tokens_audited_total 2.0" in text  # counters do not double on a second scrape
        assert "uq_active_sessions 0.0" in text


async def test_config_and_metrics(client: httpx.AsyncClient, redis: Redis, gw_settings: GatewaySettings) -> None:
    config = (await client.get("/config")).json()
    calibration = config.pop("calibration")
    shipped = profile.for_model("SmolLM2-135M-Instruct")
    assert shipped is not None
    relative = {  # no alerter running: the alerter's defaults, relative to the shipped profile
        "hbar_s": shipped.quantile("hbar_s", 0.99),
        "prob": shipped.quantile("prob", 0.01),
        "source": "defaults",
    }
    assert config == {
        "models": ["SmolLM2-135M-Instruct"],
        "default_model": "SmolLM2-135M-Instruct",
        "thresholds": relative,
        "limits": {"max_tokens": 4096, "prompt_chars": 32000, "push_batch": 1000},
        "auth_required": False,
    }
    assert calibration == {
        "SmolLM2-135M-Instruct": {
            "calibrated": True,
            "profile": shipped.id,
            "p_wrong": True,
            "risk_rates": shipped.risk_rates,
            "thresholds": relative,
        }
    }
    # a running alerter's settings are what the chart shows: one setting feeds the rule and the chart
    common = gw_settings.model_dump(include=set(CommonSettings.model_fields))
    alerter = AlerterSettings(**common, thresholds="absolute", high_uncertainty_threshold=3.5)
    beat = Heartbeat(redis, gw_settings, "alerter", "a1", details=lambda: {"thresholds": threshold_policy(alerter)})
    await beat.beat()
    shown = (await client.get("/config")).json()["thresholds"]
    assert shown == {"hbar_s": 3.5, "prob": 0.3, "source": "alerter"}
    await redis.xgroup_create(gw_settings.stream("tokens"), "auditors", id="0", mkstream=True)
    for i in range(3):
        await redis.xadd(gw_settings.stream("tokens"), {"data": b"{}", "n": str(i)})
    text = (await client.get("/metrics")).text
    assert 'uq_consumer_group_lag{group="auditors",stream="tokens"} 3.0' in text
    assert "uq_tokens_audited_total 0.0" in text
    assert "uq_websocket_clients 0.0" in text


async def test_history_endpoints_with_the_recorder_store(gw_settings: GatewaySettings) -> None:
    async with running_app(gw_settings) as (_app, client):
        store = Store.from_url(gw_settings.database_url)  # the recorder writes, the gateway reads
        await store.record(
            [
                lifecycle("old", "queued", prompt="Explain AI"),
                audit("old", 0),
                audit("old", 1, prob=0.1),
                alert("old", 0, 1),
                lifecycle("old", "finished", reason="eos", tokens=2),
                summary("old", 1, 2),
                lifecycle("other", "queued"),
            ]
        )
        await store.close()
        page = (await client.get("/sessions", params={"status": "finished"})).json()
        assert (page["total"], [s["session_id"] for s in page["items"]]) == (1, ["old"])
        assert (await client.get("/sessions", params={"limit": 1})).json()["total"] == 2
        assert_error(await client.get("/sessions", params={"risk": "purple"}), 422, "invalid_request", "risk")
        by_tokens = (await client.get("/sessions", params={"sort": "tokens", "order": "asc"})).json()
        assert [s["session_id"] for s in by_tokens["items"]] == ["other", "old"]
        assert_error(await client.get("/sessions", params={"sort": "colour"}), 422, "invalid_request", "sort")
        assert_error(
            await client.get("/sessions", params={"since_ns": 5, "until_ns": 4}), 400, "bad_request", "until_ns"
        )
        detail = (await client.get("/sessions/old")).json()
        assert [t["seq"] for t in detail["tokens"]] == [0, 1]
        assert detail["tokens"][1]["metrics"]["prob"] == 0.1
        assert [a["token_seq"] for a in detail["alerts"]] == [1]
        assert detail["summary"]["tokens"] == 2
        assert detail["session"]["status"] == "finished"
        lines = (await client.get("/sessions/old/export")).text.splitlines()
        assert len(lines) >= 4
        csv = await client.get("/export", params={"format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert len(csv.text.splitlines()) == 3  # header + two tokens
        assert (await client.delete("/sessions/old")).status_code == 204
        assert_error(await client.get("/sessions/old"), 404, "not_found", "session_id")


async def test_push_api_over_rest(client: httpx.AsyncClient, redis: Redis, gw_settings: GatewaySettings) -> None:
    start = await client.post("/push/sessions", json={"model": "gpt-4", "provider": "OpenAI", "prompt": "Explain AI"})
    assert start.status_code == 201
    sid = start.json()["session_id"]
    tokens = [
        {"text": "AI", "probability": 0.9},
        {"token": " is", "logprob": -0.2, "top_logprobs": [{"token": " is", "logprob": -0.2}]},
    ]
    pushed = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": tokens})
    assert (pushed.status_code, pushed.json()["first_seq"], pushed.json()["last_seq"]) == (202, 0, 1)
    bad = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [{"text": "x", "logits": [1, 2]}]})
    assert_error(bad, 400, "bad_request", "tokens.0.token_id")
    assert_error(
        await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [{"probability": 2}]}),
        422,
        "invalid_request",
        "tokens.0.probability",
    )
    done = await client.post(f"/push/sessions/{sid}/finish")
    assert done.json() == {"session_id": sid, "status": "finished", "tokens": 2}
    assert_error(await client.post(f"/push/sessions/{sid}/finish"), 409, "conflict", "session_id")
    entries = await redis.xrange(gw_settings.stream("tokens"))
    assert [decode("tokens", f).distribution for _, f in entries] == ["prob_only", "top_k"]  # type: ignore[union-attr]


async def test_dashboard_served_with_spa_fallback(gw_settings: GatewaySettings, tmp_path: Path) -> None:
    dist = Path(gw_settings.frontend_dir)
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>dashboard</html>")
    (dist / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("no")
    async with running_app(gw_settings) as (_, client):
        assert (await client.get("/")).text == "<html>dashboard</html>"
        assert (await client.get("/assets/app.js")).text == "console.log(1)"
        assert (await client.get("/live/abc")).text == "<html>dashboard</html>"
        assert (await client.get("/../secret.txt")).text != "no"
        assert_error(await client.get("/sessions/a/b/c"), 404, "not_found")
        assert (await client.get("/openapi.json")).json()["info"]["title"].startswith("Semantic")
        assert (await client.get("/docs")).status_code == 200


async def test_redis_down_is_503_not_a_crash(gw_settings: GatewaySettings) -> None:
    settings = gw_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(settings)
    dead = Redis.from_url(settings.redis_url, socket_connect_timeout=0.5)
    app.state.gateway = Gateway.build(settings, dead, None)  # no lifespan: it would wait for Redis
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            message = assert_error(await client.post("/generate", json={"prompt": "x"}), 503, "unavailable")
            assert "Redis" in message
            health = await client.get("/health")
            assert (health.status_code, health.json()["missing"]) == (503, ["redis"])
    finally:
        await dead.aclose()


async def test_cors_only_for_configured_origins(gw_settings: GatewaySettings) -> None:
    async with running_app(gw_settings.model_copy(update={"cors_origins": "http://dash.example"})) as (_, client):
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        ok = await client.options("/generate", headers={"Origin": "http://dash.example", **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://dash.example"
        other = await client.options("/generate", headers={"Origin": "http://evil.example", **preflight})
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
    async with running_app(gw_settings) as (_, client):
        plain = await client.get("/config", headers={"Origin": "http://dash.example"})
        assert "access-control-allow-origin" not in plain.headers


async def test_the_schema_states_the_limits_the_settings_enforce(gw_settings: GatewaySettings) -> None:
    settings = gw_settings.model_copy(update={"max_tokens_limit": 1234, "max_prompt_chars": 567})
    async with running_app(settings) as (_, client):
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["GenerateRequest"]
        assert schema["properties"]["max_tokens"]["maximum"] == 1234
        prompt = next(s for s in schema["properties"]["prompt"]["anyOf"] if s.get("type") == "string")
        assert (prompt["minLength"], prompt["maxLength"]) == (1, 567)
        assert (await client.post("/generate", json={"prompt": "x" * 567, "max_tokens": 1234})).status_code == 202
        message = assert_error(
            await client.post("/generate", json={"prompt": "x", "max_tokens": 1235}),
            422,
            "invalid_request",
            "max_tokens",
        )
        assert "1234" in message
        message = assert_error(
            await client.post("/generate", json={"prompt": "x" * 568}), 422, "invalid_request", "prompt"
        )
        assert "567" in message


@pytest.mark.parametrize(
    "path", ["/health", "/config", "/metrics", "/sessions", "/openapi.json", "/docs", "/export", "/"]
)
async def test_head_works_on_every_get_route(client: httpx.AsyncClient, path: str) -> None:
    got, head = await client.get(path), await client.head(path)
    assert (head.status_code, head.content) == (got.status_code, b"")
    assert head.headers["content-type"] == got.headers["content-type"]


@pytest.mark.parametrize(
    "path", ["/v1/embeddings", "/v1/chat/nothing", "/api/sessions", "/sessions/x/nothing", "/push/nope", "/health/x"]
)
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "DELETE"])
async def test_unknown_api_paths_get_the_json_404(client: httpx.AsyncClient, path: str, method: str) -> None:
    resp = await client.request(method, path)
    assert resp.status_code == 404, resp.text
    if method != "HEAD":
        error = resp.json()["error"]
        # under /v1 in OpenAI's shape: OpenAI's kind as type, this gateway's as code
        assert (error["code"] if path.startswith("/v1/") else error["type"]) == "not_found"


@pytest.mark.parametrize(
    ("path", "meant"),
    [("/health/", "/health"), ("/sessions/", "/sessions"), ("/sessions/abc/status/", "/sessions/abc/status")],
)
async def test_a_trailing_slash_gets_a_404_naming_the_path_without_it(
    client: httpx.AsyncClient, path: str, meant: str
) -> None:
    for resp in (await client.get(path), await client.post(path, json={})):
        message = assert_error(resp, 404, "not_found")
        assert f"did you mean {meant!r}" in message and "no trailing slash" in message
    assert (await client.get(meant)).status_code in (200, 404, 503)  # exists (404 only for the unknown session)


async def test_a_wrong_method_names_the_allowed_ones(client: httpx.AsyncClient) -> None:
    resp = await client.put("/generate")
    assert "allowed: POST" in assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == "POST"
    resp = await client.head("/generate")
    assert (resp.status_code, resp.headers["allow"]) == (405, "POST")
    message = assert_error(await client.post("/health"), 405, "method_not_allowed")
    assert message == "POST is not allowed on /health; allowed: GET, HEAD"
    assert "allowed: POST" in assert_error(await client.get("/generate"), 405, "method_not_allowed")


async def test_http_get_on_the_websocket_path_says_it_is_a_websocket(client: httpx.AsyncClient) -> None:
    assert "WebSocket client" in assert_error(await client.get("/ws"), 404, "not_found")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/generate", '{"prompt": "hi", "stop": ' + "[" * 5_000 + "]" * 5_000 + "}"),
        ("/push/sessions", '{"model": ' + "{" * 100_000),
        ("/push/sessions/s/tokens", '{"tokens": [' + "[" * 40 + "]" * 40 + "]}"),
    ],
)
async def test_deep_nesting_is_refused_before_parsing(client: httpx.AsyncClient, path: str, body: str) -> None:
    resp = await client.post(path, content=body, headers={"content-type": "application/json"})
    message = assert_error(resp, 400, "invalid_json")
    assert "levels deep" in message and "at most 32" in message


def test_a_model_without_a_profile_is_reported_uncalibrated() -> None:
    from services.gateway.routes_ops import calibration_of

    policy = threshold_policy(AlerterSettings.model_construct())
    assert calibration_of("no-such-model", "", policy, "defaults").model_dump() == {
        "calibrated": False,
        "profile": None,
        "p_wrong": False,
        "risk_rates": {},
        "thresholds": {"hbar_s": 2.5, "prob": 0.3, "source": "defaults"},  # no profile: the fixed thresholds
    }
