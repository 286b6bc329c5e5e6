"""tests/stack.py as a command: prints READY once healthy, stops everything on SIGTERM."""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest

from tests.stack import ROOT, free_port, python


@pytest.mark.slow
def test_cli_prints_ready_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    command = [python(), "-m", "tests.stack", "--port", str(port), "--services", "auditor,gateway", "--timeout", "120"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().decode().strip() == f"READY http://127.0.0.1:{port}"
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
            assert health["status"] == "ok"
            assert sorted(health["services"]) == ["auditor", "gateway"]
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    assert code == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
