"""Which models a worker keeps loaded."""

from __future__ import annotations

import pytest

from services.common.model_policy import ModelPolicy
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


def test_the_policy_names_the_default_its_alias_and_what_is_loaded() -> None:
    pool = EnginePool(GeneratorSettings(engine=ENGINE, model="count", job_models=False))
    pool.get()
    policy = pool.policy()
    assert (policy.default, policy.aliases, policy.loaded, policy.job_models, policy.hub) == (
        "count",
        frozenset({"scripted-count"}),
        frozenset({"count"}),
        False,
        "none",  # the scripted engine does not load from the hub
    )
    assert pool.model_key("scripted-count") == "count"  # the name events carry is the default too
    assert ModelPolicy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize("online", [True, False])
def test_a_hub_id_is_refused_only_while_offline(monkeypatch: pytest.MonkeyPatch, online: bool) -> None:
    monkeypatch.setattr("services.generator.pool.hub_online", lambda: online)
    monkeypatch.setattr("services.generator.pool.cached_hub_models", lambda: frozenset({"org/cached"}))
    pool = EnginePool(GeneratorSettings(engine="transformers", model="embedded"))
    assert pool.policy().hub == ("online" if online else "offline")
    assert pool.model_key("org/cached") == "org/cached"
    assert pool.model_key("/models/local") == "/models/local"
    if online:
        assert pool.model_key("org/name") == "org/name"
    else:
        with pytest.raises(InvalidJobError, match="hub is unreachable") as info:
            pool.model_key("org/name")
        assert info.value.param == "model"


def test_auto_runs_the_embedded_model_and_gguf_files_on_llama_cpp_and_the_rest_on_transformers() -> None:
    from services.generator.engine import resolve_engine

    assert GeneratorSettings.model_fields["engine"].default == "auto"
    assert resolve_engine("auto", "embedded") == "llama.cpp"
    assert resolve_engine("auto", "SmolLM2-135M-Instruct") == "llama.cpp"
    assert resolve_engine("auto", "/models/mistral-7b.Q4_K_M.gguf") == "llama.cpp"
    assert resolve_engine("auto", "HuggingFaceTB/SmolLM2-135M-Instruct") == "transformers"
    assert resolve_engine("transformers", "embedded") == "transformers"  # a named engine is kept
    assert EnginePool(GeneratorSettings(engine="auto")).engine_cls.name == "llama.cpp"


def test_auto_falls_back_to_transformers_where_llama_cpp_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from services.generator.engine import resolve_engine

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` raises ImportError
    assert resolve_engine("auto", "embedded") == "transformers"


def test_auto_runs_gpus_and_broken_llama_cpp_builds_on_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import sys

    from services.generator.engine import resolve_engine

    assert resolve_engine("auto", "embedded", "cuda") == "transformers"  # the llama.cpp build is CPU-only
    assert resolve_engine("auto", "embedded", "cpu") == "llama.cpp"
    real_import = builtins.__import__

    def broken(name: str, *args: object, **kwargs: object) -> object:
        if name == "llama_cpp":
            raise RuntimeError("Failed to load shared library 'libllama.so'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    assert resolve_engine("auto", "embedded", "cpu") == "transformers"
