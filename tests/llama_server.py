"""A real OpenAI-compatible peer for the upstream engine's tests: llama.cpp's server from
llama-cpp-python (built from source at set-up, scripts/setup.sh), serving the embedded GGUF file.

    with LlamaServer() as server:
        OpenAI(base_url=server.base_url, api_key="x").chat.completions.create(...)

``--logits_all true`` because llama-cpp-python computes ``logprobs`` only from logits kept for every
position (the cost the issue measured: ~109 → ~23 tok/s), and ``--interrupt_requests false`` because
by default a new request cuts the stream of the one running (requests are served one at a time). Its logprobs are log-softmax of the raw
logits, before repeat penalty, temperature and top-p ("raw"), with no floor.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from services.generator.embedded import embedded_gguf
from tests.stack import ROOT, free_port, python

MODEL_ALIAS = "smollm2-135m-q4_1"


class LlamaServerError(RuntimeError):
    pass


class LlamaServer:
    def __init__(
        self, *, model: Path | None = None, n_ctx: int = 2048, threads: int = 2, ready_timeout_s: float = 120.0
    ) -> None:
        self.model = model or embedded_gguf()
        self.n_ctx = n_ctx
        self.threads = threads
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.ready_timeout_s = ready_timeout_s
        self.log_path = ROOT / "test-output" / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log = self.log_path.open("wb")
        args = [python(), "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", MODEL_ALIAS]
        args += ["--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--logits_all", "true"]
        # a new request would otherwise cut the stream of the one running (llama-cpp-python's default)
        args += ["--n_threads", str(self.threads), "--verbose", "false", "--interrupt_requests", "false"]
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LlamaServerError(f"llama_cpp.server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise LlamaServerError(f"llama_cpp.server did not answer within {self.ready_timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
