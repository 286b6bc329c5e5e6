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

No token is lost quietly:

- a token the gateway refuses never takes the good tokens queued beside it down with it: the client
  sends the ones before it, drops it, sends the ones after it (in order), then raises
  :class:`TokenRejectedError` naming each refused token (its seq, text, and the gateway's message
  and field); the session goes on;
- any other failure (gateway down, 503 while the auditors are behind, …) keeps the batch queued, to
  be sent by the next ``flush``/``finish``;
- ``finish(wait=True)`` returns only once the session is final: the alerter's summary is there and
  every token is audited; otherwise :class:`AuditTimeoutError`, never a partial result.

Errors are in ``uqclient.errors`` (the hierarchy is drawn there) and importable from here.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from uqclient.errors import (
    AuditTimeoutError,
    GatewayError,
    RejectedToken,
    TokenRejectedError,
    UQClientError,
)

__all__ = [
    "AsyncAuditClient",
    "AuditClient",
    "AuditSession",
    "AuditTimeoutError",
    "GatewayError",
    "QueuedToken",
    "RejectedToken",
    "SimpleToken",
    "TokenRejectedError",
    "UQClientError",
]

# The statuses a session ends in (services.common.contracts.events.TERMINAL_STATUSES; this client is installed
# on its own, with httpx only, so it states them rather than importing the services; a test checks they agree).
TERMINAL = ("finished", "failed", "cancelled")
POLL_S = 0.2  # how often wait_audited asks the gateway
_TOKEN_PARAM = re.compile(r"^tokens\.(\d+)(?:\.(.+))?$")  # the gateway's name for a field of token i


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


@dataclass(frozen=True)
class QueuedToken:
    """A token waiting to be sent: the seq ``add_token`` returned for it, and its JSON body."""

    seq: int
    body: dict[str, Any]


@dataclass
class AuditSession:
    """A push session: its id, where to watch it, the tokens not yet sent and the ones refused."""

    session_id: str
    urls: dict[str, str]
    pending: list[QueuedToken] = field(default_factory=list)
    sent: int = 0
    added: int = 0
    rejected: list[RejectedToken] = field(default_factory=list)

    @property
    def next_seq(self) -> int:
        """The seq the next token gets: the gateway numbers accepted tokens only, in order."""
        return self.added - len(self.rejected)


def _token_json(token: SimpleToken | dict[str, Any]) -> dict[str, Any]:
    return token.to_json() if isinstance(token, SimpleToken) else dict(token)


class _Flush:
    """One flush: send the queue in order; when the gateway refuses a batch naming one of its tokens
    (``param`` ``tokens.<i>…``), send the tokens before it, drop it (reported), then the ones after.

    Pure bookkeeping, no I/O: the sync and async clients drive it. ``todo`` is a stack of batches,
    the next one to send on top, so tokens always go out in the order they were added.
    """

    def __init__(self, queue: list[QueuedToken]) -> None:
        self.todo = [queue] if queue else []
        self.rejected: list[RejectedToken] = []
        self.accepted = 0

    def next_batch(self) -> list[QueuedToken] | None:
        return self.todo[-1] if self.todo else None

    def sent(self) -> int:
        batch = self.todo.pop()
        self.accepted += len(batch)
        return len(batch)

    def refused(self, err: GatewayError) -> bool:
        """Take the gateway's refusal of the batch on top; False when it is not about one token."""
        batch = self.todo[-1]
        match = _TOKEN_PARAM.match(err.param or "") if err.status in (400, 422) else None
        if match is None or int(match.group(1)) >= len(batch):
            return False
        i = int(match.group(1))
        self.todo.pop()
        bad = batch[i]
        text = bad.body.get("text", bad.body.get("token"))
        field_name = match.group(2)
        self.rejected.append(
            RejectedToken(
                seq=bad.seq,
                text=text if isinstance(text, str) else None,
                status=err.status,
                type=err.type,
                message=err.message,
                param=err.param,
                field=field_name,
            )
        )
        self.todo += [part for part in (batch[i + 1 :], batch[:i]) if part]
        return True

    def unsent(self) -> list[QueuedToken]:
        return [q for batch in reversed(self.todo) for q in batch]

    def settle(self, session: AuditSession) -> TokenRejectedError | None:
        """Put what was not sent back in front of the queue, note the rejections; the error to raise."""
        session.pending = self.unsent() + session.pending
        if not self.rejected:
            return None
        rejected = sorted(self.rejected, key=lambda r: r.seq)
        session.rejected += rejected
        return TokenRejectedError(rejected, self.accepted)


