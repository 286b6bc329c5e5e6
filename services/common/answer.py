"""What "the answer" of a generation is, and when two answers say the same thing.

Shared by the alerter (which scores the answer span live), the generator (which compares the
answer with its verification samples) and ``uq eval`` (which judges answers against aliases):

- :class:`AnswerSpan`: the tokens up to the end of the first line or sentence;
- :func:`normalise`: SQuAD normalisation (lower case, no punctuation, no articles, single spaces),
  the rule published NQ-open results use;
- :func:`token_f1`: SQuAD's token-overlap F1 of two answers, counting only the words they add to
  the prompt (:func:`content_words`).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

_SENTENCE_END = (".", "!", "?", "。", "！", "？")
_PUNCT = frozenset(string.punctuation) | {"‘", "’", "“", "”", "–", "—", "…"}


@dataclass(slots=True)
class AnswerSpan:
    """Which tokens belong to the answer: from the first token with visible text up to the token that
    ends the first line (a newline after visible text) or the first sentence (``.``, ``!`` or ``?``
    at the end of a token, after visible text). That token still belongs to the answer."""

    seen_text: bool = False
    closed: bool = False

    def take(self, text: str) -> bool:
        """Whether the token with ``text`` is part of the answer (call once per token, in order)."""
        if self.closed:
            return False
        if not self.seen_text:
            if not text.strip():
                return True  # leading whitespace belongs to the answer, so it is never empty when tokens exist
            self.seen_text = True
            text = text.lstrip()  # a newline before the first visible text ends nothing
        if "\n" in text or text.rstrip().endswith(_SENTENCE_END):
            self.closed = True
        return True


def answer_text(texts: Iterable[str]) -> str:
    """The answer span of a generation given as its tokens' texts, stripped."""
    span = AnswerSpan()
    return "".join(t for t in texts if span.take(t)).strip()


def normalise(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def content_words(text: str, known: frozenset[str] = frozenset()) -> list[str]:
    """The normalised words of ``text`` that are not in ``known`` (e.g. the prompt's words), so that
    "The capital of Armenia is Yerevan" and "… is Baku" differ in all they add; all its normalised
    words when every one is known."""
    words = normalise(text).split()
    return [w for w in words if w not in known] or words


def token_f1(a: str, b: str, known: frozenset[str] = frozenset()) -> float:
    """SQuAD's F1 of the :func:`content_words` of ``a`` and ``b``: 1 for the same words, 0 for none
    shared (two empty answers agree)."""
    wa, wb = content_words(a, known), content_words(b, known)
    if not wa or not wb:
        return float(wa == wb)
    common = sum((Counter(wa) & Counter(wb)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(wb), common / len(wa)
    return 2 * precision * recall / (precision + recall)
