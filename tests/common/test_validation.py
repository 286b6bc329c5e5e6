"""One summary of validation errors in the sender's terms, and the JSON depth guard (services/common/validation.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from services.common.validation import MAX_JSON_DEPTH, JsonTooDeepError, check_depth, nesting_depth, summarise


class Alternative(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False)
    token: str
    logprob: float


class Token(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    text: str
    logprob: float | None = None
    top_logprobs: list[Alternative] | dict[str, float] | None = None
    logits: list[float] | str | None = None


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    tokens: list[Token]
    n: int = 0


def problem(body: Any, **kw: Any) -> tuple[str | None, str]:
    with pytest.raises(ValidationError) as err:
        Batch.model_validate(body)
    got = summarise(err.value.errors(), **kw)
    return got.param, got.message


@pytest.mark.parametrize("with_root", [True, False])
@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        (
            {"tokens": [{"text": "a", "top_logprobs": [{"token": "b", "logprob": "x"}]}]},
            "tokens.0.top_logprobs.0.logprob",
            "got a string ('x')",
        ),
        ({"tokens": [{"text": "a", "top_logprobs": {"b": True}}]}, "tokens.0.top_logprobs.b", "got a boolean (true)"),
        (
            {"tokens": [{"text": "a", "top_logprobs": [{"logprob": -1.0}]}]},
            "tokens.0.top_logprobs.0.token",
            "Field required",
        ),
        ({"tokens": [{"text": "a", "logits": [1.0, "2"]}]}, "tokens.0.logits.1", "valid number"),
        ({"tokens": [{"text": "a", "logprob": float("nan")}]}, "tokens.0.logprob", "NaN, Infinity"),
        ({"tokens": [{"text": "a", "logprob": float("inf")}]}, "tokens.0.logprob", "1e999"),
        ({"tokens": [{"text": "a"}], "n": "1"}, "n", "valid integer, got a string ('1')"),
        ({"tokens": [{"text": "a"}], "n": True}, "n", "got a boolean (true)"),
        ({"tokens": [{"text": "a", "colour": "red"}]}, "tokens.0.colour", "unknown field"),
    ],
)
def test_param_is_the_senders_path_never_a_union_tag(body: Any, param: str, says: str, with_root: bool) -> None:
    got_param, message = problem(body, **({"root": body} if with_root else {}))
    assert (got_param, message.startswith(f"{param}: "), says in message) == (param, True, True), message
    assert "[" not in (got_param or "") and "function-" not in message


def test_a_dict_key_that_looks_like_a_tag_is_kept_when_the_root_is_known() -> None:
    body = {"tokens": [{"text": "a", "top_logprobs": {"float": "x"}}]}
    assert problem(body, root=body)[0] == "tokens.0.top_logprobs.float"


def test_union_alternatives_count_as_one_problem_and_others_are_counted() -> None:
    body = {"tokens": [{"text": 5, "top_logprobs": {"b": "x"}}], "n": "2"}
    param, message = problem(body, root=body)
    assert param == "tokens.0.text"
    assert message.endswith("(and 2 more problems)"), message
    assert problem(body, root=body, limit=5)[1].count(";") == 2


def test_a_body_that_is_not_an_object_is_named_by_root_param() -> None:
    for body in ([], "x", 3, None):
        assert problem(body, root=body, root_param="body")[0] == "body"


def test_fastapi_locations_are_dropped_and_under_prefixes() -> None:
    errors = [
        {"type": "int_parsing", "loc": ("query", "limit"), "msg": "Input should be a valid integer", "input": "a"}
    ]
    assert summarise(errors, root=None, request=True).param == "limit"
    errors = [{"type": "missing", "loc": ("body", "prompt"), "msg": "Field required", "input": {}}]
    assert summarise(errors, root={}, request=True).param == "prompt"
    inner = [{"type": "string_type", "loc": ("text",), "msg": "Input should be a valid string", "input": 5}]
    got = summarise(inner, under="tokens.3")
    assert (got.param, got.message) == (
        "tokens.3.text",
        "tokens.3.text: Input should be a valid string, got a number (5)",
    )


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("3", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('{"a": "[[[[[[", "b": "\\"[[{"}', 1),  # brackets in strings, escaped quotes
        ('{"a": "x\\n]]}", "b": [[1]]}', 3),  # an escape, no escaped quote: the quick way round strings
        ('["\\\\", ["]"]]', 2),  # an escaped backslash before the closing quote
        ("[" * 5000 + "]" * 5000, 5000),
        ("[[]]" * 1000, 2),
    ],
)
def test_nesting_depth(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth == nesting_depth(text.encode())


def test_check_depth_refuses_beyond_the_limit_and_accepts_at_it() -> None:
    at = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    check_depth(at)
    assert json.loads(at) is not None
    with pytest.raises(JsonTooDeepError) as err:
        check_depth("[" + at + "]")
    assert (err.value.depth, err.value.limit) == (MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH)
    assert f"at most {MAX_JSON_DEPTH} levels" in str(err.value)
    check_depth(json.dumps({"tokens": [{"top_logprobs": [{"bytes": [1]}]}] * 10_000}))  # wide, not deep
    with pytest.raises(JsonTooDeepError):
        check_depth(b'{"a": ' + b"[" * 100_000)  # unterminated: refused before any parser sees it
