"""The docs and the code cannot drift apart: settings, stream fields and JSON Schemas are checked."""

from __future__ import annotations

from services.common.contracts import STREAM_MODELS
from services.common.docgen import DOCS, ROOT, expected_files, settings_classes, stream_schemas

FIX = "run `.venv/bin/python -m services.common.docgen` and commit the result"


def test_generated_docs_are_up_to_date() -> None:
    stale = [
        str(p.relative_to(ROOT)) for p, text in expected_files().items() if not p.exists() or p.read_text() != text
    ]
    assert not stale, f"docs differ from the code in {stale}: {FIX}"


def test_every_setting_is_documented() -> None:
    ops = (DOCS / "operations.md").read_text()
    names = {f"UQ_{name.upper()}" for cls in settings_classes() for name in cls.model_fields}
    assert len(names) >= 20
    missing = sorted(n for n in names if f"`{n}`" not in ops)
    assert not missing, f"settings not described in docs/operations.md: {missing}"


def test_every_stream_field_is_documented() -> None:
    streams = (DOCS / "streams.md").read_text()
    assert set(STREAM_MODELS) == {"jobs", "tokens", "audits", "alerts", "sessions"}
    for stream, schema in stream_schemas().items():
        assert f"### `uq:{stream}`" in streams
        defs = schema.get("$defs", {})
        models = [schema] if "properties" in schema else [defs[s["$ref"].rsplit("/", 1)[-1]] for s in schema["oneOf"]]
        models += [d for d in defs.values() if "properties" in d]
        for model in models:
            section = streams.split(f"#### `{model['title']}`", 1)
            assert len(section) == 2, f"{model['title']} has no section in docs/streams.md"
            table = section[1].split("####", 1)[0]
            for field in model["properties"]:
                assert f"| `{field}` |" in table, f"{model['title']}.{field} is not documented"


def test_binary_logits_field_is_documented() -> None:
    streams = (DOCS / "streams.md").read_text()
    assert "little-endian IEEE 754 float16" in streams
    assert 'np.frombuffer(fields[b"logits"], dtype="<f2")' in streams


def test_the_consumer_example_says_what_a_consumer_must_know() -> None:
    """The example itself runs in tests/common/test_streams_example.py; these are its notes."""
    section = (DOCS / "streams.md").read_text().split("## Attaching a consumer of your own", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'ids = {stream: "0" for stream in streams}' in code  # its own pending entries first
    assert "r.xreadgroup(group, me, ids," in code and 'f"{prefix}audits"' in code  # two streams, one call
    assert '(fields or {}).get(b"data")' in code  # a foreign entry may lack data
    assert "**Which logprob to trust.**" in section and "computed from the float16" in section
    assert "`UQ_DISPLAY_TOP_K`" in section
