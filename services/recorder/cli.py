"""Command line of the recorder.

    python -m services.recorder                         run the recorder service
    python -m services.recorder migrate                 bring the database schema up to date, then exit
    python -m services.recorder export --session ID [--format jsonl|csv] [--out FILE]
    python -m services.recorder export --since ISO [--until ISO] [--format jsonl|csv] [--out FILE]

The database is ``UQ_DATABASE_URL`` (or ``--database-url``). Times are ISO 8601 (``2026-11-25``,
``2026-11-25T14:00:00+01:00``); without a zone they are UTC. A time range selects the sessions
created in [since, until).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from services.common.errors import UQError
from services.recorder.errors import ExportError
from services.recorder.export import EXPORT_FORMATS
from services.recorder.settings import RecorderSettings
from services.recorder.store import Store


def parse_time(value: str) -> int:
    """ISO 8601 date or date-time → ns since the epoch (UTC when no zone is given)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date or time, e.g. 2026-11-25T14:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m services.recorder", description="The audit trail recorder.")
    sub = root.add_subparsers(dest="command")
    migrate = sub.add_parser("migrate", help="apply the database migrations and exit")
    migrate.add_argument("--database-url", help="default: UQ_DATABASE_URL")
    export = sub.add_parser("export", help="export one session or a time range to JSONL or CSV")
    export.add_argument("--database-url", help="default: UQ_DATABASE_URL")
    scope = export.add_mutually_exclusive_group(required=True)
    scope.add_argument("--session", help="the session to export")
    scope.add_argument("--since", type=parse_time, help="sessions created at or after this time (ISO 8601)")
    export.add_argument("--until", type=parse_time, help="sessions created before this time (ISO 8601)")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl")
    export.add_argument("--out", help="file to write; default: standard output")
    return root


async def _export(store: Store, args: argparse.Namespace, out: TextIO) -> int:
    await store.migrate()
    if args.session is not None and await store.get_session(args.session) is None:
        print(f"no session {args.session!r} in the audit trail", file=sys.stderr)
        return 1
    async for chunk in store.export(session_id=args.session, since_ns=args.since, until_ns=args.until, fmt=args.format):
        out.write(chunk)
    return 0


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    url = args.database_url or RecorderSettings().database_url
    store = Store.from_url(url)
    try:
        if args.command == "migrate":
            await store.migrate()
            return 0
        return await _export(store, args, out)
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command is None:
        from services.common.runner import run_service
        from services.recorder.service import main as service_main

        run_service("recorder", RecorderSettings, service_main)
        return 0
    if args.command == "export" and args.until is not None and args.since is None:
        parser().error("--until needs --since")
    try:
        with contextlib.ExitStack() as stack:
            out = sys.stdout
            if getattr(args, "out", None):
                out = stack.enter_context(open(args.out, "w", encoding="utf-8", newline=""))
            return asyncio.run(_run(args, out))
    except (UQError, ExportError, OSError) as exc:
        print(f"recorder: {exc}", file=sys.stderr)
        return 2
