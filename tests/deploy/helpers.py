"""What the deployment tests share: Compose-style interpolation, the settings each service reads."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from services.common.docgen import settings_classes
from services.common.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

_VAR = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\})")


def referenced_variables(text: str) -> set[str]:
    """Every ``${NAME...}`` in a Compose file."""
    return {m["name"] for m in _VAR.finditer(text) if m["name"]}


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}`` and ``$$`` in every string of a
    parsed Compose file (as Compose does, after parsing; the values stay strings)."""

    def sub(m: re.Match[str]) -> str:
        if m["name"] is None:
            return "$"
        found = env.get(m["name"])
        if m["op"] == ":-" and not found:
            return str(m["default"])
        if m["op"] == "-" and found is None:
            return str(m["default"])
        return found or ""

    if isinstance(value, str):
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def all_setting_names() -> set[str]:
    return {f"UQ_{name.upper()}" for cls in settings_classes() for name in cls.model_fields}


def settings_class(service: str) -> type[CommonSettings]:
    """The settings class ``python -m services.<service>`` reads."""
    module = importlib.import_module(f"services.{service}.settings")
    (cls,) = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, CommonSettings) and obj.__module__ == module.__name__
    ]
    return cls


def settings_of(service: str) -> set[str]:
    """``UQ_*`` names the service reads (its own settings and the common ones)."""
    return {f"UQ_{name.upper()}" for name in settings_class(service).model_fields}


def settings_from_env(service: str, env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> CommonSettings:
    """The service's settings as it would read them from exactly ``env`` (its ``UQ_*`` part)."""
    with monkeypatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("UQ_")]:
            patch.delenv(key)
        for key, value in env.items():
            if key.startswith("UQ_"):
                patch.setenv(key, str(value))
        return settings_class(service)()


def service_module(command: list[str]) -> str:
    """``["python", "-m", "services.auditor"]`` → ``"auditor"``, checking the module exists."""
    assert command[:2] == ["python", "-m"], command
    assert command[2].startswith("services."), command
    name = command[2].removeprefix("services.")
    assert (ROOT / "services" / name / "__main__.py").is_file(), f"no services/{name}/__main__.py"
    return name
