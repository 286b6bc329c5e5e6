"""The live view: messages per session in order, the done rule, the replay buffer and eviction."""

from __future__ import annotations

import json

from services.gateway.live import LiveState
from services.gateway.messages import MessageKey


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[str, MessageKey, dict[str, object]]] = []

    def deliver(self, session_id: str, key: MessageKey, text: str) -> None:
        self.got.append((session_id, key, json.loads(text)))


def audit(sid: str, seq: int) -> dict[str, object]:
    return {"type": "audit", "session_id": sid, "seq": seq, "text": f"t{seq}", "metrics": {"prob": 0.5}}


def session(sid: str, status: str, seq: int, **extra: object) -> dict[str, object]:
    return {"type": "session", "session_id": sid, "seq": seq, "status": status, **extra}


def test_subscriber_gets_only_its_session_in_order_with_audits_renamed_token() -> None:
    live = LiveState()
    sub = Recorder()
    live.subscribe("a", sub)
    for seq in range(3):
        live.apply(audit("a", seq))
        live.apply(audit("b", seq))
    assert [(s, k) for s, k, _ in sub.got] == [("a", ("token", 0)), ("a", ("token", 1)), ("a", ("token", 2))]
    assert sub.got[0][2]["type"] == "token"
    assert sub.got[0][2]["text"] == "t0"
    assert live.tokens_audited == 6
    live.unsubscribe("a", sub)
    live.apply(audit("a", 3))
    assert len(sub.got) == 3


def test_done_waits_for_the_summary_and_carries_it() -> None:
    live = LiveState(done_grace_s=10)
    sub = Recorder()
    live.subscribe("s", sub)
    live.apply(session("s", "started", 1), now=0)
    live.apply(audit("s", 0), now=0)
    live.apply(session("s", "finished", 2, reason="eos", tokens=1), now=1)
    live.tick(now=2)
    assert [k for _, k, _ in sub.got] == [("session", 1), ("token", 0), ("session", 2)]
    summary = {"type": "summary", "session_id": "s", "seq": 0, "tokens": 1, "final_risk": "safe"}
    live.apply(summary, now=3)
    done = sub.got[-1][2]
    assert done == {
        "type": "done",
        "session_id": "s",
        "status": "finished",
        "reason": "eos",
        "tokens": 1,
        "summary": summary,
    }
    live.tick(now=100)
    assert sum(1 for _, k, _ in sub.got if k == ("done", 0)) == 1


def test_done_without_summary_after_grace_when_every_token_was_audited() -> None:
    live = LiveState(done_grace_s=2)
    sub = Recorder()
    live.subscribe("s", sub)
    live.apply(session("s", "finished", 2, tokens=2), now=0)
    live.apply(audit("s", 0), now=0.5)
    live.tick(now=2.5)
    assert ("done", 0) not in [k for _, k, _ in sub.got]  # one token still missing
    live.apply(audit("s", 1), now=2.6)
    assert sub.got[-1][1] == ("done", 0)
    assert sub.got[-1][2]["summary"] is None


def test_done_comes_anyway_when_tokens_never_arrive() -> None:
    live = LiveState(done_grace_s=1)
    sub = Recorder()
    live.subscribe("s", sub)
    live.apply(session("s", "failed", 2, tokens=5, reason="boom"), now=0)
    live.tick(now=3.9)
    assert sub.got[-1][1] == ("session", 2)
    live.tick(now=4.1)
    assert sub.got[-1][2]["status"] == "failed"
    assert sub.got[-1][2]["reason"] == "boom"


def test_lifecycle_and_risk_tracked_and_buffer_bounded() -> None:
    live = LiveState(recent_tokens=5)
    live.apply(session("s", "queued", 0, model="m", prompt="p"))
    live.apply(session("s", "started", 1))
    for seq in range(10):
        live.apply(audit("s", seq))
    live.apply({"type": "risk", "session_id": "s", "seq": 0, "level": "critical", "token_seq": 9})
    view = live.view("s")
    assert view is not None
    assert (view.status, view.model, view.prompt, view.risk, view.tokens) == ("started", "m", "p", "critical", 10)
    # over 5 messages, the oldest tokens go (down to 90 %, so trimming is rare); lifecycle messages stay
    assert [k for k, _ in view.messages] == [("session", 0), ("session", 1), ("token", 8), ("token", 9), ("risk", 0)]
    assert live.active_sessions() == 1


def accounted(live: LiveState) -> int:
    return sum(v.bytes for v in live.views.values())


def test_replay_buffers_stay_within_the_budget_largest_and_ended_first() -> None:
    budget = 60 * 400  # bytes: room for about 60 token messages of the padded size below
    live = LiveState(budget_bytes=budget, done_grace_s=0)

    def padded(sid: str, seq: int) -> dict[str, object]:
        return audit(sid, seq) | {"text": "x" * 200}

    live.apply(session("ended", "started", 1), now=0)
    for seq in range(20):
        live.apply(padded("ended", seq), now=0)
    live.apply(session("ended", "finished", 2, tokens=20), now=0)
    live.tick(now=1)  # done sent: its buffer is the first to go
    live.apply(session("big", "started", 1), now=1)
    live.apply(session("small", "started", 1), now=1)
    for seq in range(10):
        live.apply(padded("small", seq), now=1)
    for seq in range(200):
        live.apply(padded("big", seq), now=1)
        assert live.replay_bytes <= budget
        assert live.replay_bytes == accounted(live)
    ended, big, small = (live.view(s) for s in ("ended", "big", "small"))
    assert ended is not None and big is not None and small is not None
    assert [k for k, _ in ended.messages] == [("session", 1), ("session", 2), ("done", 0)]  # only its tokens went
    assert [k for k, _ in small.messages][:3] == [("session", 1), ("token", 0), ("token", 1)]  # untouched
    big_keys = [k for k, _ in big.messages]
    assert big_keys[0] == ("session", 1) and big_keys[-1] == ("token", 199)  # its newest tokens stay
    kept_tokens = sum(k[0] == "token" for v in (big, small) for k, _ in v.messages)
    assert live.trimmed == 20 + 200 + 10 - kept_tokens  # every token message dropped is counted


def test_replay_accounting_follows_deleted_sessions() -> None:
    live = LiveState()
    for i in range(3):
        live.apply(audit(f"s{i}", 0))
    live.forget("s1")
    live.forget("never-seen")
    assert live.view("s1") is None
    assert live.replay_bytes == accounted(live) > 0


def test_replay_accounting_follows_evicted_sessions() -> None:
    live = LiveState(keep_s=10, done_grace_s=0, max_sessions=3)
    for i in range(6):
        live.apply(session(f"s{i}", "started", 1), now=0)
        live.apply(audit(f"s{i}", 0), now=0)
    live.apply(session("s5", "finished", 2, tokens=1), now=0)
    live.tick(now=20)
    assert len(live.views) == 2
    assert live.replay_bytes == accounted(live) > 0


def test_ended_sessions_are_forgotten_after_keep_s() -> None:
    live = LiveState(keep_s=10, done_grace_s=0)
    live.apply(session("s", "cancelled", 2, tokens=0), now=0)
    live.tick(now=5)
    assert live.view("s") is not None
    live.tick(now=11)
    assert live.view("s") is None
