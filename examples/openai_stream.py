"""Audit a streaming OpenAI-compatible chat completion, token by token, with the gateway's push API.

Works with any server that speaks OpenAI's chat completions API and returns logprobs (OpenAI, vLLM,
llama.cpp's server, Ollama's OpenAI endpoint, …)::

    export OPENAI_API_KEY=sk-...                     # if the server needs one
    .venv/bin/python examples/openai_stream.py --model gpt-4o-mini --prompt "Explain AI"
    .venv/bin/python examples/openai_stream.py --base-url http://127.0.0.1:8000/v1 --model my-model

It asks for ``stream: true, logprobs: true, top_logprobs: 5`` and passes each
``choices[0].logprobs.content`` item to the gateway exactly as it arrives (token, logprob,
top_logprobs), then prints the audited tokens and the session's summary. Watch it live in the
dashboard at the gateway's URL while it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import httpx

from uqclient import AuditClient


def stream_chat(
    http: httpx.Client, model: str, prompt: str, *, max_tokens: int = 200, top_logprobs: int = 5
) -> Iterator[dict[str, Any]]:
    """The ``logprobs.content`` items of a streamed chat completion, in order."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "logprobs": True,
        "top_logprobs": top_logprobs,
        "max_tokens": max_tokens,
    }
    with http.stream("POST", "/chat/completions", json=body) as resp:
        if resp.status_code >= 400:
            resp.read()
            raise SystemExit(f"the model server answered {resp.status_code}: {resp.text[:500]}")
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            for choice in chunk.get("choices", [])[:1]:
                yield from (choice.get("logprobs") or {}).get("content") or []


def audit_stream(
    openai: httpx.Client,
    audit: AuditClient,
    model: str,
    prompt: str,
    *,
    max_tokens: int = 200,
    provider: str = "openai",
) -> dict[str, Any]:
    """Stream the completion into the audit; returns the audited session once final (tokens, alerts, summary).

    Raises ``uqclient.AuditTimeoutError`` when the auditor and alerter have not finished with it in time.
    """
    audit.start_audit(prompt, model, provider)
    for item in stream_chat(openai, model, prompt, max_tokens=max_tokens):
        audit.add_token(item)
        print(item.get("token", ""), end="", flush=True)
    print()
    return audit.finish(wait=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"))
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--prompt", default="Explain AI in two sentences.")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--gateway", default=os.environ.get("UQ_GATEWAY_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--gateway-key", default=os.environ.get("UQ_API_KEY"))
    args = parser.parse_args()
    key = os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with (
        httpx.Client(base_url=args.base_url, headers=headers, timeout=120) as openai,
        AuditClient(args.gateway, api_key=args.gateway_key) as audit,
    ):
        session = audit_stream(openai, audit, args.model, args.prompt, max_tokens=args.max_tokens)
    report(session)
    return 0


def report(session: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """Print the audited tokens, the alerts sent and the session's summary (final: finish waited for it)."""
    for token in session["tokens"]:
        m = token["metrics"]
        print(f"{token['seq']:4d} {token['text']!r:20} p={m['prob']} H={m['entropy']} hbar={m['hbar_s']}", file=out)
    for alert in session["alerts"]:
        print(f"ALERT {alert['rule']} at token {alert['token_seq']}: {alert['message']}", file=out)
    print("summary:", json.dumps(session["summary"]), file=out)


if __name__ == "__main__":
    raise SystemExit(main())
