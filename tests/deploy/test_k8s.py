"""deploy/k8s: every manifest valid against the Kubernetes JSON schemas (kubernetes-validate, strict,
offline), KEDA's resources against tests/deploy/keda.py, and what they name — services, settings,
ports, probes, the Redis address, the autoscaler's stream and group — exists in the code."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv

from services.auditor.settings import AuditorSettings
from services.common.settings import CommonSettings
from services.gateway.metrics import STREAMS
from tests.deploy.helpers import K8S, ROOT, all_setting_names, service_module, settings_from_env, settings_of
from tests.deploy.keda import SCHEMAS

K8S_VERSION = kv.latest_version()
HEARTBEAT_SERVICES = {"generator", "auditor", "alerter", "recorder"}
WORKLOADS = {"Deployment", "StatefulSet"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def applied(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/k8s` applies (before kustomize's namespace and labels)."""
    return [d for name in kustomization["resources"] for d in documents(K8S / name)]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def ours(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Our workloads by the service they run: {"auditor": <its container>, ...}."""
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container["image"].startswith("uq-runtime"):
                    out[service_module(container["command"])] = container
    return out


def k8s_errors(doc: dict[str, Any]) -> str | None:
    try:
        kv.validate(doc, K8S_VERSION, strict=True)
    except kv.ValidationError as exc:
        return f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}"
    return None


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_is_valid(path: Path) -> None:
    docs = documents(path)
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.Draft202012Validator(SCHEMAS[doc["kind"]]).validate(doc)
            behavior = doc["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
            if behavior is not None:  # KEDA passes it to the HPA it makes: check it as one
                hpa = {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "check"},
                    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 1},
                }
                hpa["spec"]["behavior"] = behavior
                assert k8s_errors(hpa) is None
        else:
            assert k8s_errors(doc) is None


def test_the_validation_has_teeth(applied: list[dict[str, Any]]) -> None:
    auditor = copy.deepcopy(find(applied, "Deployment", "uq-auditor"))
    auditor["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"]["commnd"] = ["x"]
    assert "commnd" in str(k8s_errors(auditor))
    auditor = copy.deepcopy(find(applied, "Deployment", "uq-auditor"))
    auditor["spec"]["replicas"] = "two"
    assert "replicas" in str(k8s_errors(auditor))
    scaled = copy.deepcopy(find(applied, "ScaledObject", "uq-auditor"))
    del scaled["spec"]["triggers"][0]["metadata"]["consumerGroup"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMAS["ScaledObject"]).validate(scaled)


def test_kustomization_lists_every_manifest_but_the_alternatives(kustomization: dict[str, Any]) -> None:
    # kustomize's own format has no schema in the package: a structural check of the keys used
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= {"apiVersion", "kind", "namespace", "labels", "resources", "images"}
    for image in kustomization["images"]:
        assert set(image) <= {"name", "newName", "newTag", "digest"} and "name" in image
    for label in kustomization["labels"]:
        assert set(label) <= {"pairs", "includeSelectors", "includeTemplates"}
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert kustomization["namespace"] == "uq"
    assert {i["name"] for i in kustomization["images"]} == {"uq-runtime", "uq-runtime-gpu"}
    assert (K8S / "alternatives" / "auditor-hpa.yaml").is_file()


def test_every_service_runs_with_probes_and_resources(applied: list[dict[str, Any]]) -> None:
    containers = ours(applied)
    assert set(containers) == {"generator", "auditor", "alerter", "recorder", "gateway"}
    for doc in applied:
        if doc["kind"] not in WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
        for container in pod["containers"]:
            name = f"{doc['metadata']['name']}/{container['name']}"
            assert "livenessProbe" in container and "readinessProbe" in container, name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
            if container["image"].startswith("uq-runtime"):
                assert pod["securityContext"]["runAsNonRoot"] is True, name
                assert pod["securityContext"]["runAsUser"] == 10001, name  # the image's user
                assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


@pytest.mark.parametrize("service", sorted(HEARTBEAT_SERVICES))
def test_heartbeat_services_probe_their_own_heartbeat(applied: list[dict[str, Any]], service: str) -> None:
    container = ours(applied)[service]
    expected = ["python", "-m", "services.common.healthcheck", service]
    assert container["livenessProbe"]["exec"]["command"] == expected
    assert container["readinessProbe"]["exec"]["command"] == expected
    # the probe finds this pod's heartbeat by UQ_INSTANCE = the pod's name
    (instance,) = [e for e in container["env"] if e["name"] == "UQ_INSTANCE"]
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_the_gateway_is_probed_on_its_http_health(applied: list[dict[str, Any]]) -> None:
    gateway = ours(applied)["gateway"]
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    (port,) = gateway["ports"]
    assert port == {"name": "http", "containerPort": int(env["UQ_PORT"])}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert gateway["livenessProbe"]["exec"]["command"][-1] == "gateway"
    assert env["UQ_HOST"] == "0.0.0.0" and env["UQ_AUTH"] == "on"
    service = find(applied, "Service", "uq-gateway")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    template = find(applied, "Deployment", "uq-gateway")["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == env["UQ_PORT"]


def test_services_select_pods_and_name_their_ports(applied: list[dict[str, Any]]) -> None:
    pods = [d["spec"]["template"] for d in applied if d["kind"] in WORKLOADS]
    for service in (d for d in applied if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        (pod,) = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
        port_names = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"].get("ports", []):
            assert port["targetPort"] in port_names, service["metadata"]["name"]


def test_generators_run_on_gpu_nodes(applied: list[dict[str, Any]]) -> None:
    deployment = find(applied, "Deployment", "uq-generator")
    pod = deployment["spec"]["template"]["spec"]
    container = ours(applied)["generator"]
    assert container["image"] == "uq-runtime-gpu"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert {e["name"]: e.get("value") for e in container["env"]}["UQ_DEVICE"] == "cuda"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0  # never a GPU more
    assert container["startupProbe"]["exec"]["command"][-1] == "generator"


def test_alerters_share_the_partitions(applied: list[dict[str, Any]]) -> None:
    alerter = find(applied, "StatefulSet", "uq-alerter")
    partitions = int(find(applied, "ConfigMap", "uq-config")["data"]["UQ_PARTITIONS"])
    assert 2 <= alerter["spec"]["replicas"] <= partitions


def test_every_setting_named_exists_and_is_read_where_it_is_set(applied: list[dict[str, Any]]) -> None:
    config = find(applied, "ConfigMap", "uq-config")["data"]
    secret = find(applied, "Secret", "uq-secrets")["stringData"]
    common = {f"UQ_{n.upper()}" for n in CommonSettings.model_fields}
    # uq-config goes to every service (envFrom), so its settings must be ones every service reads
    assert {k for k in config if k.startswith("UQ_")} <= common
    assert {k for k in secret if k.startswith("UQ_")} <= all_setting_names()
    for service, container in ours(applied).items():
        names = {e["name"] for e in container["env"] if e["name"].startswith("UQ_")}
        assert names <= settings_of(service), f"{service}: {sorted(names - settings_of(service))}"
        assert container["envFrom"] == [{"configMapRef": {"name": "uq-config"}}]
        for entry in container["env"]:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                assert ref["name"] == "uq-secrets" and ref["key"] in secret, entry
    for doc in applied:
        if doc["kind"] == "StatefulSet" and doc["metadata"]["name"] == "postgres":
            refs = [
                e["valueFrom"]["secretKeyRef"]
                for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]
                if "valueFrom" in e
            ]
            assert all(r["key"] in secret for r in refs)


def test_the_database_is_postgresql_shared_by_recorder_and_gateway(applied: list[dict[str, Any]]) -> None:
    secret = find(applied, "Secret", "uq-secrets")["stringData"]
    assert secret["UQ_DATABASE_URL"].startswith("postgresql+psycopg://uq:")
    assert urlparse(secret["UQ_DATABASE_URL"]).password == secret["POSTGRES_PASSWORD"]
    for service in ("recorder", "gateway"):
        (entry,) = [e for e in ours(applied)[service]["env"] if e["name"] == "UQ_DATABASE_URL"]
        assert entry["valueFrom"]["secretKeyRef"]["key"] == "UQ_DATABASE_URL"


def test_the_autoscaler_watches_the_auditors_group_on_the_configured_redis(applied: list[dict[str, Any]]) -> None:
    config = find(applied, "ConfigMap", "uq-config")["data"]
    scaled = find(applied, "ScaledObject", "uq-auditor")
    assert scaled["spec"]["scaleTargetRef"]["name"] == find(applied, "Deployment", "uq-auditor")["metadata"]["name"]
    # one trigger per partition of uq:tokens, each asking a replica per 1/N of the lag a replica takes
    settings = CommonSettings(stream_prefix=config["UQ_STREAM_PREFIX"], partitions=int(config["UQ_PARTITIONS"]))
    triggers = scaled["spec"]["triggers"]
    assert [t["metadata"]["stream"] for t in triggers] == settings.partition_keys("tokens")
    assert len({int(t["metadata"]["lagCount"]) for t in triggers}) == 1
    assert 400 <= int(triggers[0]["metadata"]["lagCount"]) * settings.partitions <= 600
    url = urlparse(config["UQ_REDIS_URL"])
    for trigger in triggers:
        meta = trigger["metadata"]
        assert trigger["type"] == "redis-streams"
        assert meta["consumerGroup"] == config.get(
            "UQ_TOKEN_GROUP", AuditorSettings.model_fields["token_group"].default
        )
        # the address KEDA reads from the auditor's environment is the Redis of UQ_REDIS_URL
        assert meta["addressFromEnv"] in config
        assert config[meta["addressFromEnv"]] == f"{url.hostname}:{url.port or 6379}"
        assert meta["databaseIndex"] == (url.path.lstrip("/") or "0")
    trigger = triggers[0]
    auth = find(applied, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "password" and ref["key"] in find(applied, "Secret", "uq-secrets")["stringData"]


def test_the_hpa_alternative_reads_a_metric_the_gateway_exports() -> None:
    (hpa,) = documents(K8S / "alternatives" / "auditor-hpa.yaml")
    external = next(m["external"] for m in hpa["spec"]["metrics"] if m["type"] == "External")
    source = (ROOT / "services" / "gateway" / "metrics.py").read_text()
    assert re.search(rf'"{external["metric"]["name"]}",.*\["stream", "group"\]', source, flags=re.DOTALL)
    labels = external["metric"]["selector"]["matchLabels"]
    assert labels["stream"] in STREAMS
    assert labels["group"] == AuditorSettings.model_fields["token_group"].default
    assert hpa["spec"]["scaleTargetRef"]["name"] == "uq-auditor"


def test_the_redis_and_postgres_here_are_ones_the_system_supports(applied: list[dict[str, Any]]) -> None:
    redis = find(applied, "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    assert re.match(r"redis:(7|8)\.", redis["image"])  # consumer-group lag needs Redis 7+
    assert "noeviction" in redis["args"]  # streams must never be evicted
    config = find(applied, "ConfigMap", "uq-config")["data"]
    assert urlparse(config["UQ_REDIS_URL"]).hostname == find(applied, "Service", "redis")["metadata"]["name"]


def test_network_policies_let_exactly_the_users_of_redis_and_postgres_in(applied: list[dict[str, Any]]) -> None:
    def admitted(policy: dict[str, Any]) -> set[str]:
        """Our services whose pods the policy's podSelector admits."""
        (rule,) = policy["spec"]["ingress"]
        out = set()
        for peer in rule["from"]:
            for expr in peer.get("podSelector", {}).get("matchExpressions", []):
                assert expr["key"] == "app.kubernetes.io/component" and expr["operator"] == "In"
                out |= set(expr["values"])
        return out

    components = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in applied
        if d["kind"] in WORKLOADS and "app.kubernetes.io/component" in d["spec"]["template"]["metadata"]["labels"]
    }
    assert components == set(ours(applied))
    redis = find(applied, "NetworkPolicy", "redis-from-services")
    assert admitted(redis) == components  # every service talks to Redis
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}} in redis["spec"]["ingress"][
        0
    ]["from"]
    postgres = find(applied, "NetworkPolicy", "postgres-from-recorder-and-gateway")
    users = {s for s, c in ours(applied).items() if any(e["name"] == "UQ_DATABASE_URL" for e in c["env"])}
    assert admitted(postgres) == users == {"recorder", "gateway"}
    for policy, target in ((redis, "redis"), (postgres, "postgres")):
        assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": target}
        (port,) = policy["spec"]["ingress"][0]["ports"]
        assert port["port"] == find(applied, "Service", target)["spec"]["ports"][0]["port"]


def test_every_service_accepts_its_configuration(
    applied: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = find(applied, "ConfigMap", "uq-config")["data"]
    secret = find(applied, "Secret", "uq-secrets")["stringData"]
    for service, container in ours(applied).items():
        env = dict(config)
        for entry in container["env"]:
            ref = entry.get("valueFrom", {})
            if "value" in entry:
                env[entry["name"]] = entry["value"]
            elif "secretKeyRef" in ref and ref["secretKeyRef"]["key"] in secret:
                env[entry["name"]] = secret[ref["secretKeyRef"]["key"]]
            elif "fieldRef" in ref:
                env[entry["name"]] = f"uq-{service}-0"
        settings = settings_from_env(service, env, monkeypatch)
        assert settings.instance == f"uq-{service}-0" and settings.stream_prefix == "uq:"
    gateway = ours(applied)["gateway"]
    env = dict(config) | {e["name"]: e["value"] for e in gateway["env"] if "value" in e}
    assert settings_from_env("gateway", env, monkeypatch).auth_required is True
