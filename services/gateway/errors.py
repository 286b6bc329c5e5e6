"""Errors of the gateway, each rendered as one JSON shape: ``{"error": {"message", "type", "param"}}``.

UQError (services.common.errors)
└── ApiError                 an error a client caused or must know about; carries HTTP status and type
    ├── InvalidJsonError     400 invalid_json: the body is not JSON, or nests too deep
    ├── BadRequestError      400 bad_request: the request is well-formed JSON but makes no sense
    ├── UnauthorizedError    401 unauthorized: no API key, or a wrong one
    ├── NotFoundError        404 not_found: unknown session (carries the id as ``param``)
    │   └── ModelNotFoundError  404 model_not_found: ``/v1`` names a model this deployment does not serve
    ├── ConflictError        409 conflict: the session is in a state that forbids it (e.g. finished)
    ├── InvalidRequestError  422 invalid_request: a field fails validation (see :func:`invalid`)
    ├── SessionCancelledError 409 cancelled: a ``/v1`` completion whose session was cancelled (by someone else)
    ├── RateLimitedError     429 rate_limited: carries ``retry_after_s``
    ├── GenerationFailedError 500 generation_failed: a ``/v1`` completion whose session failed (the reason)
    └── UnavailableError     503 unavailable: a part the request needs is missing (Redis, the store) or
                             the auditors are too far behind to take more (carries ``retry_after_s``)

Under ``/v1`` the same errors are rendered in OpenAI's shape (services.gateway.openai_api.openai_error).
The WebSocket sends the same body in its ``error`` message: ``{"type": "error", "error": {…}}``.
Validation errors of REST bodies, push tokens and WebSocket messages alike become an ApiError through
:func:`invalid`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.common.errors import UQError
from services.common.validation import MISSING, summarise


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


class InvalidJsonError(ApiError):
    status = 400
    type = "invalid_json"


class UnauthorizedError(ApiError):
    status = 401
    type = "unauthorized"


class NotFoundError(ApiError):
    status = 404
    type = "not_found"


class ConflictError(ApiError):
    status = 409
    type = "conflict"


class ModelNotFoundError(NotFoundError):
    type = "model_not_found"


class SessionCancelledError(ConflictError):
    type = "cancelled"


class GenerationFailedError(ApiError):
    status = 500
    type = "generation_failed"


class InvalidRequestError(ApiError):
    status = 422
    type = "invalid_request"


class RateLimitedError(ApiError):
    status = 429
    type = "rate_limited"


class UnavailableError(ApiError):
    status = 503
    type = "unavailable"


def invalid(
    errors: Sequence[Mapping[str, Any]],
    *,
    root: Any = MISSING,
    request: bool = False,
    under: str | None = None,
    error: type[ApiError] = InvalidRequestError,
) -> ApiError:
    """The one rendering of a validation failure (pydantic's ``errors()``) for a client.

    ``root``: what was validated, so the path in ``param`` is the one the sender wrote
    (services.common.validation.summarise); ``request``: FastAPI's errors (their path starts with
    ``body``); ``under``: where the validated part sits in the sender's body (``tokens.3``).
    """
    problem = summarise(errors, root=root, root_param="body", request=request, under=under)
    return error(problem.message, param=problem.param)


def error_body(message: str, type_: str, param: str | None = None) -> dict[str, dict[str, str | None]]:
    """The one JSON error shape, for errors that are not ApiError instances (validation, 404 routes, 413)."""
    return {"error": {"message": message, "type": type_, "param": param}}
