"""docker-compose.yml and the Dockerfiles: valid against the Compose Specification's JSON schema, and
every service, port and UQ_ setting they name exists in the code. Docker does not run here."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from tests.deploy.helpers import (
    DEPLOY,
    ROOT,
    all_setting_names,
    interpolate,
    referenced_variables,
    service_module,
    settings_from_env,
    settings_of,
)

COMPOSE = ROOT / "docker-compose.yml"
HEARTBEAT_SERVICES = {"generator", "auditor", "alerter", "recorder", "otel"}


def compose_schema() -> dict[str, Any]:
    """The Compose Specification schema vendored by the check-jsonschema package (Apache-2.0,
    compose-spec/compose-spec), read from the installed package: no network."""
    ref = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema: dict[str, Any] = json.loads(ref.read_text(encoding="utf-8"))
    return schema


def load(env: dict[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE.read_text()), env or {})
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load()


def errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema(), format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_schema_is_the_compose_specification() -> None:
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    assert "deployment" in schema["$defs"] and "healthcheck" in schema["$defs"]


def test_the_file_is_valid_as_written_and_interpolated() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    assert errors(raw) == []
    assert errors(load()) == []
    assert errors(load({"AUDITORS": "6", "CPU_GENERATORS": "0", "UQ_DATABASE_URL": "postgresql+psycopg://x"})) == []


def test_the_schema_catches_mistakes(compose: dict[str, Any]) -> None:
    """The validation has teeth: a misspelt key and a wrong type are reported."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["auditor"]["deploy"]["replica"] = 3
    broken["services"]["gateway"]["healthcheck"]["interval"] = 10
    found = errors(broken)
    assert any("services/auditor/deploy" in e and "'replica'" in e for e in found), found
    assert any("services/gateway/healthcheck/interval" in e for e in found), found


def test_the_pipeline_services_are_all_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    modules = {name: service_module(s["command"]) for name, s in services.items() if "command" in s and "build" in s}
    assert modules == {
        "generator": "generator",
        "generator-gpu": "generator",
        "auditor": "auditor",
        "alerter": "alerter",
        "recorder": "recorder",
        "otel": "otel",
        "gateway": "gateway",
    }
    assert services["redis"]["image"].startswith("redis:7")  # consumer-group lag needs Redis 7
    assert services["postgres"]["profiles"] == ["postgres"]
    for name in modules:
        assert "profiles" not in services[name] or name in ("generator-gpu", "otel"), name
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy", name


