"""How a contract model becomes a Redis Streams entry, and back.

An entry has these fields:
- ``data``: UTF-8 JSON of the model (``model_dump_json``), always present;
- ``logits``: only on token entries with ``distribution == "full"``: the raw next-token logits as
  ``vocab_size`` little-endian IEEE 754 float16 values, 2 bytes each, no header.

Float16 keeps every logit within 0.05 % relative (enough for probabilities to ~1e-3 relative) at a
quarter of float64's bytes; raw bytes beat JSON lists of numbers by about 5× in size and 50× in parse
time, and any language reads them (numpy: ``numpy.frombuffer(b, "<f2")``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from services.common.contracts import STREAM_MODELS, Event, TokenEvent
from services.common.errors import EntryError
from services.common.validation import summarise

DATA = b"data"
LOGITS = b"logits"
_ADAPTERS: dict[str, TypeAdapter[Any]] = {name: TypeAdapter(model) for name, model in STREAM_MODELS.items()}  # type: ignore[arg-type]


def encode(event: Event) -> dict[bytes, bytes]:
    """The fields of the stream entry for ``event``."""
    fields = {DATA: event.model_dump_json().encode()}
    if isinstance(event, TokenEvent) and event.logits is not None:
        fields[LOGITS] = event.logits
    return fields


def decode(stream: str, fields: Mapping[bytes, bytes]) -> Event:
    """Parse an entry read from the short-named ``stream`` ("tokens", …); raise EntryError if it cannot be."""
    adapter = _ADAPTERS.get(stream)
    if adapter is None:
        raise EntryError(f"unknown stream {stream!r}")
    raw = fields.get(DATA)
    if raw is None:
        raise EntryError(f"entry has no 'data' field (fields: {sorted(k.decode(errors='replace') for k in fields)})")
    try:
        event: Event = adapter.validate_json(raw)
    except ValidationError as exc:
        raise EntryError(
            f"invalid {stream} entry: {summarise(exc.errors(), root_param='data', limit=5).message}"
        ) from None
    if isinstance(event, TokenEvent):
        if event.logits is not None:
            raise EntryError("logits belong in the binary 'logits' field, not in the JSON")
        event = _attach_logits(event, fields.get(LOGITS))
    return event


def logits_array(event: TokenEvent) -> np.ndarray[Any, np.dtype[np.float16]]:
    """The token's logits as a float16 array (no copy)."""
    if event.logits is None:
        raise EntryError("token entry carries no logits")
    return np.frombuffer(event.logits, dtype="<f2")


def logits_bytes(logits: np.ndarray[Any, Any]) -> bytes:
    """Encode a 1-D array of logits for the ``logits`` field."""
    return np.ascontiguousarray(logits, dtype="<f2").tobytes()


def _attach_logits(event: TokenEvent, blob: bytes | None) -> TokenEvent:
    if event.distribution == "full":
        if blob is None:
            raise EntryError("distribution is 'full' but the entry has no 'logits' field")
        if event.vocab_size is None:
            raise EntryError("distribution is 'full' but vocab_size is null")
        if event.logits_dtype != "float16":
            raise EntryError("distribution is 'full' but logits_dtype is not 'float16'")
        if len(blob) != 2 * event.vocab_size:
            raise EntryError(
                f"logits field holds {len(blob)} bytes = {len(blob) / 2:g} float16 values, "
                f"but vocab_size is {event.vocab_size}"
            )
        return event.model_copy(update={"logits": blob})
    if blob is not None:
        raise EntryError(f"entry has a 'logits' field but distribution is {event.distribution!r}")
    return event
