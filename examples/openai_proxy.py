"""The gateway as an auditing proxy: the same question to an OpenAI-compatible server directly and
through the gateway in front of it; the answers are the same, and the proxied one is audited.

Run any OpenAI-compatible server, e.g. llama.cpp's on the embedded model::

    .venv/bin/python -m llama_cpp.server --model "$(.venv/bin/python -c 'from services.generator.hf.loading
        import embedded_gguf; print(embedded_gguf())')" --port 8000 --logits_all true --interrupt_requests false

put the stack in front of it (the generator on the upstream engine)::

    UQ_ENGINE=openai UQ_UPSTREAM_URL=http://127.0.0.1:8000/v1 ./start.sh

and compare::

    .venv/bin/python examples/openai_proxy.py --upstream http://127.0.0.1:8000/v1 --gateway http://127.0.0.1:8080/v1

It prints both answers, whether they are equal, and the audit session of the proxied one: its risk,
alerts and per-token metrics from the server's top-k (``coverage`` = how much of the distribution
the server showed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import httpx
from openai import OpenAI


def ask(client: OpenAI, model: str, prompt: str, max_tokens: int) -> tuple[str, int, str | None]:
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0.0,  # greedy: the same answer both ways
        top_p=1.0,
    )
    answer = raw.parse()
    tokens = answer.usage.completion_tokens if answer.usage else 0
    return answer.choices[0].message.content or "", tokens, raw.headers.get("x-uq-session-id")


def level(client: OpenAI, model: str) -> None:
    """A one-token request with another prompt: the server's prompt cache then holds nothing of ours."""
    client.completions.create(model=model, prompt="Reset.", max_tokens=1, temperature=0.0)


def session(gateway_root: str, api_key: str, sid: str) -> dict[str, Any]:
    """The audit session once its summary is in (the alerter sends it after the last token)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    deadline = time.monotonic() + 30
    while True:
        detail: dict[str, Any] = httpx.get(f"{gateway_root}/sessions/{sid}", headers=headers, timeout=10).json()
        if detail.get("summary") or time.monotonic() > deadline:
            return detail
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="http://127.0.0.1:8000/v1", help="the server's OpenAI base URL")
    parser.add_argument("--gateway", default="http://127.0.0.1:8080/v1", help="the gateway's /v1")
    parser.add_argument("--api-key", default=os.environ.get("UQ_API_KEY", "none"), help="a UQ_API_KEYS key")
    parser.add_argument("--prompt", default="Name three colours.")
    parser.add_argument("--max-tokens", type=int, default=40)
    args = parser.parse_args(argv)

    direct = OpenAI(base_url=args.upstream, api_key="none", max_retries=0)
    proxy = OpenAI(base_url=args.gateway, api_key=args.api_key, max_retries=0)
    model = proxy.models.list().data[0].id  # the server's model, as the gateway lists it
    # A server that reuses the previous request's KV cache (llama.cpp's does) computes the same prompt
    # twice in a row in a different batch split, which can flip a close greedy call: a different short
    # request before each question gives both the same start.
    level(direct, model)
    theirs, their_tokens, _ = ask(direct, model, args.prompt, args.max_tokens)
    level(direct, model)
    ours, our_tokens, sid = ask(proxy, model, args.prompt, args.max_tokens)
    print(f"model: {model}")
    print(f"direct ({their_tokens} tokens): {theirs!r}")
    print(f"proxy  ({our_tokens} tokens): {ours!r}")
    same = theirs == ours and their_tokens == our_tokens
    print("the same answer" if same else "DIFFERENT answers")
    if sid is None:
        print("the gateway named no audit session: is --gateway the gateway's /v1?")
        return 1
    root = args.gateway.removesuffix("/").removesuffix("/v1")
    detail = session(root, args.api_key, sid)
    risk = (detail.get("summary") or {}).get("risk") or (detail.get("risks") or [{}])[-1].get("level")
    print(f"audit session {sid}: risk {risk}, {len(detail.get('alerts') or [])} alerts; {root}/#/sessions/{sid}")
    for t in detail["tokens"][:12]:
        m = t.get("metrics") or {}
        print(
            f"  {t['text']!r:>14}  p={m.get('prob') or 0:.3f}  entropy≥{m.get('entropy') or 0:.2f} bits"
            f"  coverage={m.get('coverage') or 0:.2f}"
        )
    return 0 if same else 2


if __name__ == "__main__":
    sys.exit(main())
