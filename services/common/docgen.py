"""Generates the reference parts of the docs from the code, so the two cannot drift apart.

``python -m services.common.docgen`` rewrites, between ``<!-- BEGIN GENERATED: x -->`` and
``<!-- END GENERATED: x -->`` markers:
- ``docs/operations.md`` section ``settings``: every setting of every service;
- ``docs/streams.md`` section ``fields``: every field of every stream contract;
- ``docs/api.md`` section ``websocket``: every WebSocket message (services.gateway.protocol);
and writes ``docs/schemas/<stream>.json`` (JSON Schema of each stream's ``data`` field),
``docs/schemas/ws-client.json`` and ``ws-server.json`` (the WebSocket protocol, each direction a union
discriminated on ``type``) and ``docs/schemas/openapi.json`` (the gateway's REST API, at default
settings); the dashboard's types and validators are generated from the last three.
``tests/common/test_docs.py`` fails when a committed file differs from what this produces.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

import services
from services.common.contracts import STREAM_MODELS
from services.common.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def settings_classes() -> list[type[CommonSettings]]:
    """CommonSettings and every subclass defined in ``services/<name>/settings.py``."""
    classes: list[type[CommonSettings]] = [CommonSettings]
    for info in sorted(pkgutil.iter_modules(services.__path__), key=lambda m: m.name):
        try:
            module = importlib.import_module(f"services.{info.name}.settings")
        except ModuleNotFoundError:
            continue
        for obj in vars(module).values():
            own = isinstance(obj, type) and obj.__module__ == module.__name__
            if own and issubclass(obj, CommonSettings) and obj is not CommonSettings:
                classes.append(obj)
    return classes


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(computed)"
    value = field.default
    if value == "":
        return '`""`'
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def settings_markdown() -> str:
    out: list[str] = []
    for cls in settings_classes():
        own = {
            name: f
            for name, f in cls.model_fields.items()
            if cls is CommonSettings or name not in CommonSettings.model_fields
        }
        title = (
            "All services" if cls is CommonSettings else f"{cls.__name__} (`services/{cls.__module__.split('.')[1]}`)"
        )
        out += [f"### {title}", "", (cls.__doc__ or "").strip().splitlines()[0], ""]
        out += ["| variable | default | meaning |", "|---|---|---|"]
        for name, f in own.items():
            out.append(f"| `UQ_{name.upper()}` | {_default(f)} | {f.description or ''} |")
        out.append("")
    return "\n".join(out)


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " \\| ".join(_type_name(s) for s in schema["anyOf"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " \\| ".join(json.dumps(v) for v in schema["enum"])
    t = schema.get("type", "any")
    if t == "array":
        return f"array of {_type_name(schema.get('items', {}))}"
    if t == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"object of {_type_name(schema['additionalProperties'])}"
    return str(t)


def _model_table(name: str, schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = [f"#### `{name}`", "", (schema.get("description") or "").split("\n\n")[0].replace("\n", " "), ""]
    rows += ["| field | type | required | meaning |", "|---|---|---|---|"]
    for field, prop in schema.get("properties", {}).items():
        req = "yes" if field in required else "no"
        rows.append(f"| `{field}` | {_type_name(prop)} | {req} | {prop.get('description', '')} |")
    rows.append("")
    return rows


def stream_schemas() -> dict[str, dict[str, Any]]:
    return {
        stream: TypeAdapter(model).json_schema(mode="serialization")  # type: ignore[arg-type]
        for stream, model in STREAM_MODELS.items()
    }


def streams_markdown() -> str:
    out: list[str] = []
    seen: set[str] = set()
    for stream, schema in stream_schemas().items():
        out += [f"### `uq:{stream}`", ""]
        defs = schema.get("$defs", {})
        tops = [schema] if "properties" in schema else [defs[s["$ref"].rsplit("/", 1)[-1]] for s in schema["oneOf"]]
        for top in tops:
            out += _model_table(top["title"], top)
        for def_name, sub in defs.items():
            if def_name not in seen and sub not in tops and "properties" in sub:
                seen.add(def_name)
                out += _model_table(def_name, sub)
    return "\n".join(out)


def protocol_schemas() -> dict[str, dict[str, Any]]:
    from services.gateway.protocol import ClientMessage, ServerMessage

    return {
        "ws-client": TypeAdapter(ClientMessage).json_schema(mode="validation"),
        "ws-server": TypeAdapter(ServerMessage).json_schema(mode="serialization"),
    }


def protocol_markdown() -> str:
    out: list[str] = []
    for name, title in (("ws-client", "Client → server"), ("ws-server", "Server → client")):
        schema = protocol_schemas()[name]
        defs = schema["$defs"]
        out += [f"### {title}", ""]
        for ref in schema["oneOf"]:
            top = defs[ref["$ref"].rsplit("/", 1)[-1]]
            out += _model_table(top["title"], top)
    return "\n".join(out)


@contextlib.contextmanager
def _default_settings() -> Iterator[None]:
    """No ``UQ_*`` variables while the block runs: what is generated is what the defaults give."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("UQ_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def openapi_schema() -> dict[str, Any]:
    from services.gateway.app import create_app

    with _default_settings():
        return create_app().openapi()


def model_fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_json_schema(mode="serialization").get("properties", {}))


def replace_section(text: str, section: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- BEGIN GENERATED: {section} -->\n).*?(<!-- END GENERATED: {section} -->)", flags=re.DOTALL
    )
    if not pattern.search(text):
        raise ValueError(f"markers for section {section!r} not found")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def expected_files() -> dict[Path, str]:
    files: dict[Path, str] = {}
    ops = DOCS / "operations.md"
    files[ops] = replace_section(ops.read_text(), "settings", settings_markdown())
    streams = DOCS / "streams.md"
    files[streams] = replace_section(streams.read_text(), "fields", streams_markdown())
    api = DOCS / "api.md"
    files[api] = replace_section(api.read_text(), "websocket", protocol_markdown())
    schemas = {**stream_schemas(), **protocol_schemas(), "openapi": openapi_schema()}
    for name, schema in schemas.items():
        files[DOCS / "schemas" / f"{name}.json"] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return files


def main() -> None:
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
