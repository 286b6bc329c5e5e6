"""Which models a worker keeps loaded."""

from __future__ import annotations

import pytest

from services.generator.errors import InvalidJobError, ModelLoadError
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings

ENGINE = "tests.generator.engines:ScriptedEngine"


def test_least_recently_used_job_model_is_unloaded_but_never_the_default() -> None:
    pool = EnginePool(GeneratorSettings(engine=ENGINE, model="count", max_loaded_models=2))
    default = pool.get()
    assert pool.get(None) is default
    pool.get("a")
    pool.get("b")  # over the limit: "a" goes, the default stays
    assert pool.loaded() == ["count", "b"]
    assert pool.display_name("b") == "scripted-b"
    assert pool.display_name("a") == "a"  # not loaded: named as given


async def test_a_model_in_use_is_not_unloaded() -> None:
    pool = EnginePool(GeneratorSettings(engine=ENGINE, model="count", max_loaded_models=1))
    async with pool.use("a") as engine:
        assert engine.display_name == "scripted-a"
        pool.get("b")
        assert pool.loaded() == ["a", "b"]  # over the limit while "a" is in use
    pool.get("c")
    assert pool.loaded() == ["c"]


def test_a_failed_load_is_retried_next_time_and_not_kept() -> None:
    pool = EnginePool(GeneratorSettings(engine=ENGINE, model="count"))
    for _ in range(2):
        with pytest.raises(ModelLoadError, match="no such folder"):
            pool.get("broken")
    assert pool.loaded() == []


def test_job_models_off_refuses_other_models_but_serves_the_default() -> None:
    pool = EnginePool(GeneratorSettings(engine=ENGINE, model="count", job_models=False))
    assert pool.model_key(None) == pool.model_key("count") == "count"
    with pytest.raises(InvalidJobError, match="UQ_JOB_MODELS=false") as info:
        pool.model_key("other")
    assert info.value.param == "model"
