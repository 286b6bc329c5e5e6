"""docs/operations.md's prose (outside the generated settings tables) stays true to the deployment
files and the code: the files it describes exist, the settings it names exist and accept the values
it shows, and the troubleshooting list answers the original README's."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from services.common.docgen import settings_classes
from tests.deploy.helpers import K8S, ROOT

DOC = ROOT / "docs" / "operations.md"


def prose() -> str:
    text = DOC.read_text()
    start, end = "<!-- BEGIN GENERATED: settings -->", "<!-- END GENERATED: settings -->"
    return text[: text.index(start)] + text[text.index(end) + len(end) :]


def test_every_deployment_file_is_described() -> None:
    text = prose()
    for path in sorted(K8S.rglob("*.yaml")):
        name = str(path.relative_to(K8S))
        if name != "kustomization.yaml":
            assert f"`{name}`" in text, name
    for name in ("docker-compose.yml", "deploy/Dockerfile", "deploy/Dockerfile.gpu", "deploy/k8s/"):
        assert f"`{name}`" in text, name


def test_the_compose_variables_are_documented() -> None:
    header = (ROOT / "docker-compose.yml").read_text().split("\nname:", 1)[0]
    listed = re.search(r"belong to this file only:\n((?:#.*\n)+)", header)
    assert listed is not None
    names = re.findall(r"\b([A-Z][A-Z0-9_]+)\b", listed.group(1))
    assert {"AUDITORS", "CPU_GENERATORS", "DASHBOARD_PORT"} <= set(names)
    text = prose()
    for name in names:
        assert name in text, f"{name} (docker-compose.yml) is not in docs/operations.md"


@pytest.mark.parametrize(
    "heading",
    [
        '### "CUDA out of memory"',
        '### "Port already in use"',
        '### "Model not found"',
        '### "WebSocket connection fails"',
        "### Debug logging",
    ],
)
def test_the_troubleshooting_list_is_answered(heading: str) -> None:
    text = prose()
    assert heading in text
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    assert len(section.split()) > 60, f"{heading} is too short to answer anything"


def test_sections_the_issue_asks_for() -> None:
    headings = set(re.findall(r"^##+ (.+)$", prose(), flags=re.MULTILINE))
    assert {"Docker Compose", "Kubernetes", "Scaling", "Retention", "Security", "Troubleshooting"} <= headings
    text = prose()
    for needle in (
        "UQ_REDIS_CLUSTER",
        "UQ_PARTITIONS",
        "UQ_RETENTION_DAYS",
        "UQ_MAXLEN_TOKENS",
        "UQ_API_KEYS",
        "UQ_CORS_ORIGINS",
        "wss://",
    ):
        assert needle in text, needle


def test_every_setting_named_exists_and_takes_the_value_shown() -> None:
    fields = {f"UQ_{name.upper()}": cls for cls in settings_classes() for name in cls.model_fields}
    text = prose()
    for name in set(re.findall(r"\bUQ_[A-Z0-9_]+", text)):
        assert name in fields, f"{name} is not a setting"
    examples = re.findall(r"\b(UQ_[A-Z0-9_]+)=([^\s`<>…'\"]+)", text)
    assert len(examples) > 10
    for name, value in examples:
        cls = fields[name]
        field = name.removeprefix("UQ_").lower()
        try:
            cls.model_validate({field: value.rstrip(".,;)")})
        except ValidationError as exc:
            pytest.fail(f"docs/operations.md shows {name}={value}, which {cls.__name__} refuses: {exc}")
