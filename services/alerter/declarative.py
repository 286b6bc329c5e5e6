"""Declarative rules from a YAML or JSON file (``UQ_RULES_FILE``); see docs/alerts.md.

```yaml
rules:
  - name: QUANTUM_UNCERTAINTY
    metric: hbar_s
    operator: ">"
    threshold: 3.0
    text_contains: quantum
    severity: critical
    message: "{token} (#{seq}): ℏₛ = {value:.2f} above {threshold:.2f} in a quantum physics term"
```

A rule compares one metric of the token — or, with ``window: n``, an ``aggregate`` (mean, max, min,
sum) of the metric over the session's last n tokens including this one — with a threshold; an
optional ``text_contains`` (case-insensitive) or ``text_regex`` restricts it to matching tokens.
Every mistake is reported at start with the file, the rule and the problem.
"""

from __future__ import annotations

import json
import operator
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.alerter.builtin import NUMERIC_METRICS
from services.alerter.errors import RulesFileError
from services.alerter.rules import RULE_NAME, Finding, Rule, compact, fmt, label, quote
from services.common.contracts import AuditEvent, Severity

OPERATORS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    ">": (operator.gt, "above"),
    ">=": (operator.ge, "at or above"),
    "<": (operator.lt, "below"),
    "<=": (operator.le, "at or below"),
    "==": (operator.eq, "equal to"),
    "!=": (operator.ne, "not equal to"),
}
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "mean": lambda v: sum(v) / len(v),
    "max": max,
    "min": min,
    "sum": sum,
}
#: Names a message template may use.
TEMPLATE_FIELDS = (
    "token",
    "text",
    "seq",
    "metric",
    "value",
    "threshold",
    "op",
    "operator",
    "window",
    "aggregate",
    "rule",
)


class RuleSpec(BaseModel):
    """One declarative rule as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="UPPER_SNAKE_CASE rule name, shown on every alert.")
    metric: str = Field(description="Audit metric: " + ", ".join(NUMERIC_METRICS))
    operator: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float
    window: int = Field(1, ge=1, le=1024, description="Tokens the aggregate runs over (1 = this token only).")
    aggregate: Literal["mean", "max", "min", "sum"] = "mean"
    severity: Severity = "warning"
    message: str | None = Field(None, max_length=1_000, description="Template; see TEMPLATE_FIELDS.")
    text_contains: str | None = Field(None, min_length=1, description="Only tokens containing this (any case).")
    text_regex: str | None = Field(None, min_length=1, description="Only tokens matching this regular expression.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not RULE_NAME.match(value):
            raise ValueError("must be UPPER_SNAKE_CASE (A-Z, 0-9, _), e.g. QUANTUM_UNCERTAINTY")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in NUMERIC_METRICS:
            raise ValueError(f"unknown metric {value!r}; one of {', '.join(NUMERIC_METRICS)}")
        return value

    @field_validator("text_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("message")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for _, name, _, _ in string.Formatter().parse(value):
            if name is not None and name.split(".")[0].split("[")[0] not in TEMPLATE_FIELDS:
                raise ValueError(f"unknown placeholder {{{name}}}; use any of {', '.join(TEMPLATE_FIELDS)}")
        try:
            value.format(**_sample_fields())
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"cannot be formatted: {exc}") from None
        return value

    @model_validator(mode="after")
    def _text_filters(self) -> RuleSpec:
        if self.text_contains is not None and self.text_regex is not None:
            raise ValueError("give text_contains or text_regex, not both")
        return self


def _sample_fields() -> dict[str, Any]:
    return {
        "token": '" Paris"',
        "text": " Paris",
        "seq": 7,
        "metric": "prob",
        "value": 0.12,
        "threshold": 0.3,
        "op": "below",
        "operator": "<",
        "window": 1,
        "aggregate": "mean",
        "rule": "RULE",
    }


class DeclarativeRule(Rule):
    """A rule built from a :class:`RuleSpec`. State (with a window): ``{"w": [last values]}``."""

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.severity = spec.severity
        self._compare, self._op_word = OPERATORS[spec.operator]
        self._aggregate = AGGREGATES[spec.aggregate]
        self._contains = spec.text_contains.casefold() if spec.text_contains else None
        self._regex = re.compile(spec.text_regex) if spec.text_regex else None

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        raw = getattr(audit.metrics, self.spec.metric)
        if raw is None:
            return None
        x = float(raw)
        window = self.spec.window
        if window > 1:
            values: list[float] = state.setdefault("w", [])
            values.append(compact(x))
            if len(values) > window:
                del values[0]
            if len(values) < window:
                return None
            value = self._aggregate(values)
        else:
            value = x
        if self._contains is not None and self._contains not in audit.text.casefold():
            return None
        if self._regex is not None and not self._regex.search(audit.text):
            return None
        if not self._compare(value, self.spec.threshold):
            return None
        return Finding(self._message(audit, value), {self.spec.metric: x, "value": value})

    def _message(self, audit: AuditEvent, value: float) -> str:
        spec = self.spec
        if spec.message is not None:
            return spec.message.format(
                token=quote(audit.text),
                text=audit.text,
                seq=audit.seq,
                metric=spec.metric,
                value=value,
                threshold=spec.threshold,
                op=self._op_word,
                operator=spec.operator,
                window=spec.window,
                aggregate=spec.aggregate,
                rule=spec.name,
            )
        metric = label(spec.metric)
        what = metric if spec.window == 1 else f"{spec.aggregate} {metric} over the last {spec.window} tokens"
        return f"token {quote(audit.text)} (#{audit.seq}): {what} = {fmt(value)} {self._op_word} {fmt(spec.threshold)}"


def load_rules_file(path: str | Path) -> list[DeclarativeRule]:
    """Read and check every rule of a YAML (.yaml/.yml) or JSON (.json) file; raise RulesFileError naming
    the file, the rule and the problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesFileError(file, f"cannot be read: {exc}") from None
    try:
        if file.endswith(".json"):
            document = json.loads(text)
        elif file.endswith((".yaml", ".yml")):
            document = yaml.safe_load(text)
        else:
            raise RulesFileError(file, "name must end in .yaml, .yml or .json")
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RulesFileError(file, f"is not valid {'JSON' if file.endswith('.json') else 'YAML'}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RulesFileError(file, "must be a mapping with a list under 'rules:' (rules: [- name: ..., metric: ...])")
    unknown = sorted(set(document) - {"rules"})
    if unknown:
        raise RulesFileError(file, f"unknown top-level key(s) {', '.join(map(repr, unknown))}; only 'rules' is allowed")
    rules: list[DeclarativeRule] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["rules"]):
        label = f"#{index + 1}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" ({raw['name']})"
        if not isinstance(raw, dict):
            raise RulesFileError(file, f"must be a mapping of fields, got {type(raw).__name__}", rule=label)
        try:
            spec = RuleSpec.model_validate(raw)
        except ValidationError as exc:
            raise RulesFileError(file, _problem(exc), rule=label) from None
        if spec.name in seen:
            raise RulesFileError(file, f"the name {spec.name} is used twice", rule=label)
        seen.add(spec.name)
        rules.append(DeclarativeRule(spec))
    return rules


def _problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(rule)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field; allowed: {', '.join(RuleSpec.model_fields)}"
        elif err["type"] == "missing":
            msg = "is required"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
