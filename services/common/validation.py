"""Bad input, told in the sender's terms: one summary of a pydantic ValidationError, one JSON depth guard.

Every surface that validates what a client or a third party sent (REST bodies, WebSocket messages,
push tokens, stream entries) summarises the errors with :func:`summarise`, so ``param`` and the
message read the same everywhere:

- ``param`` is the path into what was sent, dot-separated (``tokens.0.top_logprobs.0.logprob``);
  pydantic's internal union tags (``list[OpenAITopLogprob]``, ``function-after[...]``) never appear.
  A problem with the body as a whole (``[]`` where an object belongs) has ``param`` = ``root_param``.
- Of the alternatives of a union (``top_logprobs`` may be a list or a dict), the one that got
  furthest into the input is reported, and the alternatives count as one problem.
- The message says what was wrong with the value, e.g. that a string or a boolean was sent where a
  number belongs, or that NaN and Infinity are no numbers here.

Deeply nested JSON would exhaust the parser's recursion before any model sees it, so bodies are
checked with :func:`check_depth` first: a scan of bracket depth outside strings, in C-speed passes
(``bytes.count``, one regular expression, numpy), before ``json.loads`` or ``validate_json``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Deepest nesting of arrays and objects accepted in any body or message. The deepest legitimate
#: body (a push batch: body → tokens → token → top_logprobs → entry → bytes) is 6 levels.
MAX_JSON_DEPTH = 32

#: Where FastAPI puts a request's part in front of the field path.
REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})

MISSING: Any = object()
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_CHUNK = 1 << 20
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_PRIMITIVE_TAGS = frozenset({"str", "int", "float", "bool", "none", "bytes", "list", "dict", "tuple", "set"})
_TAG_PREFIXES = ("function-", "lax-or-strict", "json-or-python", "tagged-union", "is-instance", "chain")
_TYPE_ERRORS = frozenset(
    {
        "int_type",
        "float_type",
        "string_type",
        "bool_type",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
    }
)


class JsonTooDeepError(ValueError):
    """A JSON text nested deeper than the limit (``depth``, ``limit``)."""

    def __init__(self, depth: int, limit: int) -> None:
        self.depth = depth
        self.limit = limit
        super().__init__(
            f"the JSON is nested {depth} levels deep; at most {limit} levels of arrays and objects are accepted"
        )


@dataclass(frozen=True, slots=True)
class Problem:
    """What was wrong: ``message`` for a person, ``param`` naming the field (or None), ``count`` problems in all."""

    message: str
    param: str | None
    type: str
    count: int = 1


def summarise(
    errors: Sequence[Mapping[str, Any]],
    *,
    root: Any = MISSING,
    root_param: str | None = None,
    request: bool = False,
    under: str | None = None,
    limit: int = 1,
) -> Problem:
    """One summary of pydantic's ``errors()`` (of a ValidationError or FastAPI's RequestValidationError).

    ``root`` is what was validated (with ``request``: the body), when the caller has it: the path is
    walked through it, so only keys and indexes that are in the input name the field; without it,
    pydantic's tags are recognised by their form. ``request``: drop FastAPI's leading ``body``/``query``/…
    part. ``under``: the path of what was validated within the sender's body (``tokens.3``).
    ``limit``: how many problems the message spells out (the rest are counted).
    """
    found: dict[tuple[str, ...], tuple[list[str], Mapping[str, Any]]] = {}  # union site → deepest alternative
    for n, err in enumerate(errors):
        loc = list(err.get("loc", ()))
        walk = root
        if request and loc and loc[0] in REQUEST_PARTS:
            walk = root if loc[0] == "body" else MISSING  # the body is what FastAPI gives as root
            loc = loc[1:]
        path, site = _user_path(loc, walk)
        if under:
            path = [under, *path]
        site = site or (f"#error{n}",)
        best = found.get(site)
        if best is None or len(path) > len(best[0]):
            found[site] = (path, err)
    if not found:
        return Problem("invalid input", under or root_param, "invalid")
    picked = list(found.values())
    parts = []
    for path, err in picked[:limit]:
        where = ".".join(path) or root_param
        text = _describe(err)
        parts.append(f"{where}: {text}" if where else text)
    more = len(picked) - len(parts)
    message = "; ".join(parts)
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    first_path, first = picked[0]
    return Problem(message, ".".join(first_path) or root_param, str(first.get("type", "invalid")), len(picked))


def _user_path(loc: Sequence[Any], root: Any) -> tuple[list[str], tuple[str, ...] | None]:
    """The field path as the sender wrote it, and the path up to the first union tag (its "site"), if any."""
    path: list[str] = []
    site: tuple[str, ...] | None = None
    node = root
    for i, part in enumerate(loc):
        if root is not MISSING:
            if isinstance(node, Mapping) and isinstance(part, str) and part in node:
                path.append(part)
                node = node[part]
                continue
            if isinstance(node, list) and type(part) is int and 0 <= part < len(node):
                path.append(str(part))
                node = node[part]
                continue
            last = i == len(loc) - 1
            if last and isinstance(node, Mapping) and isinstance(part, str) and not _is_tag(part):
                path.append(part)  # a missing field, named as the sender should write it
                continue
        elif not (isinstance(part, str) and _is_tag(part)):
            path.append(str(part))
            continue
        if site is None:  # a pydantic tag (or a key not in the input): skipped
            site = (*path, f"#{i}")
    return path, site


def _is_tag(part: str) -> bool:
    return "[" in part or part in _PRIMITIVE_TAGS or part.startswith(_TAG_PREFIXES)


def _describe(err: Mapping[str, Any]) -> str:
    kind = err.get("type")
    msg = str(err.get("msg", "invalid"))
    value = err.get("input", MISSING)
    if kind == "finite_number":
        return "must be a finite number: NaN, Infinity and numbers beyond a double's range (like 1e999) are refused"
    if kind == "extra_forbidden":
        return f"{msg} (an unknown field: check its spelling)"
    if kind in _TYPE_ERRORS and value is not MISSING:
        return f"{msg}, got {_json_kind(value)}"
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "…"
        return f"a string ({shown!r})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def nesting_depth(raw: bytes | str) -> int:
    """How deeply arrays and objects nest in the JSON text ``raw`` (brackets inside strings do not count)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if b"[" not in data and b"{" not in data:
        return 0
    # Strings out first: with no escaped quote they lie between a quote and the next (a push batch in
    # half the regex's time); a quote after a backslash takes the full string grammar.
    outside = _STRING.sub(b'""', data) if b'\\"' in data else b"".join(data.split(b'"')[::2])
    # only the brackets left, as +1 (opening) and -1 (closing): the depth is the running sum's peak
    steps = np.frombuffer(outside.translate(None, _NOT_BRACKETS).translate(_STEPS), dtype=np.int8)
    depth = deepest = 0
    for start in range(0, steps.size, _CHUNK):  # chunks keep the temporaries small (15 MB of brackets: ~40 ms)
        run = np.cumsum(steps[start : start + _CHUNK], dtype=np.int64)
        run += depth
        deepest = max(deepest, int(run.max()))
        depth = int(run[-1])
    return deepest


def check_depth(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise JsonTooDeepError when ``raw`` nests deeper than ``limit``; a text with few brackets costs two counts."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data.translate(None, _NOT_BRACKETS)) <= limit:  # fewer brackets than levels allowed (one pass)
        return
    depth = nesting_depth(data)
    if depth > limit:
        raise JsonTooDeepError(depth, limit)
