"""The answer span of a text and when two answers say the same thing (services/common/answer.py)."""

from __future__ import annotations

import pytest

from services.common.answer import answer_text, content_words, normalise, token_f1


def test_the_answer_is_the_first_line_or_sentence() -> None:
    assert answer_text([" Paris", ".", " It is", " big."]) == "Paris."
    assert answer_text(["\n", " 42", "\n", "Q:"]) == "42"
    assert answer_text([" no end", " at all"]) == "no end at all"


def test_content_words_leave_out_what_the_prompt_said() -> None:
    prompt = frozenset(normalise("What is the capital of Armenia? Answer in one sentence.").split())
    assert content_words("The capital of Armenia is Yerevan.", prompt) == ["yerevan"]
    assert content_words("Armenia", prompt) == ["armenia"]  # nothing new: then all its words count


@pytest.mark.parametrize(
    ("a", "b", "f1"),
    [
        ("Paris", "paris.", 1.0),
        ("New Delhi", "Delhi", 2 / 3),
        ("Paris", "Lyon", 0.0),
        ("", "", 1.0),
        ("", "Paris", 0.0),
    ],
)
def test_token_f1_is_squads(a: str, b: str, f1: float) -> None:
    assert token_f1(a, b) == pytest.approx(f1)


def test_token_f1_compares_what_the_answers_add_to_the_prompt() -> None:
    prompt = frozenset(normalise("What is the capital of Armenia?").split())
    same_frame = ("The capital of Armenia is Yerevan.", "The capital of Armenia is Baku.")
    assert token_f1(*same_frame) > 0.5  # the repeated question dominates plain F1
    assert token_f1(*same_frame, prompt) == 0.0
