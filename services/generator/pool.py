"""The models a worker holds: the default one, loaded at start, and those jobs name, loaded on first use.

Loading is blocking and runs in a thread; a model is loaded once even when several jobs ask for it
at the same moment. Beyond ``max_loaded_models`` the least recently used model that no job is using
is closed. A model that failed to load is not remembered: the next job that names it tries again.

Which names a job may give is :func:`services.common.model_policy.resolve_model` applied to
:meth:`EnginePool.policy`, the same rule the gateway applies at submit to the policy this worker
publishes in its heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.common.model_policy import (
    HubState,
    ModelPolicy,
    ModelRefusedError,
    cached_hub_models,
    hub_online,
    resolve_model,
)
from services.generator.engine import Engine, engine_class, resolve_engine
from services.generator.errors import InvalidJobError
from services.generator.settings import GeneratorSettings

log = logging.getLogger(__name__)


class EnginePool:
    """Loaded engines by model name."""

    def __init__(self, settings: GeneratorSettings) -> None:
        self.settings = settings
        self.engine_cls = engine_class(resolve_engine(settings.engine, settings.model, settings.device))
        self.options = self.engine_cls.build_options(settings, settings.engine_options)
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._users: dict[str, int] = {}
        self._lock = threading.Lock()  # loop-agnostic: loads happen in threads
        self._serving: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())  # loaded, aliases
        self.load_times: dict[str, float] = {}
        self.hub: HubState = "none"
        self.cached: frozenset[str] = frozenset()
        if self.engine_cls.hub_models:
            self.hub = "online" if hub_online() else "offline"
            self.cached = cached_hub_models() if self.hub == "offline" else frozenset()

    def policy(self) -> ModelPolicy:
        """What this worker serves now (read without the load lock: a heartbeat never waits for a load)."""
        loaded, aliases = self._serving
        return ModelPolicy(
            default=self.settings.model,
            aliases=aliases,
            loaded=loaded,
            job_models=self.settings.job_models,
            hub=self.hub,
            cached=self.cached,
        )

    def model_key(self, model: str | None) -> str:
        """The model a job runs on: its own, or the worker's default; InvalidJobError when it is not served."""
        try:
            return resolve_model(self.policy(), model)
        except ModelRefusedError as exc:
            raise InvalidJobError(exc.reason, param="model") from None

    def get(self, model: str | None = None) -> Engine:
        """The engine for ``model``, loading it if needed (blocking)."""
        key = self.model_key(model)
        with self._lock:
            engine = self._engines.get(key)
            if engine is not None:
                self._engines.move_to_end(key)
                return engine
            engine = self.engine_cls(key, self.options)
            started = time.perf_counter()
            engine.load()
            self.load_times[key] = time.perf_counter() - started
            log.info("model loaded", extra={"model": key, "load_s": round(self.load_times[key], 3)})
            self._engines[key] = engine
            self._evict(keep=key)
            self._published()
            return engine

    def add(self, model: str, engine: Engine) -> None:
        """Hold an engine loaded elsewhere (benchmarks, embedding) under the name jobs use for it."""
        with self._lock:
            self._engines[model] = engine
            self._published()

    @asynccontextmanager
    async def use(self, model: str | None) -> AsyncIterator[Engine]:
        """The engine for ``model`` (loaded in a thread if needed), kept loaded while in use."""
        key = self.model_key(model)
        self._users[key] = self._users.get(key, 0) + 1
        try:
            engine = self._engines.get(key)
            yield engine if engine is not None else await asyncio.to_thread(self.get, key)
        finally:
            self._users[key] -= 1

    def display_name(self, model: str | None) -> str:
        """The name events carry for ``model``: the loaded engine's (e.g. SmolLM2-135M-Instruct) or as given."""
        key = model or self.settings.model
        engine = self._engines.get(key)
        return engine.display_name if engine is not None else key

    def loaded(self) -> list[str]:
        return list(self._engines)

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()
            self._published()

    def _published(self) -> None:
        """Refresh what policy() reads (called with the lock held, after the engines changed)."""
        default = self._engines.get(self.settings.model)
        aliases = frozenset({default.display_name} - {self.settings.model}) if default is not None else frozenset()
        self._serving = (frozenset(self._engines), aliases)

    def _evict(self, keep: str) -> None:
        for key in list(self._engines):
            if len(self._engines) <= self.settings.max_loaded_models:
                return
            if key not in (keep, self.settings.model) and self._users.get(key, 0) == 0:
                self._engines.pop(key).close()
                log.info("model unloaded", extra={"model": key})
