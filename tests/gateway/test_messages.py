"""The WebSocket protocol: every message the gateway builds, live and replayed, is a protocol model."""

from __future__ import annotations

import json

from pydantic import TypeAdapter

from services.common.contracts import ScoresEvent, SessionHistory, SessionRecord
from services.gateway import messages
from services.gateway.errors import NotFoundError
from services.gateway.live import LiveState
from services.gateway.messages import MessageKey
from services.gateway.protocol import CLIENT_MODELS, ServerMessage, SessionMessage
from tests.gateway.events import alert, audit, lifecycle, risk, summary

SERVER: TypeAdapter[object] = TypeAdapter(ServerMessage)


class Collect:
    def __init__(self) -> None:
        self.texts: list[tuple[MessageKey, str]] = []

    def deliver(self, session_id: str, key: MessageKey, text: str) -> None:
        self.texts.append((key, text))


def _session_entries() -> list[dict[str, object]]:
    scores = ScoresEvent(session_id="s", seq=0, token_seq=1, tokens=2, answer_complete=True)
    events = [
        lifecycle("s", "queued", prompt="p"),
        lifecycle("s", "started"),
        audit("s", 0),
        audit("s", 1),
        alert("s", 0, 1),
        risk("s", 1, 1),
        scores,
        lifecycle("s", "finished", tokens=2, reason="eos"),
        summary("s", 0, 2),
    ]
    return [e.model_dump(mode="json") for e in events]


def test_every_live_message_is_a_protocol_message() -> None:
    live = LiveState()
    sub = Collect()
    live.subscribe("s", sub)
    for entry in _session_entries():
        live.apply(entry)
    kinds = [key[0] for key, _ in sub.texts]
    assert kinds == ["session", "session", "token", "token", "alert", "risk", "scores", "session", "done"]
    for _, text in sub.texts:
        SERVER.validate_json(text)
    done = json.loads(sub.texts[-1][1])
    assert done["summary"]["tokens"] == 2 and done["tokens"] == 2


def test_every_replayed_message_is_a_protocol_message() -> None:
    ended = summary("s", 0, 2)
    record = SessionRecord(session_id="s", status="finished", created_ns=1, updated_ns=2, tokens=1, summary=ended)
    history = SessionHistory(session=record, tokens=[audit("s", 0)], alerts=[alert("s", 0, 0)], risks=[risk("s", 0, 0)])
    built = messages.from_history(history)
    assert [k for k, _ in built] == [("session", 2), ("token", 0), ("alert", 0), ("risk", 0), ("done", 0)]
    for _, msg in built:
        SERVER.validate_python(msg)
    assert built[-1][1] == {
        "type": "done",
        "session_id": "s",
        "status": "finished",
        "reason": None,
        "tokens": 1,
        "summary": ended.model_dump(mode="json"),
    }


def test_a_replayed_session_message_has_the_live_one_s_fields() -> None:
    live_entry = lifecycle("s", "cancelled", tokens=1).model_dump(mode="json")
    _, live_msg = messages.from_entry(live_entry) or (None, {})
    record = SessionRecord(session_id="s", status="cancelled", created_ns=1, updated_ns=2, tokens=1)
    key, replayed = messages.session(record)
    assert key == ("session", 2)
    assert set(replayed) == set(live_msg) == set(SessionMessage.model_fields)
    assert SessionMessage.model_validate(replayed).status == "cancelled"


def test_socket_messages_are_protocol_messages() -> None:
    for msg in (
        messages.replayed("s", 3),
        messages.missed("s", 1, 4, 5),
        messages.missed("s", None, None, 1),
        messages.pong(),
        messages.error(NotFoundError("no session 's'", param="session_id"), "s"),
    ):
        SERVER.validate_python(msg)
    err = messages.error(NotFoundError("no session 's'", param="session_id"), "s")
    assert err["error"] == {"message": "no session 's'", "type": "not_found", "param": "session_id"}


def test_a_summary_entry_is_no_message() -> None:
    assert messages.from_entry(summary("s", 0, 2).model_dump(mode="json")) is None


def test_client_models_are_keyed_by_their_type() -> None:
    for kind, model in CLIENT_MODELS.items():
        assert model.model_fields["type"].annotation.__args__ == (kind,)  # type: ignore[union-attr]