def _is_final(detail: dict[str, Any], tokens: int) -> bool:
    """The alerter's summary is there, counts every token, and every token's audit is in the detail."""
    summary = detail.get("summary")
    return summary is not None and summary.get("tokens", 0) >= tokens and len(detail.get("tokens", ())) >= tokens


def _timeout(session_id: str, tokens: int, wait_s: float, detail: dict[str, Any]) -> AuditTimeoutError:
    return AuditTimeoutError(
        session_id,
        tokens=tokens,
        audited=len(detail.get("tokens", ())),
        summary=detail.get("summary") is not None,
        wait_s=wait_s,
        detail=detail,
    )


def _check(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        try:
            err = resp.json()["error"]
            raise GatewayError(resp.status_code, err["type"], err["message"], err.get("param"))
        except (ValueError, KeyError, TypeError):
            raise GatewayError(resp.status_code, "http_error", resp.text[:500]) from None
    return resp.json() if resp.content else None


def _tokens_path(session: AuditSession) -> str:
    return f"/push/sessions/{session.session_id}/tokens"


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
        """Queue one token (sent every ``batch_size`` tokens); returns its seq in the session.

        The seq holds when every token queued before it is accepted (see :class:`TokenRejectedError`).
        Sending may raise what :meth:`flush` raises; the token itself stays queued or was sent.
        """
        session = self._current()
        seq = session.next_seq
        session.pending.append(QueuedToken(seq, _token_json(token)))
        session.added += 1
        if len(session.pending) >= self.batch_size:
            self.flush()
        return seq

    def flush(self) -> None:
        """Send the queued tokens, in order.

        Raises :class:`TokenRejectedError` after sending every other token when the gateway refused
        some; any other error leaves the unsent tokens queued for the next flush.
        """
        session = self._current()
        plan, session.pending = _Flush(session.pending), []
        try:
            while (batch := plan.next_batch()) is not None:
                try:
                    _check(self.http.post(_tokens_path(session), json={"tokens": [q.body for q in batch]}))
                except GatewayError as err:
                    if not plan.refused(err):
                        raise
                else:
                    session.sent += plan.sent()
        finally:
            rejected = plan.settle(session)
        if rejected is not None:
            raise rejected

    def finish(
        self, status: str = "finished", reason: str | None = None, *, wait: bool = False, wait_s: float = 60.0
    ) -> dict[str, Any]:
        """Send what is pending and end the session; with ``wait``, return it once it is final.

        With ``wait``: the ``GET /sessions/{id}`` body once the alerter's summary is there and every
        token is audited; :class:`AuditTimeoutError` when that takes longer than ``wait_s``. When
        sending the last tokens raises :class:`TokenRejectedError`, the session is not ended yet:
        call ``finish`` again to end it.
        """
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
        """The session once final: its ``tokens`` tokens audited and the alerter's summary written.

        Raises :class:`AuditTimeoutError` (with what was there) when it is not final within ``wait_s``.
        """
        deadline = time.monotonic() + wait_s
        while True:
            detail = self.get_session(session_id)
            if _is_final(detail, tokens):
                return detail
            if time.monotonic() > deadline:
                raise _timeout(session_id, tokens, wait_s, detail)
            time.sleep(POLL_S)

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
        session.pending.append(QueuedToken(seq, _token_json(token)))
        session.added += 1
        if len(session.pending) >= self.batch_size:
            await self.flush()
        return seq

    async def flush(self) -> None:
        session = self._current()
        plan, session.pending = _Flush(session.pending), []
        try:
            while (batch := plan.next_batch()) is not None:
                try:
                    resp = await self.http.post(_tokens_path(session), json={"tokens": [q.body for q in batch]})
                    _check(resp)
                except GatewayError as err:
                    if not plan.refused(err):
                        raise
                else:
                    session.sent += plan.sent()
        finally:
            rejected = plan.settle(session)
        if rejected is not None:
            raise rejected

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
            if _is_final(detail, tokens):
                return detail
            if time.monotonic() > deadline:
                raise _timeout(session_id, tokens, wait_s, detail)
            await asyncio.sleep(POLL_S)

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
