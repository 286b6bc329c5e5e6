"""Python client of the uncertainty gateway: audit any LLM's tokens, or ask for a generation.

Only needs ``httpx``. In the spirit of the original README's ``AuditClient``::

    from uqclient import AuditClient, SimpleToken

    with AuditClient("http://127.0.0.1:8080") as client:
        client.start_audit("Explain AI", "gpt-4", "OpenAI")
        for token in your_model.generate_stream(prompt):
            client.add_token(SimpleToken(text=token.text, probability=token.prob))
        result = client.finish(wait=True)          # the audited session: tokens with metrics, alerts, risk
        print(result["summary"])

Tokens are sent in batches (``batch_size``, and at ``finish``/``flush``). A token may also be an
OpenAI ``logprobs.content`` item, passed as the dict it arrives as. :class:`AsyncAuditClient` is the
same API with ``await``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["AsyncAuditClient", "AuditClient", "AuditSession", "GatewayError", "SimpleToken"]

TERMINAL = ("finished", "failed", "cancelled")


class GatewayError(Exception):
    """The gateway answered with an error: ``status``, ``type``, ``param`` (the offending field) and message."""

    def __init__(self, status: int, type_: str, message: str, param: str | None = None) -> None:
        self.status = status
        self.type = type_
        self.param = param
        super().__init__(f"{status} {type_}: {message}" + (f" (field {param})" if param else ""))


@dataclass(frozen=True)
class SimpleToken:
    """A generated token and whatever is known of its distribution (all optional but ``text``).

    ``top_logprobs``: OpenAI's list of ``{"token", "logprob"}`` or a ``{token: logprob}`` dict.
    ``logits``: the full next-token logits (a sequence of numbers, or raw little-endian float16
    bytes); they need ``token_id``.
    """

    text: str
    probability: float | None = None
    logprob: float | None = None
    top_logprobs: list[dict[str, Any]] | dict[str, float] | None = None
    token_id: int | None = None
    logits: Sequence[float] | bytes | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text}
        for name in ("probability", "logprob", "top_logprobs", "token_id"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if isinstance(self.logits, bytes | bytearray):
            body["logits"] = base64.b64encode(self.logits).decode()
        elif self.logits is not None:
            body["logits"] = [float(v) for v in self.logits]
        return body


@dataclass
class AuditSession:
    """A push session: its id, where to watch it, and the tokens not yet sent."""

    session_id: str
    urls: dict[str, str]
    pending: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0

    @property
    def next_seq(self) -> int:
        return self.sent + len(self.pending)


def _token_json(token: SimpleToken | dict[str, Any]) -> dict[str, Any]:
    return token.to_json() if isinstance(token, SimpleToken) else dict(token)


def _check(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        try:
            err = resp.json()["error"]
            raise GatewayError(resp.status_code, err["type"], err["message"], err.get("param"))
        except (ValueError, KeyError, TypeError):
            raise GatewayError(resp.status_code, "http_error", resp.text[:500]) from None
    return resp.json() if resp.content else None


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class AuditClient:
    """Synchronous client. ``base_url`` is the gateway; ``api_key`` when it requires one."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        api_key: str | None = None,
        batch_size: int = 32,
        timeout_s: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout_s, headers=_headers(api_key))
        self.batch_size = batch_size
        self.session: AuditSession | None = None

    # --- push API ---------------------------------------------------------------------------

    def start_audit(
        self, prompt: str | None, model: str, provider: str = "push", *, session_id: str | None = None
    ) -> AuditSession:
        """Start auditing a generation that ``model`` (run by ``provider``) makes for ``prompt``."""
        body = {"model": model, "provider": provider, "prompt": prompt, "session_id": session_id}
        started = _check(self.http.post("/push/sessions", json={k: v for k, v in body.items() if v is not None}))
        self.session = AuditSession(started["session_id"], started["urls"])
        return self.session

    def add_token(self, token: SimpleToken | dict[str, Any]) -> int:
        """Queue one token (sent every ``batch_size`` tokens); returns its seq in the session."""
        session = self._current()
        seq = session.next_seq
        session.pending.append(_token_json(token))
        if len(session.pending) >= self.batch_size:
            self.flush()
        return seq

    def flush(self) -> None:
        session = self._current()
        if session.pending:
            batch, session.pending = session.pending, []
            _check(self.http.post(f"/push/sessions/{session.session_id}/tokens", json={"tokens": batch}))
            session.sent += len(batch)

    def finish(
        self, status: str = "finished", reason: str | None = None, *, wait: bool = False, wait_s: float = 60.0
    ) -> dict[str, Any]:
        """Send what is pending and end the session; with ``wait``, return the audited session."""
        self.flush()
        session = self._current()
        ended: dict[str, Any] = _check(
            self.http.post(f"/push/sessions/{session.session_id}/finish", json={"status": status, "reason": reason})
        )
        if not wait:
            return ended
        return self.wait_audited(session.session_id, ended["tokens"], wait_s=wait_s)

    # --- jobs and history -------------------------------------------------------------------

    def generate(self, prompt: str, **params: Any) -> dict[str, Any]:
        """``POST /generate``: ``{"session_id", "status", "urls"}``."""
        result: dict[str, Any] = _check(self.http.post("/generate", json={"prompt": prompt, **params}))
        return result

    def cancel(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = _check(self.http.post(f"/sessions/{session_id}/cancel"))
        return result

    def status(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = _check(self.http.get(f"/sessions/{session_id}/status"))
        return result

    def get_session(self, session_id: str) -> dict[str, Any]:
        """The session with its tokens (and metrics), alerts, risk changes and summary."""
        result: dict[str, Any] = _check(self.http.get(f"/sessions/{session_id}"))
        return result

    def wait_audited(self, session_id: str, tokens: int, *, wait_s: float = 60.0) -> dict[str, Any]:
        """Poll until ``tokens`` tokens of the session are audited (or ``wait_s`` passes)."""
        deadline = time.monotonic() + wait_s
        while True:
            detail = self.get_session(session_id)
            if len(detail["tokens"]) >= tokens or time.monotonic() > deadline:
                return detail
            time.sleep(0.2)

    def _current(self) -> AuditSession:
        if self.session is None:
            raise RuntimeError("no audit session: call start_audit(prompt, model, provider) first")
        return self.session

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAuditClient:
    """The same API as :class:`AuditClient`, with ``await``."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        api_key: str | None = None,
        batch_size: int = 32,
        timeout_s: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout_s, headers=_headers(api_key))
        self.batch_size = batch_size
        self.session: AuditSession | None = None

    async def start_audit(
        self, prompt: str | None, model: str, provider: str = "push", *, session_id: str | None = None
    ) -> AuditSession:
        body = {"model": model, "provider": provider, "prompt": prompt, "session_id": session_id}
        resp = await self.http.post("/push/sessions", json={k: v for k, v in body.items() if v is not None})
        started = _check(resp)
        self.session = AuditSession(started["session_id"], started["urls"])
        return self.session

    async def add_token(self, token: SimpleToken | dict[str, Any]) -> int:
        session = self._current()
        seq = session.next_seq
        session.pending.append(_token_json(token))
        if len(session.pending) >= self.batch_size:
            await self.flush()
        return seq

    async def flush(self) -> None:
        session = self._current()
        if session.pending:
            batch, session.pending = session.pending, []
            _check(await self.http.post(f"/push/sessions/{session.session_id}/tokens", json={"tokens": batch}))
            session.sent += len(batch)

    async def finish(
        self, status: str = "finished", reason: str | None = None, *, wait: bool = False, wait_s: float = 60.0
    ) -> dict[str, Any]:
        await self.flush()
        session = self._current()
        resp = await self.http.post(
            f"/push/sessions/{session.session_id}/finish", json={"status": status, "reason": reason}
        )
        ended: dict[str, Any] = _check(resp)
        if not wait:
            return ended
        return await self.wait_audited(session.session_id, ended["tokens"], wait_s=wait_s)

    async def generate(self, prompt: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = _check(await self.http.post("/generate", json={"prompt": prompt, **params}))
        return result

    async def cancel(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = _check(await self.http.post(f"/sessions/{session_id}/cancel"))
        return result

    async def status(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = _check(await self.http.get(f"/sessions/{session_id}/status"))
        return result

    async def get_session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = _check(await self.http.get(f"/sessions/{session_id}"))
        return result

    async def wait_audited(self, session_id: str, tokens: int, *, wait_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while True:
            detail = await self.get_session(session_id)
            if len(detail["tokens"]) >= tokens or time.monotonic() > deadline:
                return detail
            await asyncio.sleep(0.2)

    def _current(self) -> AuditSession:
        if self.session is None:
            raise RuntimeError("no audit session: call start_audit(prompt, model, provider) first")
        return self.session

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncAuditClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
