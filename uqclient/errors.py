"""Errors of the client; catch :class:`UQClientError` for all of them.

::

    UQClientError
    ├── GatewayError             the gateway answered with an error: status, type, param, message
    │   └── TokenRejectedError   pushed tokens refused one by one (``rejected``); the good ones beside
    │                            them were sent, in order
    └── AuditTimeoutError        finish(wait=True) / wait_audited: the session was not final in time
"""

from __future__ import annotations

from dataclasses import dataclass


class UQClientError(Exception):
    """Base class of everything this client raises on purpose."""


class GatewayError(UQClientError):
    """The gateway answered with an error: ``status``, ``type``, ``param`` (the offending field) and message."""

    def __init__(self, status: int, type_: str, message: str, param: str | None = None) -> None:
        self.status = status
        self.type = type_
        self.param = param
        self.message = message
        super().__init__(f"{status} {type_}: {message}" + (f" (field {param})" if param else ""))


@dataclass(frozen=True)
class RejectedToken:
    """One token the gateway refused.

    ``seq``: what ``add_token`` returned for it; ``text``: its text; ``status``, ``type``, ``message``
    and ``param``: the gateway's answer (``param`` as the gateway saw the batch, e.g.
    ``tokens.3.logprob``); ``field``: the offending field of the token itself (``logprob``), or None.
    """

    seq: int
    text: str | None
    status: int
    type: str
    message: str
    param: str | None
    field: str | None

    def describe(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        return f"token seq {self.seq} {self.text!r}: {self.status} {self.type}: {self.message}{where}"


class TokenRejectedError(GatewayError):
    """The gateway refused some pushed tokens; every other token of the flush was sent, in order.

    ``rejected`` lists each refused token (:class:`RejectedToken`); ``status``, ``type``, ``param``
    and ``message`` are the first one's. A rejected token gets no seq, so each token queued after it
    has a seq one lower than ``add_token`` returned. The session goes on: add more tokens, or
    ``finish()``.
    """

    def __init__(self, rejected: list[RejectedToken], accepted: int) -> None:
        self.rejected = rejected
        self.accepted = accepted
        first = rejected[0]
        super().__init__(first.status, first.type, first.message, first.param)
        lines = "; ".join(r.describe() for r in rejected)
        self.args = (
            f"the gateway refused {len(rejected)} token{'s' if len(rejected) > 1 else ''} ({lines}); "
            f"the other {accepted} were sent",
        )


class AuditTimeoutError(UQClientError):
    """The session was not final within ``wait_s``: its summary, or some of its tokens' audits, missing.

    ``detail`` is the last ``GET /sessions/{id}`` body seen (partial: do not take it for the result).
    """

    def __init__(self, session_id: str, *, tokens: int, audited: int, summary: bool, wait_s: float, detail: object):
        self.session_id = session_id
        self.tokens = tokens
        self.audited = audited
        self.summary = summary
        self.wait_s = wait_s
        self.detail = detail
        missing = [] if audited >= tokens else [f"{audited} of {tokens} tokens audited"]
        if not summary:
            missing.append("no summary from the alerter yet")
        super().__init__(
            f"session {session_id!r} was not final after {wait_s:g} s ({', '.join(missing)}): "
            "check that the auditor and the alerter are running (GET /health), or wait longer (wait_s)"
        )
