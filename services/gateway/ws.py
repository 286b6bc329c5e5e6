"""The WebSocket protocol of ``/ws`` (docs/api.md): one :class:`Connection` per socket.

Each connection has a bounded queue drained by its own sender task. The fan-out delivers into it
without waiting; when it is full the message is dropped and the socket later gets one ``missed``
message per session with the range of token seqs it lost (it can fetch them by REST). So one slow
browser delays nobody else.

Every message is a model of services.gateway.protocol and is built by services.gateway.messages.
Client errors get an ``error`` message (the REST error body) and the socket stays open (a message nested deeper than
services.common.validation.MAX_JSON_DEPTH is refused before it is parsed); a binary frame closes it with
1003 (unsupported data), a message over ``ws_max_message_bytes`` with 1009, a refused API key with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.common.validation import JsonTooDeepError, check_depth
from services.gateway import messages
from services.gateway.errors import (
    ApiError,
    InvalidJsonError,
    InvalidRequestError,
    NotFoundError,
    UnavailableError,
    invalid,
)
from services.gateway.jobs import new_session_id
from services.gateway.messages import MessageKey, dumps
from services.gateway.models import GenerateRequest, request_model
from services.gateway.protocol import (
    CLIENT_MODELS,
    CancelMessage,
    SubscribeMessage,
    UnsubscribeMessage,
)
from services.gateway.services import Gateway

log = logging.getLogger(__name__)


class Connection:
    """One socket: its subscriptions, its bounded outgoing queue, what it missed."""

    def __init__(self, ws: WebSocket, gw: Gateway, caller: str) -> None:
        self.ws = ws
        self.gw = gw
        self.caller = caller
        self.queue: asyncio.Queue[str] = asyncio.Queue(gw.settings.ws_queue_size)
        self.sessions: set[str] = set()
        self.holding: dict[str, list[tuple[MessageKey, str]]] = {}
        self.missed: dict[str, list[int | None]] = {}  # session -> [from_seq, to_seq, dropped]
        self.last_started: str | None = None
        self.closed = False

    # --- delivery (called by the live state; never blocks) --------------------------------------

    def deliver(self, session_id: str, key: MessageKey, text: str) -> None:
        held = self.holding.get(session_id)
        if held is not None:
            if len(held) < self.gw.settings.ws_queue_size:
                held.append((key, text))
            else:
                self._drop(session_id, key)
            return
        self._put(session_id, key, text)

    def _put(self, session_id: str, key: MessageKey, text: str) -> None:
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._drop(session_id, key)

    def _drop(self, session_id: str, key: MessageKey) -> None:
        self.gw.metrics.ws_dropped.inc()
        gap = self.missed.setdefault(session_id, [None, None, 0])
        if key[0] == "token":
            gap[0] = key[1] if gap[0] is None else min(gap[0], key[1])
            gap[1] = key[1] if gap[1] is None else max(gap[1], key[1])
        gap[2] = (gap[2] or 0) + 1

    async def send_loop(self) -> None:
        half = self.queue.maxsize // 2
        try:
            while True:
                text = await self.queue.get()
                await self.ws.send_text(text)
                if self.missed and self.queue.qsize() <= half:
                    missed, self.missed = self.missed, {}
                    for sid, (lo, hi, n) in missed.items():
                        await self.ws.send_text(dumps(messages.missed(sid, lo, hi, n or 0)))
        finally:
            self.closed = True

    async def send(self, text: str) -> None:
        """Queue a reply in order with everything else (waits for room: replies are never dropped)."""
        while True:
            if self.closed:
                raise WebSocketDisconnect(1006)
            try:
                self.queue.put_nowait(text)
                return
            except asyncio.QueueFull:
                await asyncio.sleep(0.005)

    # --- protocol -------------------------------------------------------------------------------

    async def handle(self, raw: str) -> None:
        msg: Any = None
        try:
            msg = self._parse(raw)
            kind = msg["type"]
            if kind == "generate":
                body = {k: v for k, v in msg.items() if k != "type"}
                await self._generate(request_model(self.gw.settings).model_validate(body))
                return
            parsed = CLIENT_MODELS[kind].model_validate(msg)
            if isinstance(parsed, SubscribeMessage):
                await self._subscribe(parsed.session_id, parsed.after_seq)
            elif isinstance(parsed, UnsubscribeMessage):
                self._unsubscribe(parsed.session_id)
            elif isinstance(parsed, CancelMessage):
                await self.gw.jobs.cancel(parsed.session_id or self._last_started())
            else:
                await self.send(dumps(messages.pong()))
        except ApiError as exc:
            sid = msg.get("session_id") if isinstance(msg, dict) else None
            await self.send(dumps(messages.error(exc, sid if isinstance(sid, str) else None)))
        except ValidationError as exc:
            await self.send(dumps(messages.error(invalid(exc.errors(), root=msg))))
        except (RedisError, OSError) as exc:
            log.error("redis error on the socket", extra={"error": str(exc)})
            failed = UnavailableError(f"Redis is not reachable or failed ({exc}); try again")
            await self.send(dumps(messages.error(failed)))

    @staticmethod
    def _parse(raw: str) -> dict[str, Any]:
        """One client message as a JSON object with a known ``type`` (its fields are validated later)."""
        try:
            check_depth(raw)
            msg = json.loads(raw)
        except JsonTooDeepError as exc:
            raise InvalidJsonError(f"{exc}; send one flat JSON object per text frame") from None
        except (ValueError, RecursionError):
            raise InvalidJsonError("not JSON: send one JSON object per text frame") from None
        if not isinstance(msg, dict):
            raise InvalidRequestError(
                "a message is a JSON object with a string 'type', not an array, string or number", param="body"
            )
        kind = msg.get("type")
        if not isinstance(kind, str):
            raise InvalidRequestError("a message is a JSON object with a string 'type'", param="type")
        if kind not in CLIENT_MODELS:
            raise InvalidRequestError(f"unknown message type {kind!r}; one of {', '.join(CLIENT_MODELS)}", param="type")
        return msg

    async def _generate(self, req: GenerateRequest) -> None:
        await self.gw.limiter.check(self.caller)
        sid = new_session_id()
        self.sessions.add(sid)
        self.gw.live.subscribe(sid, self)
        try:
            await self.gw.jobs.submit(req, session_id=sid)
        except BaseException:
            self.sessions.discard(sid)
            self.gw.live.unsubscribe(sid, self)
            raise
        self.last_started = sid

    def _last_started(self) -> str:
        if self.last_started is None:
            raise InvalidRequestError("no session_id given and this socket started no session", param="session_id")
        return self.last_started

    async def _subscribe(self, sid: str, after: int) -> None:
        await self.gw.limiter.check(self.caller)
        if sid in self.sessions:
            self.gw.live.unsubscribe(sid, self)
        self.holding[sid] = []
        self.gw.live.subscribe(sid, self)
        try:
            replay = await self.gw.history.messages(sid, after)
        except BaseException:
            self.holding.pop(sid, None)
            self.gw.live.unsubscribe(sid, self)
            raise
        if replay is None:
            self.holding.pop(sid, None)
            self.gw.live.unsubscribe(sid, self)
            self.sessions.discard(sid)
            raise NotFoundError(f"no session {sid!r}", param="session_id")
        self.sessions.add(sid)
        sent: set[MessageKey] = set()
        last_seq = after
        for key, text in replay:
            await self.send(text)
            sent.add(key)
            if key[0] == "token":
                last_seq = max(last_seq, key[1])
        await self.send(dumps(messages.replayed(sid, last_seq)))
        for key, text in self.holding.pop(sid, []):  # no await from here: live delivery takes over
            if key not in sent and not (key[0] == "token" and key[1] <= after):
                self._put(sid, key, text)

    def _unsubscribe(self, sid: str) -> None:
        self.gw.live.unsubscribe(sid, self)
        self.sessions.discard(sid)
        self.holding.pop(sid, None)

    def close(self) -> None:
        for sid in self.sessions:
            self.gw.live.unsubscribe(sid, self)
        self.sessions.clear()


async def serve_socket(ws: WebSocket, gw: Gateway) -> None:
    """Run one WebSocket until the client leaves."""
    await ws.accept()
    client = ws.client.host if ws.client else "unknown"
    try:
        caller = gw.auth.identify(ws.headers.get("authorization"), ws.query_params.get("api_key"), client)
    except ApiError as exc:
        await ws.send_text(dumps(messages.error(exc)))
        await ws.close(code=1008, reason="unauthorized")
        return
    conn = Connection(ws, gw, caller)
    gw.metrics.client_opened()
    sender = asyncio.create_task(conn.send_loop(), name="ws-sender")
    limit = gw.settings.ws_max_message_bytes
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            text = frame.get("text")
            if text is None:
                await ws.close(code=1003, reason="binary frames are not part of the protocol; send JSON text")
                break
            if len(text) > limit:
                await ws.close(code=1009, reason=f"message larger than {limit} bytes")
                break
            await conn.handle(text)
            if sender.done():
                break
    except WebSocketDisconnect:
        pass
    finally:
        conn.close()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        gw.metrics.client_closed()
