"""Text as the database holds it: every valid Unicode string, U+0000 included, round-trips exactly.

PostgreSQL's ``text`` and ``jsonb`` cannot hold U+0000 (NUL). Rather than lose it, the store escapes
it, on both databases alike, with U+0010 (DLE, "data link escape", the control character made for
this):

- U+0000 is stored as DLE followed by ``0``;
- U+0010 itself is stored as DLE DLE;
- every other character is stored as it is.

So text without NUL or DLE (all but a handful of entries) is stored unchanged and reads the same to
anyone querying the tables with SQL; the store undoes the escape on every read (history, export).
Lone surrogates (U+D800–U+DFFF) are not characters: they cannot be encoded in UTF-8 or in valid
JSON, so no stream entry can carry one (decoding refuses it) and none reaches the store.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel

ESCAPE = "\x10"
_STORED = re.compile("\x10([\x100])")
_TO_STORE = str.maketrans({"\x10": "\x10\x10", "\x00": "\x100"})
_JSON_MARKS = ("\\u0000", "\\u0010")  # how the two characters appear in JSON text

M = TypeVar("M", bound=BaseModel)


def needs_escape(json_text: str) -> bool:
    """Whether this JSON (of an entry or a batch) may hold a character the store escapes (cheap)."""
    return any(mark in json_text for mark in _JSON_MARKS)


def store_text(text: str) -> str:
    return text.translate(_TO_STORE) if "\x00" in text or ESCAPE in text else text


def load_text(text: str) -> str:
    return _STORED.sub(lambda m: "\x00" if m.group(1) == "0" else ESCAPE, text) if ESCAPE in text else text


def load_optional(text: str | None) -> str | None:
    return None if text is None else load_text(text)


def escaped(model: M) -> M:
    """A copy of ``model`` with every string in it (nested models, lists, dict keys) as stored.

    ``model_copy`` does not validate, so an escaped text may exceed its field's ``max_length``; it
    is only ever written, never published.
    """
    update = {name: _escape_value(getattr(model, name)) for name in type(model).model_fields}
    return model.model_copy(update=update)


def _escape_value(value: Any) -> Any:
    if isinstance(value, str):
        return store_text(value)
    if isinstance(value, BaseModel):
        return escaped(value)
    if isinstance(value, list):
        return [_escape_value(v) for v in value]
    if isinstance(value, dict):
        return {_escape_value(k): _escape_value(v) for k, v in value.items()}
    return value


def loaded(value: Any) -> Any:
    """A value read from the database (a string, or JSON: lists and dicts) with the escape undone."""
    if isinstance(value, str):
        return load_text(value)
    if isinstance(value, list):
        return [loaded(v) for v in value]
    if isinstance(value, dict):
        return {loaded(k): loaded(v) for k, v in value.items()}
    return value
