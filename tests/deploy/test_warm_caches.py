"""deploy/warm_caches.py, the image build step that warms the model cache and the numba kernel:
run as the Dockerfiles run it, into empty folders, and the services then load from what it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.helpers import DEPLOY, ROOT


def warm(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "warm_caches.py"), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_it_compiles_the_auditor_kernel_into_numba_cache_dir(tmp_path: Path) -> None:
    proc = warm("--no-model", NUMBA_CACHE_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"auditor kernel compiled into {tmp_path} [")
    assert list(tmp_path.rglob("*.nbi")) and list(tmp_path.rglob("*.nbc"))


@pytest.mark.slow
@pytest.mark.model
def test_it_writes_the_embedded_model_cache_that_the_generator_then_loads(tmp_path: Path) -> None:
    proc = warm("--no-kernel", UQ_MODEL_CACHE_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert f"embedded model ready in {tmp_path} (loaded from gguf" in proc.stdout
    (cached,) = tmp_path.iterdir()
    assert (cached / "config.json").is_file() and (cached / "tokenizer_config.json").is_file()
    again = warm("--no-kernel", UQ_MODEL_CACHE_DIR=str(tmp_path))
    assert "(loaded from cache in" in again.stdout, again.stderr
