"""The WebSocket /ws through a real uvicorn server and the real Redis (entries published directly)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.common.bus import Bus
from services.common.codec import decode
from services.gateway.settings import GatewaySettings
from services.recorder.store import Store
from tests.gateway.conftest import gateway_of, serving
from tests.gateway.events import alert, audit, lifecycle, summary
from tests.waiting import eventually


async def recv(ws: ClientConnection, wait_s: float = 5.0) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
    return msg


async def recv_until(ws: ClientConnection, kind: str, wait_s: float = 10.0) -> list[dict[str, Any]]:
    got = []
    while True:
        msg = await recv(ws, wait_s)
        got.append(msg)
        if msg["type"] == kind:
            return got


async def test_ping_garbage_and_unknown_types_keep_the_socket(gw_settings: GatewaySettings) -> None:
    async with serving(gw_settings) as (addr, _), connect(f"ws://{addr}/ws") as ws:
        await ws.send('{"type": "ping"}')
        assert await recv(ws) == {"type": "pong"}
        await ws.send("not json at all")
        err = await recv(ws)
        assert (err["type"], err["error"]["type"]) == ("error", "invalid_json")
        await ws.send('{"type": "dance"}')
        err = (await recv(ws))["error"]
        assert (err["type"], err["param"]) == ("invalid_request", "type")
        await ws.send('{"type": "generate", "prompt": "x", "max_tokens": -1}')
        err = (await recv(ws))["error"]
        assert (err["type"], err["param"]) == ("invalid_request", "max_tokens")
        await ws.send('{"type": "subscribe", "session_id": "nobody"}')
        msg = await recv(ws)
        assert (msg["error"]["type"], msg["error"]["param"], msg["session_id"]) == ("not_found", "session_id", "nobody")
        await ws.send('{"type": "ping"}')
        assert await recv(ws) == {"type": "pong"}


async def test_binary_frame_closes_with_1003(gw_settings: GatewaySettings) -> None:
    async with serving(gw_settings) as (addr, _), connect(f"ws://{addr}/ws") as ws:
        await ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003


async def test_generate_publishes_the_job_and_streams_the_session(
    gw_settings: GatewaySettings, redis: Redis, bus: Bus
) -> None:
    async with serving(gw_settings) as (addr, _), connect(f"ws://{addr}/ws") as ws:
        await ws.send(json.dumps({"type": "generate", "prompt": "Explain ML", "max_tokens": 200, "temperature": 0.7}))
        queued = await recv(ws)
        assert (queued["type"], queued["status"], queued["prompt"]) == ("session", "queued", "Explain ML")
        sid = queued["session_id"]
        ((_, fields),) = await redis.xrange(gw_settings.stream("jobs"))
        job = decode("jobs", fields)
        assert (job.session_id, job.sampling.max_tokens, job.sampling.temperature) == (sid, 200, 0.7)  # type: ignore[union-attr]
        # what the generator, auditor and alerter would publish
        await bus.publish("sessions", lifecycle(sid, "started"))
        for seq in range(3):
            await bus.publish("audits", audit(sid, seq))
        await bus.publish("alerts", alert(sid, 0, 2))
        await bus.publish("sessions", lifecycle(sid, "finished", reason="max_tokens", tokens=3))
        await bus.publish("alerts", summary(sid, 1, 3))
        got = await recv_until(ws, "done")
        assert [(m["type"], m.get("seq")) for m in got] == [
            ("session", 1),
            ("token", 0),
            ("token", 1),
            ("token", 2),
            ("alert", 0),
            ("session", 2),
            ("done", None),
        ]
        token = got[1]
        assert (token["text"], token["metrics"]["prob"], token["top_k"][0]["text"]) == ("t0", 0.5, "t0")
        assert got[-1]["summary"]["tokens"] == 3
        assert (got[-1]["status"], got[-1]["reason"], got[-1]["tokens"]) == ("finished", "max_tokens", 3)
        await ws.send('{"type": "cancel"}')  # the last session this socket started, already ended: no error
        await ws.send('{"type": "ping"}')
        assert await recv(ws) == {"type": "pong"}


async def test_cancel_sets_the_generators_key(gw_settings: GatewaySettings, redis: Redis) -> None:
    async with serving(gw_settings) as (addr, _), connect(f"ws://{addr}/ws") as ws:
        await ws.send('{"type": "generate", "prompt": "long story"}')
        sid = (await recv(ws))["session_id"]
        await ws.send('{"type": "cancel"}')
        await ws.send('{"type": "ping"}')
        assert await recv(ws) == {"type": "pong"}
        assert await redis.get(gw_settings.stream(f"cancel:{sid}")) == b"1"


async def test_subscribe_replays_store_and_live_then_follows(gw_settings: GatewaySettings, bus: Bus) -> None:
    async with serving(gw_settings) as (addr, _app):
        store = Store.from_url(gw_settings.database_url)  # the recorder writes, the gateway reads
        await store.record([lifecycle("s1", "queued"), lifecycle("s1", "started"), audit("s1", 0), audit("s1", 1)])
        await store.close()
        await bus.publish("audits", audit("s1", 1))  # also in the store: deduped
        await bus.publish("audits", audit("s1", 2))  # not yet stored
        fanout = gateway_of(_app).fanout
        await eventually(lambda: fanout.entries >= 2, what="the fan-out to read both audits")
        async with connect(f"ws://{addr}/ws") as ws:
            await ws.send('{"type": "subscribe", "session_id": "s1", "after_seq": 0}')
            replay = await recv_until(ws, "replayed")
            assert [(m["type"], m.get("seq")) for m in replay] == [
                ("session", 1),
                ("token", 1),
                ("token", 2),
                ("replayed", None),
            ]
            assert replay[-1]["last_seq"] == 2
            await bus.publish("audits", audit("s1", 3))
            live = await recv(ws)
            assert (live["type"], live["seq"]) == ("token", 3)
            await ws.send('{"type": "unsubscribe", "session_id": "s1"}')
            await ws.send('{"type": "ping"}')
            assert await recv(ws) == {"type": "pong"}
            await bus.publish("audits", audit("s1", 4))
            await ws.send('{"type": "ping"}')
            assert await recv(ws) == {"type": "pong"}


class RawClient:
    """A WebSocket client on a socket with a tiny receive window that reads only when asked: a slow browser."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, addr: str) -> RawClient:
        tight = socket.socket()
        tight.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        host, port = addr.split(":")
        tight.connect((host, int(port)))
        tight.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=tight)
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        return cls(reader, writer)

    def send(self, text: str) -> None:
        data = text.encode()
        assert len(data) < 126
        mask = b"\x01\x02\x03\x04"
        self.writer.write(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    async def recv(self) -> dict[str, Any]:
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), 10)
        assert b0 == 0x81, b0
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        msg: dict[str, Any] = json.loads(await self.reader.readexactly(n))
        return msg

    def close(self) -> None:
        self.writer.close()


