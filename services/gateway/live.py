"""The live view: what is happening in each active session, and who is watching it.

No I/O here. The fan-out task (fanout.py) feeds entries read from ``uq:audits``, ``uq:alerts`` and
``uq:sessions`` into :meth:`LiveState.apply`; this module has them turned into WebSocket messages
(services.gateway.messages), keeps a bounded buffer of each active session's recent messages for replay, and hands
each message to every subscriber of its session through :meth:`Subscriber.deliver`, which never
blocks (a subscriber with a full buffer drops the message and reports it as ``missed``).

The replay buffers are bounded twice: ``recent_tokens`` messages per session, and ``budget_bytes``
for all sessions together. Over the budget, ended sessions' tokens go first, then the oldest token
messages of the largest buffers (lifecycle, alert, risk and done messages stay): a replay takes what the
live buffer no longer has from the recorder's store (history.py), which holds everything but the
last moments.

A session's ``done`` message is sent from here: once its terminal ``uq:sessions`` entry has been seen and
either the alerter's summary arrived, or every token was audited and ``done_grace_s`` passed, or
four times that passed (an alerter or auditor is down; ``done`` must still come).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.common.contracts.events import RISK_LEVELS, STATUS_SEQ, TERMINAL_STATUSES
from services.gateway import messages
from services.gateway.messages import MessageKey


class Subscriber(Protocol):
    def deliver(self, session_id: str, key: MessageKey, text: str) -> None:
        """Take one message without blocking (drop it and remember it as missed when full)."""


@dataclass
class SessionView:
    """What the gateway saw of one session since it started."""

    session_id: str
    status: str = "queued"
    reason: str | None = None
    model: str | None = None
    provider: str | None = None
    prompt: str | None = None
    tokens: int = 0  # audits seen
    terminal_tokens: int | None = None  # the token count the terminal session entry announced
    risk: str = "safe"
    peak_risk: str = "safe"
    scores: dict[str, Any] | None = None  # the latest live scores entry
    summary: dict[str, Any] | None = None
    ended_at: float | None = None
    done_sent: bool = False
    touched: float = field(default_factory=time.monotonic)
    messages: deque[tuple[MessageKey, str]] = field(default_factory=deque)
    bytes: int = 0  # estimated memory of ``messages``

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATUSES


class LiveState:
    """Active sessions, their recent messages and their subscribers."""

    def __init__(
        self,
        *,
        recent_tokens: int = 20_000,
        keep_s: float = 300.0,
        done_grace_s: float = 3.0,
        max_sessions: int = 10_000,
        idle_s: float = 3_600.0,
        budget_bytes: int = 128 * 2**20,
    ) -> None:
        self.recent_tokens = recent_tokens
        self.budget_bytes = budget_bytes
        self.replay_bytes = 0  # estimated memory of every session's ``messages``
        self.trimmed = 0  # token messages dropped to stay within the budget
        self.keep_s = keep_s
        self.done_grace_s = done_grace_s
        self.max_sessions = max_sessions
        self.idle_s = idle_s
        self.views: OrderedDict[str, SessionView] = OrderedDict()
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.tokens_audited = 0
        self.alerts_sent_by_rule: dict[str, int] = {}

    # --- subscribers ----------------------------------------------------------------------------

    def subscribe(self, session_id: str, sub: Subscriber) -> None:
        self.subscribers.setdefault(session_id, set()).add(sub)

    def unsubscribe(self, session_id: str, sub: Subscriber) -> None:
        subs = self.subscribers.get(session_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[session_id]

    def active_sessions(self) -> int:
        return sum(1 for v in self.views.values() if not v.ended)

    # --- feeding --------------------------------------------------------------------------------

    def view(self, session_id: str) -> SessionView | None:
        return self.views.get(session_id)

    def forget(self, session_id: str) -> None:
        """Drop a session's view and its replay buffer (it was deleted)."""
        view = self.views.pop(session_id, None)
        if view is not None:
            self.replay_bytes -= view.bytes

    def ensure(self, session_id: str, **known: str | None) -> SessionView:
        """The session's view, created now (before its entries come back from Redis) if needed."""
        view = self.views.get(session_id)
        if view is None:
            view = self.views[session_id] = SessionView(session_id, **known)  # type: ignore[arg-type]
            self._evict(time.monotonic())
        return view

    def apply(self, entry: dict[str, Any], now: float | None = None) -> None:
        """Take one decoded entry of uq:audits, uq:alerts or uq:sessions; deliver what it means."""
        now = time.monotonic() if now is None else now
        session_id = entry["session_id"]
        view = self.views.get(session_id)
        if view is None:
            view = self.views[session_id] = SessionView(session_id)
            self._evict(now)
        else:
            self.views.move_to_end(session_id)
        view.touched = now
        kind = entry.get("type")
        if kind == "audit":
            view.tokens += 1
            self.tokens_audited += 1
        elif kind == "alert":
            rule = str(entry.get("rule"))
            self.alerts_sent_by_rule[rule] = self.alerts_sent_by_rule.get(rule, 0) + 1
        elif kind == "risk":
            view.risk = str(entry.get("level"))
            view.peak_risk = max(view.peak_risk, view.risk, key=_risk_rank)
        elif kind == "scores":
            view.scores = entry
        elif kind == "summary":
            view.summary = entry
        elif kind == "session":
            self._lifecycle(view, entry, now)
        built = messages.from_entry(entry)
        if built is not None:
            key, msg = built
            text = messages.dumps(msg)
            self._remember(view, key, text)
            self._deliver(session_id, key, text)
        self._maybe_done(view, now)

    def tick(self, now: float | None = None) -> None:
        """Send ``done`` for sessions whose grace time passed; forget old sessions."""
        now = time.monotonic() if now is None else now
        for view in list(self.views.values()):
            self._maybe_done(view, now)
        self._evict(now)

    # --- internals ------------------------------------------------------------------------------

    def _lifecycle(self, view: SessionView, entry: dict[str, Any], now: float) -> None:
        status = str(entry["status"])
        for name in ("model", "provider", "prompt"):
            if entry.get(name) is not None:
                setattr(view, name, entry[name])
        if STATUS_SEQ.get(status, 0) >= STATUS_SEQ.get(view.status, 0) and not view.ended:
            view.status = status
        if status in TERMINAL_STATUSES:
            view.status = status
            view.reason = entry.get("reason")
            view.terminal_tokens = entry.get("tokens")
            if view.ended_at is None:
                view.ended_at = now

    def _maybe_done(self, view: SessionView, now: float) -> None:
        if view.done_sent or view.ended_at is None:
            return
        waited = now - view.ended_at
        complete = view.terminal_tokens is None or view.tokens >= view.terminal_tokens
        if view.summary is not None or (complete and waited >= self.done_grace_s) or waited >= 4 * self.done_grace_s:
            view.done_sent = True
            tokens = view.terminal_tokens if view.terminal_tokens is not None else view.tokens
            key, msg = messages.done(view.session_id, view.status, view.reason, tokens, view.summary)
            text = messages.dumps(msg)
            self._remember(view, key, text)
            self._deliver(view.session_id, key, text)

    def _remember(self, view: SessionView, key: MessageKey, text: str) -> None:
        view.messages.append((key, text))
        cost = _cost(text)
        view.bytes += cost
        self.replay_bytes += cost
        if len(view.messages) > self.recent_tokens:
            self._drop_tokens(view, len(view.messages) - max(1, self.recent_tokens * 9 // 10))
        if self.replay_bytes > self.budget_bytes:
            self._shrink()

    def _shrink(self) -> None:
        """Bring the replay buffers down to 80 % of the budget (so that this runs rarely)."""
        target = self.budget_bytes * 4 // 5
        for view in [v for v in self.views.values() if v.done_sent]:
            if self.replay_bytes <= target:
                return
            self._drop_tokens(view, len(view.messages))  # its lifecycle, alerts and `done` stay
        while True:  # halve the largest buffers first; each round halves them all at worst
            dropped = 0
            for view in sorted(self.views.values(), key=lambda v: v.bytes, reverse=True):
                if self.replay_bytes <= target:
                    return
                dropped += self._drop_tokens(view, (len(view.messages) + 1) // 2)
            if not dropped:
                return  # nothing left but lifecycle, alert and risk messages

    def _drop_tokens(self, view: SessionView, n: int) -> int:
        """Drop the ``n`` oldest token messages of ``view`` (other messages stay); returns how many went."""
        kept: deque[tuple[MessageKey, str]] = deque()
        dropped = 0
        for key, text in view.messages:
            if dropped < n and key[0] == "token":
                dropped += 1
                cost = _cost(text)
                view.bytes -= cost
                self.replay_bytes -= cost
            else:
                kept.append((key, text))
        view.messages = kept
        self.trimmed += dropped
        return dropped

    def _deliver(self, session_id: str, key: MessageKey, text: str) -> None:
        for sub in tuple(self.subscribers.get(session_id, ())):
            sub.deliver(session_id, key, text)

    def _evict(self, now: float) -> None:
        while len(self.views) > self.max_sessions:
            _, old = self.views.popitem(last=False)
            self.replay_bytes -= old.bytes
        stale = [
            sid
            for sid, v in self.views.items()
            if (v.done_sent and v.ended_at is not None and now - v.ended_at > self.keep_s)
            or now - v.touched > self.idle_s
        ]
        for sid in stale:
            self.replay_bytes -= self.views.pop(sid).bytes


def _cost(text: str) -> int:
    """Estimated bytes of one buffered message: the JSON text and the objects around it."""
    return len(text) + 160


def _risk_rank(level: str) -> int:
    return RISK_LEVELS.index(level) if level in RISK_LEVELS else 0