def test_images_are_built_from_the_deploy_dockerfiles(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" in service:
            dockerfile = ROOT / service["build"]["context"] / service["build"]["dockerfile"]
            assert dockerfile.parent == DEPLOY and dockerfile.is_file(), name
    assert compose["services"]["generator-gpu"]["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    assert compose["services"]["auditor"]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_gpu_profile_reserves_a_gpu_and_the_default_runs_on_cpu(compose: dict[str, Any]) -> None:
    cpu, gpu = compose["services"]["generator"], compose["services"]["generator-gpu"]
    assert cpu["environment"]["UQ_DEVICE"] == "cpu" and "profiles" not in cpu
    assert gpu["environment"]["UQ_DEVICE"] == "cuda" and gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device["device_ids"] == ["0"]
    assert load({"CPU_GENERATORS": "0"})["services"]["generator"]["deploy"]["replicas"] == "0"


def test_auditors_and_alerters_are_replicated(compose: dict[str, Any]) -> None:
    assert compose["services"]["auditor"]["deploy"]["replicas"] == "2"
    assert load({"AUDITORS": "5"})["services"]["auditor"]["deploy"]["replicas"] == "5"
    # alerters scale out over partitions, which every service must agree on
    assert compose["services"]["alerter"]["deploy"]["replicas"] == "1"
    scaled = load({"ALERTERS": "2", "UQ_PARTITIONS": "8"})["services"]
    assert scaled["alerter"]["deploy"]["replicas"] == "2"
    assert {
        scaled[s]["environment"]["UQ_PARTITIONS"] for s in ("generator", "auditor", "alerter", "recorder", "gateway")
    } == {"8"}


def test_healthchecks_probe_each_service_s_own_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        if "build" not in service:
            continue
        module = service_module(service["command"])
        test = service["healthcheck"]["test"]
        if module in HEARTBEAT_SERVICES:
            assert test == ["CMD", "python", "-m", "services.common.healthcheck", module], name
        else:
            port = service["environment"]["UQ_PORT"]
            assert f"http://127.0.0.1:{port}/health" in test[-1], name
    assert services["generator"]["healthcheck"]["start_period"] == "600s"  # model loading


def test_the_gateway_port_is_the_one_it_listens_on(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    (published,) = gateway["ports"]
    host, host_port, container_port = published.rsplit(":", 2)
    assert (host, host_port) == ("127.0.0.1", "8080")
    assert container_port == gateway["environment"]["UQ_PORT"] == "8080"
    assert gateway["environment"]["UQ_HOST"] == "0.0.0.0"
    moved = load({"DASHBOARD_PORT": "9000", "DASHBOARD_BIND": "0.0.0.0"})["services"]["gateway"]["ports"]
    assert moved == ["0.0.0.0:9000:8080"]


def test_every_uq_setting_named_is_read_by_that_service(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        reads = settings_of(service_module(service["command"]))
        named = {key for key in service["environment"] if key.startswith("UQ_")}
        assert named, name
        assert named <= reads, f"{name} names settings it does not have: {sorted(named - reads)}"


def test_every_variable_is_a_setting_or_documented_in_the_header() -> None:
    text = COMPOSE.read_text()
    header = text.split("\nname:", 1)[0]
    variables = referenced_variables(text)
    assert {v for v in variables if v.startswith("UQ_")} <= all_setting_names()
    undocumented = {v for v in variables if not v.startswith("UQ_") and not re.search(rf"\b{v}\b", header)}
    assert undocumented == set()


def test_the_databases_and_volumes_line_up(compose: dict[str, Any]) -> None:
    recorder, gateway = compose["services"]["recorder"], compose["services"]["gateway"]
    assert recorder["environment"]["UQ_DATABASE_URL"] == gateway["environment"]["UQ_DATABASE_URL"]
    assert recorder["environment"]["UQ_DATABASE_URL"] == "sqlite:////app/data/uq.sqlite3"
    assert "uq-data:/app/data" in recorder["volumes"] and "uq-data:/app/data" in gateway["volumes"]
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], volume


def test_every_service_accepts_its_environment(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The values as well as the names: each service's settings load from exactly its environment."""
    for name, service in compose["services"].items():
        if "build" in service:
            module = service_module(service["command"])
            settings = settings_from_env(module, service["environment"], monkeypatch)
            assert settings.redis_url == "redis://redis:6379/0", name
    gateway = settings_from_env("gateway", compose["services"]["gateway"]["environment"], monkeypatch)
    assert (gateway.host, gateway.port, gateway.auth_required) == ("0.0.0.0", 8080, False)
    generator = settings_from_env("generator", compose["services"]["generator"]["environment"], monkeypatch)
    assert (generator.model, generator.device) == ("embedded", "cpu")
    bad = {**compose["services"]["gateway"]["environment"], "UQ_AUTH": "maybe"}
    with pytest.raises(ValidationError, match="auth"):
        settings_from_env("gateway", bad, monkeypatch)


def test_volumes_mount_where_the_image_made_folders_for_its_user(compose: dict[str, Any]) -> None:
    """A new named volume takes the ownership of the image's folder at its mount point; a folder the
    image lacks would come up owned by root, unwritable for the non-root services."""
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        dockerfile = (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).read_text()
        setup = re.search(r"mkdir -p ([^\\\n]+).*?chown -R uq:uq ([^\n]+)", dockerfile, flags=re.DOTALL)
        assert setup is not None, name
        made, owned = setup.group(1).split(), setup.group(2).split()
        for volume in service.get("volumes", []):
            target = volume.split(":")[1]
            assert target in made, f"{name}: {target} is not made in {service['build']['dockerfile']}"
            assert any(target == o or target.startswith(o + "/") for o in owned), f"{name}: {target} not chowned"


def test_nothing_always_on_depends_on_a_profile_service(compose: dict[str, Any]) -> None:
    """Compose refuses a model in which an enabled service depends on one whose profile is off."""
    services = compose["services"]
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown {target}"
            assert set(services[target].get("profiles", [])) <= set(service.get("profiles", [])), (name, target)