async def test_a_slow_socket_is_told_what_it_missed_and_others_get_everything(
    gw_settings: GatewaySettings, bus: Bus
) -> None:
    async with serving(gw_settings, ws_queue_size=64, fanout_batch=32) as (addr, app):
        gw = gateway_of(app)
        gw.live.ensure("slow")
        slow = await RawClient.open(addr)
        try:
            async with connect(f"ws://{addr}/ws") as fast:
                await fast.send('{"type": "subscribe", "session_id": "slow"}')
                assert (await recv_until(fast, "replayed"))[-1]["type"] == "replayed"
                slow.send('{"type": "subscribe", "session_id": "slow"}')
                while (await slow.recv())["type"] != "replayed":
                    pass
                n = 2000  # 8 MB: more than the TCP buffers between the gateway and the slow socket hold
                received: list[int] = []

                async def read_fast() -> None:
                    while len(received) < n:
                        received.append((await recv(fast))["seq"])

                reader = asyncio.create_task(read_fast())
                for start in range(0, n, 20):  # a steady producer the fast socket keeps up with
                    await bus.publish_many(("audits", audit("slow", s, pad=4000)) for s in range(start, start + 20))
                    await asyncio.sleep(0.002)  # pacing on purpose: a producer, not a flood
                await reader
                assert received == list(range(n))
            got: list[dict[str, Any]] = []
            while not any(m["type"] == "missed" for m in got):
                got.append(await slow.recv())
        finally:
            slow.close()
        missed = next(m for m in got if m["type"] == "missed")
        assert missed["session_id"] == "slow"
        assert missed["dropped"] > 0
        assert 0 < missed["from_seq"] <= missed["to_seq"] < n
        seqs = [m["seq"] for m in got if m["type"] == "token"]
        assert seqs == sorted(seqs)
        assert missed["from_seq"] > seqs[0]
        assert gw.metrics.ws_dropped._value.get() == missed["dropped"]


