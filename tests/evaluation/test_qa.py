"""QA files, prompts and the NQ-open correctness rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.evaluation import qa


def test_normalise_is_squad_normalisation() -> None:
    assert qa.normalise("The  Eiffel-Tower, in PARIS!") == "eiffeltower in paris"
    assert qa.normalise("An apple a day") == "apple day"


@pytest.mark.parametrize(
    ("output", "answers", "correct"),
    [
        (" Paris", ["Paris"], True),
        ("It is the city of Paris, France.", ["paris"], True),
        (" Leonardo da Vinci", ["Leo"], False),  # whole words only
        (" 1945", ["1944", "1945"], True),
        (" the ears", ["the ear"], False),
        (" the ear", ["The ear"], True),
        ("", ["x"], False),
    ],
)
def test_is_correct(output: str, answers: list[str], correct: bool) -> None:
    assert qa.is_correct(output, answers) is correct


def test_load_both_formats(tmp_path: Path) -> None:
    f = tmp_path / "qa.jsonl"
    f.write_text(
        '{"question": "who wrote hamlet", "answer": ["Shakespeare"]}\n\n'
        '{"id": "x", "prompt": "2 + 2 =", "reference": "4"}\n',
        encoding="utf-8",
    )
    items = qa.load(f)
    assert [(i.id, i.question, i.prompt, i.answers) for i in items] == [
        ("1", "who wrote hamlet", None, ("Shakespeare",)),
        ("x", None, "2 + 2 =", ("4",)),
    ]
    assert len(qa.load(f, limit=1)) == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ('["a"]', "JSON object"),
        ('{"question": "q"}', "'answer'"),
        ('{"question": "q", "answer": []}', "'answer'"),
        ('{"question": "q", "prompt": "p", "answer": "a"}', "exactly one"),
    ],
)
def test_load_says_what_is_wrong_and_where(tmp_path: Path, line: str, message: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(qa.QAFileError, match=message) as info:
        qa.load(f)
    assert f"{f}:1" in str(info.value)


def test_requests_per_style() -> None:
    item = qa.QAItem("1", "who wrote hamlet?", None, ("Shakespeare",))
    few = qa.request(item, "fewshot")
    assert few.prompt is not None and few.prompt.endswith("Q: who wrote hamlet\nA:") and few.stop == ["\n"]
    chat = qa.request(item, "chat")
    assert chat.messages is not None and chat.messages[0].content.endswith("Question: who wrote hamlet?")
