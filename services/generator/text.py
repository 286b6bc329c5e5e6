"""Token ids to text, one token at a time, so that a session's token texts concatenate exactly to
its decoded output. Pure Python: works with any ``decode(ids) -> str``.

Two things hold text back from the token that produced it and hand it to a later token:

- :class:`IncrementalDecoder`: a character split over several byte tokens decodes to "\\ufffd" until its
  last byte arrives; nothing is released while the text ends in "\\ufffd". Tokens are decoded in a
  small window that starts a few tokens back (in the prompt, for the first one), so a token's leading
  space comes out as it does in context, also with SentencePiece tokenizers that drop the space of a
  text's first token.
- :class:`StopMatcher`: text that might be the start of a stop sequence is held until it is known
  not to be one; when a stop sequence appears, the text before it is released and the rest dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"
PROMPT_CONTEXT = 6  # prompt tokens decoded before the first generated token


class IncrementalDecoder:
    """Feeds token ids in, gets text deltas out (the windowed scheme of vLLM's detokenizer)."""

    def __init__(self, decode: Callable[[list[int]], str], prompt_ids: Sequence[int] = ()) -> None:
        self._decode = decode
        self._ids: list[int] = list(prompt_ids[-PROMPT_CONTEXT:]) if prompt_ids else []
        self._prefix = 0  # start of the window
        self._read = len(self._ids)  # end of the text already released

    def add(self, token_id: int) -> str:
        """Append one token; return the text it completes (may be "", held until complete)."""
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """Text still held (an incomplete character decodes to "\\ufffd", as the full decode shows it)."""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return after[len(before) :]


class StopMatcher:
    """Finds stop sequences in streamed text; holds back what could be the start of one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._held = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        """Text safe to release now, and whether a stop sequence was reached (text after it is dropped)."""
        if not self.stops:
            return delta, False
        text = self._held + delta
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self._held = ""
            return text[: min(hits)], True
        keep = self._partial(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        """Release what was held (generation ended without completing a stop sequence)."""
        held, self._held = self._held, ""
        return held

    def _partial(self, text: str) -> int:
        """Length of the longest end of ``text`` that is a proper beginning of a stop sequence."""
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best
