"""Errors of the gateway, each rendered as one JSON shape: ``{"error": {"message", "type", "param"}}``.

UQError (services.common.errors)
└── ApiError                 an error a client caused or must know about; carries HTTP status and type
    ├── BadRequestError      400 bad_request: the request is well-formed JSON but makes no sense
    ├── UnauthorizedError    401 unauthorized: no API key, or a wrong one
    ├── NotFoundError        404 not_found: unknown session (carries the id as ``param``)
    ├── ConflictError        409 conflict: the session is in a state that forbids it (e.g. finished)
    ├── RateLimitedError     429 rate_limited: carries ``retry_after_s``
    └── UnavailableError     503 unavailable: a part the request needs is missing (Redis, the store) or
                             the auditors are too far behind to take more (carries ``retry_after_s``)

The WebSocket renders the same errors as ``{"type": "error", "message", "code"}`` messages.
"""

from __future__ import annotations

from services.common.errors import UQError


class ApiError(UQError):
    status = 500
    type = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, retry_after_s: float | None = None) -> None:
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s  # sent as Retry-After when set
        super().__init__(message)

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param}}


class BadRequestError(ApiError):
    status = 400
    type = "bad_request"


class UnauthorizedError(ApiError):
    status = 401
    type = "unauthorized"


class NotFoundError(ApiError):
    status = 404
    type = "not_found"


class ConflictError(ApiError):
    status = 409
    type = "conflict"


class RateLimitedError(ApiError):
    status = 429
    type = "rate_limited"


class UnavailableError(ApiError):
    status = 503
    type = "unavailable"


def error_body(message: str, type_: str, param: str | None = None) -> dict[str, dict[str, str | None]]:
    """The one JSON error shape, for errors that are not ApiError instances (validation, 404 routes, 413)."""
    return {"error": {"message": message, "type": type_, "param": param}}
