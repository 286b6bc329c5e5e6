"""Errors of the recorder and its store.

UQError (services.common.errors)
└── RecorderError                 every error of the audit trail
    ├── DatabaseUnavailableError  the database cannot be reached or opened (carries the URL, how to fix it)
    ├── MigrationError            the schema cannot be brought up to date (carries the URL and the cause)
    ├── SchemaNotReadyError       a reader found the schema at another revision than it reads (the recorder migrates it)
    └── ExportError               an export was asked for wrongly (unknown format, bad time range)
"""

from __future__ import annotations

from services.common.errors import UQError


class RecorderError(UQError):
    """Base of the recorder's errors."""


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


class DatabaseUnavailableError(RecorderError):
    def __init__(self, url: str, cause: BaseException | None = None) -> None:
        self.url = _redact(url)
        self.cause = cause
        super().__init__(
            f"the audit trail database is not reachable at {self.url} ({cause or 'no answer'}) — start it, "
            "or set UQ_DATABASE_URL (e.g. sqlite:///data/uq.sqlite3 or postgresql+psycopg://postgres@127.0.0.1/uq)"
        )


class MigrationError(RecorderError):
    def __init__(self, url: str, cause: BaseException) -> None:
        self.url = _redact(url)
        self.cause = cause
        super().__init__(
            f"cannot migrate the audit trail schema at {self.url}: {cause} — check that the database user may "
            "create tables, or that the database was not created by a newer version of this system"
        )


class SchemaNotReadyError(RecorderError):
    def __init__(self, url: str, current: str | None, head: str) -> None:
        self.url = _redact(url)
        self.current, self.head = current, head
        where = "has no audit trail tables yet" if current is None else f"is at schema revision {current}"
        super().__init__(
            f"the database at {self.url} {where}, and this code reads revision {head}: the recorder creates and "
            "migrates the schema; start the recorder (or run `python -m services.recorder migrate`) and try again"
        )


class ExportError(RecorderError):
    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)