async def test_auth_on_the_socket(gw_settings: GatewaySettings) -> None:
    async with serving(gw_settings, auth="on", api_keys="sekret") as (addr, _):
        async with connect(f"ws://{addr}/ws") as ws:
            err = await recv(ws)
            assert (err["type"], err["error"]["type"]) == ("error", "unauthorized")
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with connect(f"ws://{addr}/ws?api_key=sekret") as ws:
            await ws.send('{"type": "ping"}')
            assert await recv(ws) == {"type": "pong"}
        async with connect(f"ws://{addr}/ws", additional_headers={"Authorization": "Bearer sekret"}) as ws:
            await ws.send('{"type": "ping"}')
            assert await recv(ws) == {"type": "pong"}


async def test_deeply_nested_messages_get_an_error_and_the_socket_stays_open(gw_settings: GatewaySettings) -> None:
    async with serving(gw_settings) as (addr, _), connect(f"ws://{addr}/ws") as ws:
        for nested in ("[" * 5_000 + "]" * 5_000, '{"type": "generate", "stop": ' + "[" * 100_000):
            await ws.send(nested)
            err = await recv(ws)
            assert (err["type"], err["error"]["type"]) == ("error", "invalid_json")
            assert "levels deep" in err["error"]["message"]
        await ws.send('{"type": "ping"}')
        assert await recv(ws) == {"type": "pong"}


async def test_strict_generate_fields_name_the_field_in_the_senders_terms(gw_settings: GatewaySettings) -> None:
    async with serving(gw_settings) as (addr, _), connect(f"ws://{addr}/ws") as ws:
        for body, param, says in (
            ({"prompt": "x", "max_tokens": "5"}, "max_tokens", "got a string"),
            ({"prompt": "x", "temperature": True}, "temperature", "got a boolean"),
            ({"prompt": "x", "top_p": float("nan")}, "top_p", "NaN"),
            ({"prompt": "x", "max_tokens": 4097}, "max_tokens", "4096"),
            ({"prompt": ""}, "prompt", "at least 1 character"),
            ({"messages": [{"role": "user", "content": "  "}]}, "messages.0", "only whitespace"),
        ):
            await ws.send(json.dumps({"type": "generate", **body}))
            err = (await recv(ws))["error"]
            assert (err["type"], err["param"], says in err["message"]) == ("invalid_request", param, True), err
        for not_an_object in ("[]", '"x"', "3"):
            await ws.send(not_an_object)
            err = (await recv(ws))["error"]
            assert (err["type"], err["param"]) == ("invalid_request", "body"), err


@pytest.mark.parametrize("path", ["/", "/wss", "/ws/", "/socket", "/ws/live"])
async def test_a_websocket_on_another_path_gets_a_json_404_naming_ws(gw_settings: GatewaySettings, path: str) -> None:
    async with serving(gw_settings) as (addr, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://{addr}{path}"):
                pass
    response = refused.value.response
    assert response.status_code == 404
    body = json.loads(response.body)
    assert body["error"]["type"] == "not_found"
    assert "the WebSocket is at /ws" in body["error"]["message"]
