"""Where every WebSocket message is built (the protocol: services.gateway.protocol, docs/api.md).

Live messages come from stream entries (:func:`from_entry`, fed by the fan-out through
services.gateway.live), replayed ones from the recorder's store (:func:`from_history`); both go
through the same functions, so a message looks the same whichever way it reached the client. These
are plain dicts and JSON text, not models: the fan-out runs them for every token of every session,
and the tests validate what they build against ``protocol.ServerMessage``.

Each message has a key, (type, seq), that a client dedupes on within a session.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.common.contracts import SessionHistory, SessionRecord
from services.common.contracts.events import STATUS_SEQ, TERMINAL_STATUSES
from services.gateway.errors import ApiError

MessageKey = tuple[str, int]  # (type, seq)
Message = dict[str, Any]
DONE_KEY: MessageKey = ("done", 0)


def dumps(msg: Message) -> str:
    """Compact JSON text, UTF-8 as it is (orjson: the fan-out encodes every message of every session)."""
    return orjson.dumps(msg).decode()


# --- from the streams (live) and the store (replay) ----------------------------------------------


def from_entry(entry: Message) -> tuple[MessageKey, Message] | None:
    """The message for one decoded stream entry (uq:audits, uq:alerts, uq:sessions), or None for a
    summary (it goes out in the ``done`` message)."""
    kind = entry.get("type")
    if kind == "audit":
        return token(entry)
    if kind in ("alert", "risk", "scores", "session"):
        return (str(kind), int(entry["seq"])), entry
    return None


def token(audit: Message) -> tuple[MessageKey, Message]:
    """A ``token`` message: the audit entry with ``type`` ``token``."""
    msg = dict(audit)
    msg["type"] = "token"
    return ("token", int(audit["seq"])), msg


def session(record: SessionRecord) -> tuple[MessageKey, Message]:
    """The ``session`` message of a stored session: its latest lifecycle entry, as uq:sessions had it."""
    seq = STATUS_SEQ[record.status]
    summary = record.summary
    verification = summary.verification if summary is not None and record.status == "finished" else None
    return ("session", seq), {
        "schema_version": 1,
        "session_id": record.session_id,
        "seq": seq,
        "ts_ns": record.updated_ns,
        "type": "session",
        "status": record.status,
        "reason": record.reason,
        "model": record.model,
        "provider": record.provider,
        "prompt": record.prompt,
        "tokens": record.tokens,
        "prompt_tokens": None,  # the audit trail does not keep it (only the live terminal entry has it)
        "verification": verification.model_dump(mode="json") if verification is not None else None,
    }


def from_history(history: SessionHistory) -> list[tuple[MessageKey, Message]]:
    """The messages a stored session replays as: its lifecycle, tokens, alerts, risk changes, ``done``."""
    record = history.session
    out = [session(record)]
    out += [token(audit.model_dump(mode="json")) for audit in history.tokens]
    out += [(("alert", a.seq), a.model_dump(mode="json")) for a in history.alerts]
    out += [(("risk", r.seq), r.model_dump(mode="json")) for r in history.risks]
    if record.status in TERMINAL_STATUSES:
        summary = record.summary.model_dump(mode="json") if record.summary is not None else None
        out.append(done(record.session_id, record.status, record.reason, record.tokens, summary))
    return out


def done(
    session_id: str, status: str, reason: str | None, tokens: int, summary: Message | None
) -> tuple[MessageKey, Message]:
    msg: Message = {"type": "done", "session_id": session_id, "status": status, "reason": reason, "tokens": tokens}
    msg["summary"] = summary
    return DONE_KEY, msg


# --- about the socket ----------------------------------------------------------------------------


def replayed(session_id: str, last_seq: int) -> Message:
    return {"type": "replayed", "session_id": session_id, "last_seq": last_seq}


def missed(session_id: str, from_seq: int | None, to_seq: int | None, dropped: int) -> Message:
    return {"type": "missed", "session_id": session_id, "from_seq": from_seq, "to_seq": to_seq, "dropped": dropped}


def pong() -> Message:
    return {"type": "pong"}


def error(exc: ApiError, session_id: str | None = None) -> Message:
    """An ``error`` message: the REST error body (``error``: message, type, param), and the session it concerns."""
    msg: Message = {"type": "error", **exc.body()}
    if session_id is not None:
        msg["session_id"] = session_id
    return msg
