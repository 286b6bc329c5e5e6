"""End to end: the real services (tests/stack.py), the real Redis and the embedded model."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.stack import Stack
from tests.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack() as s:
        yield s


@pytest.fixture(scope="module")
def auth_stack() -> Iterator[Stack]:
    with Stack(services=("auditor", "gateway"), env={"UQ_AUTH": "on", "UQ_API_KEYS": "k-one,k-two"}) as s:
        yield s


async def recv(ws: ClientConnection, wait_s: float = 120.0) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
    return msg


async def until_done(ws: ClientConnection) -> list[dict[str, Any]]:
    got = [await recv(ws)]
    while got[-1]["type"] != "done":
        got.append(await recv(ws))
    return got


async def wait_status(client: httpx.AsyncClient, sid: str, statuses: set[str], wait_s: float = 120) -> dict[str, Any]:
    last: dict[str, Any] = {}

    async def reached() -> dict[str, Any] | None:
        nonlocal last
        last = (await client.get(f"/sessions/{sid}/status")).json()
        return last if last.get("status") in statuses else None

    def what() -> str:
        return f"{sid} to be {sorted(statuses)}; last status: {last}"

    return await eventually(reached, what=what, timeout_s=wait_s, interval_s=0.2)


async def test_original_readme_curl_example_then_cancel(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        resp = await client.post("/generate", json={"prompt": "Explain AI", "max_tokens": 100})
        assert resp.status_code == 202
        sid = resp.json()["session_id"]
        started = await wait_status(client, sid, {"started"})
        assert started["status"] == "started"

        async def two_tokens() -> bool:
            return bool((await client.get(f"/sessions/{sid}/status")).json()["tokens"] >= 2)

        await eventually(two_tokens, what=f"{sid}'s first two tokens", timeout_s=120, interval_s=0.2)
        assert (await client.post(f"/sessions/{sid}/cancel")).json()["status"] == "cancelling"
        ended = await wait_status(client, sid, {"cancelled", "finished", "failed"})
        assert ended["status"] == "cancelled"
        assert 2 <= ended["tokens"] < 100


async def test_websocket_generate_streams_tokens_with_metrics_and_ends_with_done(stack: Stack) -> None:
    async with connect(stack.ws_url) as ws:
        await ws.send(
            json.dumps({"type": "generate", "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0})
        )
        got = await until_done(ws)
    tokens = [m for m in got if m["type"] == "token"]
    assert [t["seq"] for t in tokens] == list(range(8))
    for t in tokens:
        m = t["metrics"]
        assert t["distribution"] == "full" and m["exact"] is True
        assert 0 < m["prob"] <= 1 and m["entropy"] >= 0 and m["rank"] >= 1 and m["hbar_s"] >= 0
        assert t["top_k"] and t["token_ts_ns"] <= t["ts_ns"]
    done = got[-1]
    assert (done["status"], done["reason"], done["tokens"]) == ("finished", "max_tokens", 8)
    assert done["summary"] is None or done["summary"]["tokens"] == 8
    sid = done["session_id"]
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:

        async def recorded() -> dict[str, Any] | None:  # the recorder writes a little after the gateway saw it
            detail: dict[str, Any] = (await client.get(f"/sessions/{sid}")).json()
            return detail if detail["session"]["status"] == "finished" else None

        detail = await eventually(recorded, what=f"{sid} recorded as finished", timeout_s=30, interval_s=0.3)
        assert [t["text"] for t in detail["tokens"]] == [t["text"] for t in tokens]
        listed = (await client.get("/sessions", params={"status": "finished"})).json()
        assert sid in [s["session_id"] for s in listed["items"]]


def reference(logits: np.ndarray, x: int) -> dict[str, float]:
    """DESIGN.md's definitions, in float64, on the float16 logits the auditor receives."""
    z = logits.astype(np.float16).astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    nz = p[p > 0]
    h = float(-(nz * np.log2(nz)).sum())
    s = float(-np.log2(p[x]))
    top = np.sort(p)[::-1]
    return {
        "prob": float(p[x]),
        "surprisal": s,
        "entropy": h,
        "margin": float(top[0] - top[1]),
        "rank": float(1 + (p > p[x]).sum()),
        "hbar_s": float(np.sqrt(h * s)),
        "fisher_trace": float(1 - (p**2).sum()),
        "varentropy": float((nz * (-np.log2(nz) - h) ** 2).sum()),
    }


