"""Which models a generator serves: one rule, applied by the gateway at submit and by the generator.

Each generator publishes its :class:`ModelPolicy` in its heartbeat (``details["model_policy"]``).
The gateway refuses (400, ``param: "model"``) a job naming a model that a live generator would not
run, so the client hears it at once instead of from a failed session; the generator applies the same
:func:`resolve_model` when it runs the job, since the gateway may have seen no heartbeat at all.

The rule, for the ``model`` a job names:

1. none, the default (``UQ_MODEL``) or one of its aliases (the name the loaded default goes by, e.g.
   ``SmolLM2-135M-Instruct`` for ``embedded``) → the default;
2. a model the generator has loaded → that model;
3. jobs may not name other models (``UQ_JOB_MODELS=false``) → refused;
4. a local path (starts with ``/``, ``./``, ``../`` or ``~``) → accepted: it names the generator's own
   filesystem, which only the generator can check (it does, when it loads the model);
5. an engine that does not load from the Hugging Face hub (``hub == "none"``) → accepted: the engine
   alone knows its names, and says so when it loads one;
6. a hub id (``org/name`` or ``name``) → accepted while the hub is reachable, or when the id is in the
   generator's local Hugging Face cache; refused while offline. Nothing contacts the hub to decide;
7. anything else → refused: no model can have that name.

Whether the hub is reachable is decided once per process, without contacting it (:func:`hub_online`):
offline when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set, or when the hub's host name does
not resolve.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from services.common.errors import UQError

HubState = Literal["online", "offline", "none"]
HUB_ENDPOINT = "https://huggingface.co"
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9_.-]{1,96}/)?[A-Za-z0-9_.-]{1,96}$")
_PATH_PREFIXES = ("/", "./", "../", "~")
_RESOLVE_TIMEOUT_S = 2.0


class ModelRefusedError(UQError):
    """A job names a model this generator does not serve (``model``; the message says why and what to do)."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class ModelPolicy:
    """What one generator serves; its heartbeat carries :meth:`to_json`."""

    default: str
    aliases: frozenset[str] = frozenset()
    loaded: frozenset[str] = frozenset()
    job_models: bool = True
    hub: HubState = "none"
    cached: frozenset[str] = field(default_factory=frozenset)  # hub ids in the local cache

    def to_json(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "aliases": sorted(self.aliases),
            "loaded": sorted(self.loaded),
            "job_models": self.job_models,
            "hub": self.hub,
            "cached": sorted(self.cached),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelPolicy:
        """The policy a heartbeat carries; ValueError when it is not one."""
        try:
            hub = data.get("hub", "none")
            if hub not in ("online", "offline", "none"):
                raise ValueError(f"hub is {hub!r}")
            return cls(
                default=str(data["default"]),
                aliases=frozenset(map(str, data.get("aliases", ()))),
                loaded=frozenset(map(str, data.get("loaded", ()))),
                job_models=bool(data.get("job_models", True)),
                hub=hub,
                cached=frozenset(map(str, data.get("cached", ()))),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a model policy: {exc!r}") from None


def is_local_path(model: str) -> bool:
    return model.startswith(_PATH_PREFIXES)


def resolve_model(policy: ModelPolicy, model: str | None) -> str:
    """The name the generator loads for a job naming ``model``; ModelRefusedError saying why otherwise."""
    if model is None or model == policy.default or model in policy.aliases:
        return policy.default
    if model in policy.loaded:
        return model
    if not policy.job_models:
        raise ModelRefusedError(
            model,
            f"this deployment serves only {policy.default!r}; jobs may not name another model (UQ_JOB_MODELS=false): "
            "leave 'model' out",
        )
    if is_local_path(model) or policy.hub == "none":
        return model
    if not _HUB_ID.match(model) or "--" in model or ".." in model:
        raise ModelRefusedError(
            model,
            f"{model[:80]!r} is neither a local folder (starting with / ./ ../ or ~) nor a Hugging Face hub id "
            "(org/name: letters, digits, '-', '_', '.')",
        )
    if policy.hub == "offline" and model not in policy.cached:
        raise ModelRefusedError(
            model,
            f"{model!r} is not in the generator's local Hugging Face cache and the hub is unreachable from it "
            "(offline: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set, or the hub's host does not resolve); "
            f"name a local folder, a cached model, or the default {policy.default!r}",
        )
    return model


def refusals(policies: Iterable[tuple[str, ModelPolicy]], model: str | None) -> list[tuple[str, str]]:
    """(instance, reason) for each generator that would not run a job naming ``model``."""
    refused = []
    for instance, policy in policies:
        try:
            resolve_model(policy, model)
        except ModelRefusedError as exc:
            refused.append((instance, exc.reason))
    return refused


@functools.cache
def hub_online() -> bool:
    """Whether this process may fetch models from the hub, decided once without contacting it."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    host = urlsplit(os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT).hostname
    return bool(host) and _resolves(str(host))


def _resolves(host: str) -> bool:
    """Whether ``host`` resolves within a short time (a resolver that hangs counts as offline)."""
    answer: list[bool] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443)
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=lookup, name="hub-dns", daemon=True)
    thread.start()
    thread.join(_RESOLVE_TIMEOUT_S)
    return bool(answer and answer[0])


def cached_hub_models() -> frozenset[str]:
    """Hub ids with a snapshot in the local Hugging Face cache (read from the folder, nothing contacted)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return frozenset()
    root = Path(constants.HF_HUB_CACHE)
    if not root.is_dir():
        return frozenset()
    return frozenset(
        d.name.removeprefix("models--").replace("--", "/") for d in root.glob("models--*") if (d / "snapshots").is_dir()
    )
