"""The engine registry and options: built-in and user engines are found the same way."""

from __future__ import annotations

import pytest

from services.generator.engine import EngineOptions, engine_class, known_engines
from services.generator.errors import EngineNotFoundError, GeneratorError
from services.generator.settings import GeneratorSettings
from tests.generator.engines import ScriptedEngine, ScriptedOptions


def test_builtin_engine_is_found_by_name() -> None:
    cls = engine_class("transformers")
    assert (cls.name, cls.provider, cls.full_logits, cls.seeded) == ("transformers", "transformers", True, True)
    assert engine_class("services.generator.hf.engine:TransformersEngine") is cls
    assert "transformers" in known_engines()


def test_user_engine_is_found_by_path_then_by_name() -> None:
    assert engine_class("tests.generator.engines:ScriptedEngine") is ScriptedEngine
    assert engine_class("scripted") is ScriptedEngine


@pytest.mark.parametrize("name", ["nope", "tests.generator.engines:Missing", "no.such.module:Engine", "json:dumps"])
def test_unknown_engine_names_the_known_ones(name: str) -> None:
    with pytest.raises(EngineNotFoundError, match=r"known: .*transformers") as info:
        engine_class(name)
    assert info.value.name == name


def test_options_come_from_same_named_settings_and_overrides() -> None:
    from services.generator.hf.engine import TransformersOptions

    settings = GeneratorSettings(dtype="bfloat16", torch_threads=3)
    options = engine_class("transformers").build_options(settings, {"device": "cpu"})
    assert options == TransformersOptions(device="cpu", dtype="bfloat16", torch_threads=3)
    assert ScriptedEngine.build_options(settings, {"step_s": 0.5}) == ScriptedOptions(step_s=0.5)


def test_options_are_strict() -> None:
    with pytest.raises(GeneratorError, match="step_seconds"):
        ScriptedEngine.build_options(GeneratorSettings(), {"step_seconds": 1})
    with pytest.raises(GeneratorError, match="dtype"):
        engine_class("transformers").build_options(GeneratorSettings(), {"dtype": "int3"})
    assert EngineOptions.model_config["extra"] == "forbid"


def test_engine_options_setting_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UQ_ENGINE_OPTIONS", '{"step_s": 0.25}')
    assert GeneratorSettings().engine_options == {"step_s": 0.25}
