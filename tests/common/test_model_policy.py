"""The one rule for which models a generator serves (services/common/model_policy.py)."""

from __future__ import annotations

import pytest

from services.common.model_policy import ModelPolicy, ModelRefusedError, hub_online, refusals, resolve_model

POLICY = ModelPolicy(
    default="embedded",
    aliases=frozenset({"SmolLM2-135M-Instruct"}),
    loaded=frozenset({"embedded", "org/loaded"}),
    hub="offline",
    cached=frozenset({"org/cached"}),
)


@pytest.mark.parametrize(
    ("model", "key"),
    [
        (None, "embedded"),
        ("embedded", "embedded"),
        ("SmolLM2-135M-Instruct", "embedded"),
        ("org/loaded", "org/loaded"),
        ("org/cached", "org/cached"),
        ("/models/mistral", "/models/mistral"),
        ("./m", "./m"),
        ("../m", "../m"),
        ("~/m", "~/m"),
    ],
)
def test_served(model: str | None, key: str) -> None:
    assert resolve_model(POLICY, model) == key


@pytest.mark.parametrize(
    ("policy", "model", "says"),
    [
        (POLICY, "mistralai/Mistral-7B-Instruct-v0.3", "hub is unreachable"),
        (POLICY, "gpt2", "hub is unreachable"),
        (POLICY, "a b", "neither a local folder"),
        (POLICY, "org/na--me", "neither a local folder"),
        (POLICY, "a/b/c", "neither a local folder"),
        (ModelPolicy(default="embedded", hub="online"), "", "neither a local folder"),
        (ModelPolicy(default="embedded", job_models=False), "/models/x", "UQ_JOB_MODELS=false"),
    ],
)
def test_refused(policy: ModelPolicy, model: str, says: str) -> None:
    with pytest.raises(ModelRefusedError) as err:
        resolve_model(policy, model)
    assert says in err.value.reason
    assert err.value.model == model


def test_job_models_off_still_serves_the_default_and_what_is_loaded() -> None:
    policy = ModelPolicy(default="m", aliases=frozenset({"M"}), loaded=frozenset({"m"}), job_models=False)
    assert [resolve_model(policy, m) for m in (None, "m", "M")] == ["m", "m", "m"]


def test_online_hub_ids_and_engines_without_a_hub() -> None:
    assert resolve_model(ModelPolicy(default="e", hub="online"), "org/name") == "org/name"
    assert resolve_model(ModelPolicy(default="e", hub="none"), "any name at all") == "any name at all"


def test_refusals_name_each_generator_that_refuses() -> None:
    online = ModelPolicy(default="embedded", hub="online")
    got = refusals([("a", online), ("b", POLICY)], "org/name")
    assert [instance for instance, _ in got] == ["b"]
    assert refusals([("a", online), ("b", POLICY)], None) == []


def test_the_policy_survives_json_and_a_broken_one_is_refused() -> None:
    assert ModelPolicy.from_json(POLICY.to_json()) == POLICY
    for broken in ({}, {"default": "m", "hub": "sometimes"}, {"default": "m", "aliases": 5}):
        with pytest.raises(ValueError, match=r"hub|not a model policy"):
            ModelPolicy.from_json(broken)


@pytest.mark.parametrize("name", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_by_environment(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "1")
    assert hub_online.__wrapped__() is False


def test_offline_when_the_hub_host_does_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")  # .invalid never resolves (RFC 6761)
    assert hub_online.__wrapped__() is False
