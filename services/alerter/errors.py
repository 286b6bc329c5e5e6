"""Errors of the alerter.

UQError (services.common.errors)
└── ConfigError
    ├── RuleLoadError        a Python rule class cannot be loaded (carries the dotted path)
    ├── RulesFileError       a declarative rules file is wrong (carries the file, the rule and the problem)
    └── ProfileError         a calibration profile cannot be read (carries the file and the problem)

Both stop the alerter at start: ``python -m services.alerter`` prints the message and exits with 2.
"""

from __future__ import annotations

from services.common.errors import ConfigError


class RuleLoadError(ConfigError):
    """A rule named by dotted path in ``UQ_BUILTIN_RULES`` / ``UQ_PYTHON_RULES`` cannot be used."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"rule {path!r}: {problem} — name a Rule subclass as 'package.module:ClassName' "
            "importable from the alerter's PYTHONPATH"
        )


class RulesFileError(ConfigError):
    """A declarative rules file (``UQ_RULES_FILE``) cannot be read or has a wrong rule."""

    def __init__(self, file: str, problem: str, *, rule: str | None = None) -> None:
        self.file = file
        self.rule = rule
        self.problem = problem
        where = f"rule {rule}: " if rule else ""
        super().__init__(f"{where}{problem}", source=f"rules file {file}")


class ProfileError(ConfigError):
    """A calibration profile (``services/alerter/profiles/``, ``UQ_PROFILES_DIR``) cannot be used."""

    def __init__(self, file: str, problem: str) -> None:
        self.file = file
        self.problem = problem
        super().__init__(f"calibration profile {file}: {problem} — refit it with `uq calibrate` or remove it")
