"""The original README's domain rule as a Python rule class.

Run it with ``UQ_PYTHON_RULES='["examples.quantum_rule:QuantumUncertainty"]' python -m services.alerter``.
"""

from __future__ import annotations

from typing import Any

from services.alerter.rules import Finding, Rule, describe
from services.common.contracts import AuditEvent


class QuantumUncertainty(Rule):
    """A token containing "quantum" generated with uncertainty (ℏₛ) above 3.0."""

    name = "QUANTUM_UNCERTAINTY"
    severity = "critical"
    threshold = 3.0

    def check(self, audit: AuditEvent, state: dict[str, Any]) -> Finding | None:
        h = audit.metrics.hbar_s
        if "quantum" in audit.text.lower() and h is not None and h > self.threshold:
            return Finding(
                f"{describe(audit)}: ℏₛ = {h:.2f} above {self.threshold:.2f} in a quantum physics term",
                {"hbar_s": h},
            )
        return None
