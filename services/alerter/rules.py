"""The rule interface: what a built-in rule and a user's rule both are, and how they are loaded.

A rule looks at one audit (a token with its metrics) of one session, in ``seq`` order, and either
returns a :class:`Finding` (it fires) or ``None``. It may keep per-session memory in ``state``: a dict
that the alerter keeps for this rule and this session, persists with the session (so it must hold
JSON values only, and stay small) and hands back on the session's next token::

    from services.alerter.rules import Finding, Rule, describe

    class QuantumUncertainty(Rule):
        name = "QUANTUM_UNCERTAINTY"
        severity = "critical"

        def check(self, audit, state):
            h = audit.metrics.hbar_s
            if "quantum" in audit.text.lower() and h is not None and h > 3.0:
                return Finding(f"{describe(audit)}: ℏₛ = {h:.2f} above 3.00 in a quantum physics term", {"hbar_s": h})
            return None

Rules are loaded by dotted path (``package.module:ClassName``) with :func:`load_rule`; the built-in
ones go through the same function (settings ``UQ_BUILTIN_RULES`` and ``UQ_PYTHON_RULES``). A rule
class is built with ``cls.from_settings(settings)``; the default calls ``cls()``.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

from services.alerter.errors import RuleLoadError
from services.common.contracts import AuditEvent, Severity

if TYPE_CHECKING:
    from services.alerter.settings import AlerterSettings

SEVERITIES: tuple[str, ...] = get_args(Severity)
RULE_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule fired: the one-line message, the metric values it looked at, and optionally a severity
    other than the rule's own (e.g. an escalation)."""

    message: str
    values: dict[str, float | None] = field(default_factory=dict)
    severity: Severity | None = None


class Rule:
    """Base of every alert rule. Subclasses set ``name`` and ``severity`` and implement ``check``."""

    name: str = ""
    severity: Severity = "warning"

    @classmethod
    def from_settings(cls, settings: AlerterSettings) -> Rule:
        """Build the rule; override to read thresholds from the alerter's settings."""
        return cls()

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        """Return a Finding when the rule fires on ``audit``; ``state`` is this session's memory for the rule."""
        raise NotImplementedError


def describe(audit: AuditEvent) -> str:
    """How messages name a token: ``token " Paris" (#7)`` (the text JSON-quoted, so spaces and newlines show)."""
    return f"token {quote(audit.text)} (#{audit.seq})"


def quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


#: How messages name a metric.
LABELS = {"hbar_s": "ℏₛ", "prob": "p"}


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def compact(value: float) -> float:
    """``value`` to 7 significant digits: what rules keep in their persisted state (a history window),
    so that the state stays small and fast to write; far finer than any threshold."""
    return float(f"{value:.7g}")


def fmt(value: float) -> str:
    """Two decimals for ordinary values, scientific for the very small (p = 3.1e-05)."""
    return f"{value:.2e}" if value != 0 and abs(value) < 0.01 else f"{value:.2f}"


def load_rule(path: str, settings: AlerterSettings) -> Rule:
    """Import ``package.module:ClassName`` (or ``package.module.ClassName``) and build the rule."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise RuleLoadError(path, "not a dotted path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuleLoadError(path, f"cannot import module {module_name!r} ({exc})") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise RuleLoadError(path, f"module {module_name!r} has no attribute {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, Rule)):
        raise RuleLoadError(path, f"{attr!r} is not a subclass of services.alerter.rules.Rule")
    try:
        rule = cls.from_settings(settings)
    except Exception as exc:
        raise RuleLoadError(path, f"building the rule failed: {exc!r}") from None
    check_rule(rule, path)
    return rule


def check_rule(rule: Rule, where: str) -> None:
    """Refuse a rule without a valid name or severity."""
    if not RULE_NAME.match(rule.name or ""):
        raise RuleLoadError(where, f"name {rule.name!r} must be UPPER_SNAKE_CASE (A-Z, 0-9, _), e.g. MY_RULE")
    if rule.severity not in SEVERITIES:
        raise RuleLoadError(where, f"severity {rule.severity!r} must be one of {', '.join(SEVERITIES)}")
