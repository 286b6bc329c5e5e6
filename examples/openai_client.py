"""Talk to the gateway with the official ``openai`` package: every answer is a live-audited session.

Against ``./start.sh`` (the gateway on http://127.0.0.1:8080, no API key on loopback)::

    .venv/bin/python examples/openai_client.py --prompt "Explain AI"
    .venv/bin/python examples/openai_client.py --base-url http://gpu-box:8080/v1 --api-key "$UQ_KEY"

It streams a chat completion with ``logprobs`` (printing each token with its probability), then
fetches the audit session the answer named (``uq_session_id`` on every chunk, ``X-UQ-Session-Id``
on the response) and prints its risk, alerts and scores. Open the printed dashboard URL to see it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import httpx
from openai import OpenAI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1", help="the gateway's /v1")
    parser.add_argument("--api-key", default=os.environ.get("UQ_API_KEY", "none"), help="a UQ_API_KEYS key")
    parser.add_argument("--prompt", default="Explain AI in two sentences.")
    parser.add_argument("--max-tokens", type=int, default=60)
    args = parser.parse_args(argv)

    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    model = client.models.list().data[0].id
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": args.prompt}],
        max_tokens=args.max_tokens,
        temperature=0.7,
        logprobs=True,
        top_logprobs=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    session_id = stream.response.headers["X-UQ-Session-Id"]
    print(f"model {model}, audit session {session_id}\n")
    for chunk in stream:
        if chunk.usage is not None:
            print(f"\n\nusage: {chunk.usage.prompt_tokens} prompt + {chunk.usage.completion_tokens} completion tokens")
        for choice in chunk.choices:
            for item in (choice.logprobs.content or []) if choice.logprobs else []:
                sys.stdout.write(f"{item.token}[{math.exp(item.logprob):.2f}]")
                sys.stdout.flush()

    gateway = args.base_url.removesuffix("/v1")
    headers = {"Authorization": f"Bearer {args.api_key}"}
    detail = httpx.get(f"{gateway}/sessions/{session_id}", headers=headers, timeout=30).json()
    record = detail["session"]
    print(f"session {record['status']} ({record['reason']}), risk {record['risk']}, {len(detail['alerts'])} alerts")
    for alert in detail["alerts"][:5]:
        print(f"  {alert['severity']:8} {alert['rule']:18} at token {alert['token_seq']}: {alert['message']}")
    print(f"dashboard: {gateway}/#/sessions/{session_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
