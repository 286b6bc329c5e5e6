"""examples/openai_stream.py: an OpenAI-format SSE stream with logprobs goes through the real auditor.

OpenAI itself cannot run here; its side is a recorded stream in OpenAI's chunk format served by an
httpx transport. The gateway, the auditor and the alerter are the real services (tests/stack.py).
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.stack import ROOT, Stack
from uqclient import AuditClient

CONTENT = [
    {
        "token": "AI",
        "logprob": -0.05,
        "bytes": [65, 73],
        "top_logprobs": [
            {"token": "AI", "logprob": -0.05, "bytes": [65, 73]},
            {"token": "Art", "logprob": -3.2, "bytes": [65]},
        ],
    },
    {
        "token": " is",
        "logprob": -0.4,
        "bytes": [32],
        "top_logprobs": [
            {"token": " is", "logprob": -0.4, "bytes": [32]},
            {"token": " means", "logprob": -1.3, "bytes": [32]},
        ],
    },
    {
        "token": " fun",
        "logprob": -2.5,
        "bytes": [32],
        "top_logprobs": [
            {"token": " great", "logprob": -0.9, "bytes": [32]},
            {"token": " fun", "logprob": -2.5, "bytes": [32]},
        ],
    },
]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("openai_stream", Path(ROOT) / "examples" / "openai_stream.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def openai_sse(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    assert (body["stream"], body["logprobs"], body["top_logprobs"]) == (True, True, 5)
    lines = []
    for item in CONTENT:
        chunk = {"choices": [{"index": 0, "delta": {"content": item["token"]}, "logprobs": {"content": [item]}}]}
        lines.append(f"data: {json.dumps(chunk)}\n\n")
    lines.append("data: [DONE]\n\n")
    return httpx.Response(200, content="".join(lines).encode(), headers={"content-type": "text/event-stream"})


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(services=("auditor", "alerter", "gateway")) as s:
        yield s


@pytest.mark.slow
def test_streamed_completion_is_audited(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    openai = httpx.Client(base_url="https://openai.invalid/v1", transport=httpx.MockTransport(openai_sse))
    with openai, AuditClient(stack.url) as audit:
        session = example.audit_stream(openai, audit, "gpt-4o-mini", "Say something")
    tokens = session["tokens"]
    assert [t["text"] for t in tokens] == ["AI", " is", " fun"]
    third = tokens[2]
    assert third["distribution"] == "top_k"
    assert third["metrics"]["prob"] == pytest.approx(math.exp(-2.5), rel=1e-6)
    assert third["metrics"]["rank"] == 2
    assert third["metrics"]["coverage"] == pytest.approx(math.exp(-0.9) + math.exp(-2.5), rel=1e-6)
    assert session["session"]["provider"] == "openai"
    summary = session["summary"]  # finish(wait=True) returned the final session, summary included
    assert (summary["tokens"], summary["status"]) == (3, "finished")
    assert summary["nll_bits"] == pytest.approx((0.05 + 0.4 + 2.5) / math.log(2), rel=1e-6)
    example.report(session)
    printed = capsys.readouterr().out.splitlines()
    assert json.loads(printed[-1].removeprefix("summary: ")) == summary