async def push_and_watch(
    url: str, ws_url: str, tokens: list[dict[str, Any]], headers: dict[str, str]
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        start = await client.post("/push/sessions", json={"model": "pushed-model", "provider": "test", "prompt": "p"})
        assert start.status_code == 201, start.text
        sid = start.json()["session_id"]
        key = headers.get("Authorization", "").removeprefix("Bearer ")
        async with connect(ws_url + (f"?api_key={key}" if key else "")) as ws:
            await ws.send(json.dumps({"type": "subscribe", "session_id": sid}))
            pushed = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": tokens})
            assert pushed.status_code == 202, pushed.text
            assert (await client.post(f"/push/sessions/{sid}/finish", json={"reason": "stop"})).status_code == 200
            return await until_done(ws)


async def test_pushed_tokens_are_audited_like_the_auditor_computes(stack: Stack) -> None:
    rng = np.random.default_rng(7)
    logits = [rng.normal(0, 3, size=1000).astype(np.float16) for _ in range(4)]
    ids = [int(np.argmax(logits[0])), 17, 500, int(np.argsort(logits[3])[-2])]
    tokens: list[dict[str, Any]] = [
        {"text": f"w{i}", "token_id": x, "logits": base64.b64encode(lg.astype("<f2").tobytes()).decode()}
        for i, (lg, x) in enumerate(zip(logits[:2], ids[:2], strict=True))
    ]
    tokens += [
        {"text": f"w{i}", "token_id": x, "logits": [float(v) for v in lg]}
        for i, (lg, x) in enumerate(zip(logits[2:], ids[2:], strict=True), 2)
    ]
    top = {
        "token": " yes",
        "logprob": -0.5,
        "top_logprobs": [{"token": " yes", "logprob": -0.5}, {"token": " no", "logprob": -1.5}],
    }
    tokens += [top, {"text": "p", "probability": 0.25}]
    got = await push_and_watch(stack.url, stack.ws_url, tokens, {})
    audits = {m["seq"]: m for m in got if m["type"] == "token"}
    assert sorted(audits) == list(range(6))
    for seq in range(4):
        want = reference(logits[seq], ids[seq])
        m = audits[seq]["metrics"]
        assert m["exact"] is True
        for name, value in want.items():
            assert m[name] == pytest.approx(value, rel=1e-3, abs=1e-6), (seq, name)
    p1, p2 = np.exp(-0.5), np.exp(-1.5)
    m = audits[4]["metrics"]
    assert (audits[4]["distribution"], m["exact"]) == ("top_k", False)
    assert m["coverage"] == pytest.approx(p1 + p2, rel=1e-6)
    assert m["prob"] == pytest.approx(p1, rel=1e-6)
    m = audits[5]["metrics"]
    assert m["prob"] == pytest.approx(0.25) and m["surprisal"] == pytest.approx(2.0) and m["entropy"] is None
    assert got[-1]["type"] == "done" and got[-1]["tokens"] == 6


async def test_two_hundred_clients_watching_one_session_get_every_token_in_order(stack: Stack) -> None:
    n_clients, n_tokens = 200, 60
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        sid = (await client.post("/push/sessions", json={"model": "m"})).json()["session_id"]
        sockets = [await connect(stack.ws_url) for _ in range(n_clients)]
        try:
            for ws in sockets:
                await ws.send(json.dumps({"type": "subscribe", "session_id": sid}))
            for ws in sockets:
                while (await recv(ws))["type"] != "replayed":
                    pass
            for start in range(0, n_tokens, 10):
                batch = [{"text": f"t{i}", "probability": 0.5} for i in range(start, start + 10)]
                assert (await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": batch})).status_code == 202
            await client.post(f"/push/sessions/{sid}/finish")
            results = await asyncio.gather(*(until_done(ws) for ws in sockets))
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
    for got in results:
        assert [m["seq"] for m in got if m["type"] == "token"] == list(range(n_tokens))
        assert not [m for m in got if m["type"] == "missed"]


async def test_auth_on_rest_and_websocket(auth_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=auth_stack.url, timeout=30) as client:
        denied = await client.post("/push/sessions", json={"model": "m"})
        assert (denied.status_code, denied.json()["error"]["type"]) == (401, "unauthorized")
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/config")).json()["auth_required"] is True
    async with connect(auth_stack.ws_url) as ws:
        assert (await recv(ws, 10))["error"]["type"] == "unauthorized"
        with pytest.raises(ConnectionClosed):
            await recv(ws, 10)
    got = await push_and_watch(
        auth_stack.url, auth_stack.ws_url, [{"text": "ok", "probability": 0.5}], {"Authorization": "Bearer k-two"}
    )
    assert [m["metrics"]["prob"] for m in got if m["type"] == "token"] == [0.5]
