"""./start.sh as a user runs it: the whole system on free ports, a generation, Ctrl-C cleans up."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("generator", "auditor", "alerter", "recorder", "gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_busy_port_names_the_process() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            ["./start.sh", "--no-setup", "--port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    assert proc.returncode != 0
    assert f"port {port} is in use by " in proc.stderr
    assert f"(pid {os.getpid()})" in proc.stderr


def test_bad_option_is_refused() -> None:
    proc = subprocess.run(["./start.sh", "--auditors", "zero"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--auditors must be a positive number" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    not all((ROOT / "services" / s / "__main__.py").exists() for s in SERVICES), reason="needs every service"
)
@pytest.mark.parametrize(("engine", "provider"), [("transformers", "transformers"), (None, "llama.cpp")])
def test_start_generate_and_ctrl_c(tmp_path: Path, redis_url: str, engine: str | None, provider: str) -> None:
    """With no --engine (auto), the embedded model runs on llama.cpp, which the test set-up installs."""
    port = free_port()
    prefix = f"uqtest-start-{uuid.uuid4().hex[:8]}:"
    env = {
        **{k: v for k, v in os.environ.items() if k != "UQ_ENGINE"},
        **({"UQ_ENGINE": engine} if engine else {}),
        "UQ_REDIS_URL": redis_url,
        "UQ_STREAM_PREFIX": prefix,
        "UQ_DATABASE_URL": f"sqlite:///{tmp_path / 'uq.sqlite3'}",
        "UQ_MODEL_CACHE_DIR": str(ROOT / "data" / "model-cache"),
    }
    proc = subprocess.Popen(
        ["./start.sh", "--no-setup", "--port", str(port), "--auditors", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        deadline = time.time() + 600
        for line in proc.stdout:
            output.append(line)
            if m := re.search(r"started \S+\s+pid (\d+)", line):
                pids.append(int(m.group(1)))
            if "Ready." in line:
                break
            assert time.time() < deadline, "".join(output)
        assert any("Ready." in line for line in output), "".join(output)
        assert len(pids) == len(SERVICES) + 1  # two auditors
        base = f"http://127.0.0.1:{port}"
        status, health = http("GET", f"{base}/health")
        assert status == 200, health
        status, job = http(
            "POST", f"{base}/generate", {"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}
        )
        assert status == 202, job
        session_id = job["session_id"]
        last: list[tuple[int, dict[str, object]]] = []

        def ended() -> dict[str, object] | None:
            last[:] = [http("GET", f"{base}/sessions/{session_id}")]
            status, detail = last[0]
            return detail if status == 200 and detail["session"]["status"] in ("finished", "failed") else None  # type: ignore[index]

        detail = wait_until(ended, what=lambda: f"the session to end; last: {last}", timeout_s=120, interval_s=0.5)
        assert detail["session"]["status"] == "finished", detail  # type: ignore[index]
        assert detail["session"]["provider"] == provider, detail  # type: ignore[index]
        assert len(detail["tokens"]) >= 1  # type: ignore[arg-type]
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        try:
            rest, _ = proc.communicate(timeout=60)
            output.append(rest)
        finally:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    assert "stopped." in "".join(output)
    wait_until(
        lambda: not any(_alive(p) for p in pids),
        what=lambda: f"the services to exit; left behind: {[p for p in pids if _alive(p)]}",
        timeout_s=5,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:  # gone between the two looks
        return False
