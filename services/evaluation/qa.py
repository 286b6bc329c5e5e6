"""Labelled QA files, the prompts they become, and the correctness rule.

A file is JSON Lines, one item a line, in either format:
- NQ-open: ``{"question": "...", "answer": ["alias", ...]}`` (``answer`` may also be one string);
- prompt + reference: ``{"prompt": "...", "reference": "..." | ["...", ...]}``, the prompt sent as it is.
An optional ``"id"`` names the item (default: its line number).

Correctness is the rule published NQ-open results use (SQuAD normalisation: lower case, no
punctuation, no articles a/an/the, single spaces): an answer is correct when a normalised alias
occurs in the normalised output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from services.common.answer import normalise
from services.common.contracts import ChatMessage

PromptStyle = Literal["fewshot", "chat", "plain"]
#: fewshot: worked examples, stop at the newline; chat: the chat template; plain: the prompt (or the
#: question) as it is, no stop sequence: ordinary open-ended generation, as the dashboard sends it.
PROMPT_STYLES: tuple[PromptStyle, ...] = ("fewshot", "chat", "plain")

#: Completion-mode prompt: four worked examples, then the question; generation stops at the newline.
FEWSHOT = (
    "Answer each question with a short phrase.\n\n"
    "Q: what is the capital of france\nA: Paris\n\n"
    "Q: who wrote romeo and juliet\nA: William Shakespeare\n\n"
    "Q: when did world war ii end\nA: 1945\n\n"
    "Q: how many legs does a spider have\nA: eight\n\n"
)
CHAT_INSTRUCTION = "Answer the question in a few words.\nQuestion: {question}?"


class QAFileError(ValueError):
    """A QA file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class QAItem:
    id: str
    question: str | None  # NQ-open items
    prompt: str | None  # prompt + reference items
    answers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Request:
    """What one item asks of the generator: a plain prompt or chat messages, and stop strings."""

    prompt: str | None
    messages: list[ChatMessage] | None
    stop: list[str]


def load(path: str | Path, limit: int | None = None, *, labelled: bool = True) -> list[QAItem]:
    """The items of a QA file (the first ``limit`` of them); ``labelled=False``: answers are optional
    (a corpus of ordinary prompts)."""
    items: list[QAItem] = []
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise QAFileError(f"cannot read {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if limit is not None and len(items) >= limit:
            break
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QAFileError(f"{path}:{n}: not JSON ({exc.msg})") from None
        items.append(_item(raw, f"{path}:{n}", str(raw.get("id", n)) if isinstance(raw, dict) else str(n), labelled))
    if not items:
        raise QAFileError(f"{path}: no items")
    return items


def load_items(raws: list[object], *, labelled: bool = True) -> list[QAItem]:
    """Items from already-parsed JSON objects (ids: their 1-based positions)."""
    return [_item(raw, f"item {n}", str(n), labelled) for n, raw in enumerate(raws, 1)]


def _item(raw: object, where: str, item_id: str, labelled: bool = True) -> QAItem:
    if not isinstance(raw, dict):
        raise QAFileError(f"{where}: expected a JSON object")
    answers = raw.get("answer", raw.get("reference"))
    if isinstance(answers, str):
        answers = [answers]
    if answers is None and not labelled:
        answers = []
    elif not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        raise QAFileError(f"{where}: 'answer' (or 'reference') must be a string or a non-empty list of strings")
    question, prompt = raw.get("question"), raw.get("prompt")
    if (question is None) == (prompt is None) or not isinstance(question or prompt, str):
        raise QAFileError(f"{where}: give exactly one of 'question' or 'prompt', as a string")
    return QAItem(item_id, question, prompt, tuple(answers))


def request(item: QAItem, style: PromptStyle) -> Request:
    """The generation request for ``item``: prompt items are sent as they are, questions in ``style``."""
    if style == "plain":
        return Request(item.prompt if item.prompt is not None else item.question or "", None, [])
    if item.prompt is not None:
        if style == "chat":
            return Request(None, [ChatMessage(role="user", content=item.prompt)], [])
        return Request(item.prompt, None, ["\n"])
    question = (item.question or "").strip().rstrip("?")
    if style == "chat":
        return Request(None, [ChatMessage(role="user", content=CHAT_INSTRUCTION.format(question=question))], [])
    return Request(f"{FEWSHOT}Q: {question}\nA:", None, ["\n"])


def is_correct(output: str, answers: Iterable[str]) -> bool:
    """Whether a normalised alias occurs in the normalised output, as whole words (so "leo" is not
    found in "leonardo"; the token match of DPR's ``has_answer``)."""
    out = f" {normalise(output)} "
    return any((alias := normalise(a)) and f" {alias} " in out for a in answers)
