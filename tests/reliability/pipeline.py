"""What the reliability tests share: a scripted token sequence pushed through the push API, and the
counts of what came out of the real pipeline (``uq:audits``, ``uq:alerts``, the recorder's database)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tests.stack import Stack

VOCAB = 32


def script(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` push-API tokens with full logits over a 32-token vocabulary: mostly confident, with
    flat stretches and unlikely picks, so that every built-in rule fires somewhere. Same seed, same tokens."""
    rng = np.random.default_rng(seed)
    tokens = []
    for i in range(n):
        flat = (i // 25) % 3 == 2  # every third stretch of 25 tokens is uncertain
        logits = rng.normal(0.0, 0.6 if flat else 4.0, VOCAB)
        best = int(np.argmax(logits))
        pick = int(rng.integers(VOCAB)) if flat or rng.random() < 0.08 else best
        tokens.append({"text": f" t{i}", "token_id": pick, "logits": [round(float(x), 2) for x in logits]})
    return tokens


async def start_session(client: httpx.AsyncClient, model: str = "scripted") -> str:
    resp = await client.post("/push/sessions", json={"model": model, "provider": "reliability"})
    assert resp.status_code == 201, resp.text
    sid: str = resp.json()["session_id"]
    return sid


async def push(client: httpx.AsyncClient, sid: str, tokens: list[dict[str, Any]]) -> None:
    resp = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": tokens})
    assert resp.status_code == 202, resp.text


async def finish(client: httpx.AsyncClient, sid: str) -> None:
    resp = await client.post(f"/push/sessions/{sid}/finish", json={"status": "finished", "reason": "stop"})
    assert resp.status_code == 200, resp.text


async def run_script(
    client: httpx.AsyncClient,
    tokens: list[dict[str, Any]],
    *,
    batch: int = 20,
    pause_s: float = 0.02,
    between: Callable[[int], Awaitable[None]] | None = None,
) -> str:
    """Push ``tokens`` in batches as one session and finish it; ``between(i)`` runs after batch ``i``."""
    sid = await start_session(client)
    for i, start in enumerate(range(0, len(tokens), batch)):
        await push(client, sid, tokens[start : start + batch])
        if between is not None:
            await between(i)
        await asyncio.sleep(pause_s)  # pacing on purpose: a producer sending batches, not one burst
    await finish(client, sid)
    return sid


async def entries(redis: Redis, stack: Stack, stream: str, sid: str) -> list[dict[str, Any]]:
    """The JSON of every entry of ``sid`` on ``stream``, in stream order."""
    needle = sid.encode()
    out: list[dict[str, Any]] = []
    last = "-"
    while True:
        chunk: list[Any] = list(await redis.xrange(stack.key(stream, sid), min=last, max="+", count=5_000) or [])
        if last != "-":
            chunk = chunk[1:]
        if not chunk:
            return out
        for _eid, fields in chunk:
            data = fields.get(b"data", b"")
            if needle in data:
                try:
                    event = json.loads(data)
                except ValueError:  # a third party's garbage
                    continue
                if event["session_id"] == sid:
                    out.append(event)
        last = chunk[-1][0].decode()


def recorded(stack: Stack, sid: str) -> dict[str, Any]:
    """What the recorder wrote for ``sid``: token seqs, alert rows (without times), the summary."""
    db = sqlite3.connect(f"file:{stack.dir}/uq.sqlite3?mode=ro", uri=True, timeout=30)
    try:
        seqs = [r[0] for r in db.execute("SELECT seq FROM tokens WHERE session_id = ? ORDER BY seq", (sid,))]
        alerts = [r[0] for r in db.execute("SELECT seq FROM alerts WHERE session_id = ? ORDER BY seq", (sid,))]
        summaries = db.execute("SELECT COUNT(*) FROM summaries WHERE session_id = ?", (sid,)).fetchone()[0]
        row = db.execute("SELECT status, tokens FROM sessions WHERE session_id = ?", (sid,)).fetchone()
    except sqlite3.OperationalError:  # the recorder has not created its tables yet
        return {"tokens": [], "alerts": [], "summaries": 0, "status": None}
    finally:
        db.close()
    return {"tokens": seqs, "alerts": alerts, "summaries": summaries, "status": row[0] if row else None}


def comparable(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerter's entries without what differs between two runs of the same tokens."""
    return [{k: v for k, v in e.items() if k not in ("ts_ns", "session_id")} for e in alerts]


async def outcome(redis: Redis, stack: Stack, sid: str, n: int, wait_s: float = 90.0) -> dict[str, Any]:
    """Wait until ``sid``'s ``n`` tokens are audited, summarised by the alerter and recorded (or
    ``wait_s`` passed), then return everything that came out for it."""
    deadline = time.monotonic() + wait_s
    while True:
        audits = await entries(redis, stack, "audits", sid)
        alerts = await entries(redis, stack, "alerts", sid)
        rec = recorded(stack, sid)
        summarised = any(a["type"] == "summary" for a in alerts)
        if (
            len({a["seq"] for a in audits}) >= n
            and summarised
            and len(rec["tokens"]) >= n
            and rec["summaries"] >= 1
            and len(rec["alerts"]) >= sum(a["type"] in ("alert", "risk") for a in alerts)  # what the recorder keeps
        ) or time.monotonic() > deadline:
            return {"audits": Counter(a["seq"] for a in audits), "alerts": alerts, "recorded": rec}
        await asyncio.sleep(0.3)


async def pending(redis: Redis, stack: Stack) -> dict[str, int]:
    """Entries pending (delivered, not acknowledged) or not yet read, per stream and group."""
    out: dict[str, int] = {}
    for stream in ("tokens", "audits", "alerts", "sessions"):
        for key in stack.keys(stream):
            try:
                groups = await redis.xinfo_groups(key)
            except ResponseError:  # no such stream yet
                continue
            last = (await redis.xinfo_stream(key))["last-generated-id"]
            for g in groups:
                # Redis keeps counting entries trimmed before a group read them as lag; a group that has
                # read the last entry has nothing left to read.
                lag = 0 if g["last-delivered-id"] == last else int(g.get("lag") or 0)
                name = f"{stream}/{g['name'].decode()}"
                out[name] = out.get(name, 0) + int(g["pending"]) + lag
    return out
