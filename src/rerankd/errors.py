"""One exception tree for the whole server, and the HTTP status each maps to.

Everything below the API layer raises a :class:`RerankdError` subclass; ``app.py`` has the one
handler that renders it (in the caller's dialect). Messages are written for the user: they say
what was wrong and what to do next.

| exception            | status | when                                                      |
|----------------------|--------|-----------------------------------------------------------|
| InvalidRequest       | 422    | the body parsed but a field is missing, mistyped or empty |
| MalformedBody        | 400    | the body is not JSON                                      |
| InvalidText          | 400    | a string the server will not take (NUL, a long model name)|
| UnsupportedMediaType | 415    | Content-Type is not JSON                                  |
| Unauthorized         | 401    | missing or wrong Bearer key                               |
| PaymentRequired      | 402    | the key's budget cannot cover the call                    |
| Forbidden            | 403    | the key may not use this model, or is not an admin key    |
| ModelNotFound        | 404    | the requested model is not configured                     |
| RouteNotFound        | 404    | no such path (the message guesses the path meant)         |
| Conflict             | 409    | the server cannot do this in its state (e.g. reload)      |
| PayloadTooLarge      | 413    | too many documents, or the body is over the byte limit    |
| Overloaded           | 429    | the model's queue is full (Retry-After says when to retry)|
| RateLimited          | 429    | the key's requests or tokens per minute are used up       |
| ModelUnavailable     | 503    | the model is configured but cannot be loaded              |
| TransientFailure     | 503    | scoring failed in a way a retry may fix                   |
| DeadlineExceeded     | 503    | the request's deadline passed first (Retry-After)         |
| CircuitOpen          | 503    | an upstream failed repeatedly; it is skipped for a while  |
| UpstreamError        | 502    | an upstream answered in a way a retry will not fix        |

Each dialect renders errors in the shape its clients parse, one of :data:`ERROR_SHAPES`:
``openai`` ``{"error": {"message", "type", "code"}}`` (seed, Infinity, vLLM and most clients),
``message`` ``{"message"}`` (Cohere's SDKs), ``detail`` ``{"detail"}`` (Jina, Voyage) and ``tei``
``{"error", "error_type"}`` (text-embeddings-inference).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ValidationError

__all__ = [
    "ERROR_SHAPES",
    "CircuitOpen",
    "Conflict",
    "DeadlineExceeded",
    "DetailError",
    "ErrorShape",
    "Forbidden",
    "InvalidRequest",
    "InvalidText",
    "MalformedBody",
    "MessageError",
    "ModelNotFound",
    "ModelUnavailable",
    "OpenAIError",
    "Overloaded",
    "PayloadTooLarge",
    "PaymentRequired",
    "RateLimited",
    "RerankdError",
    "RouteNotFound",
    "TeiError",
    "TransientFailure",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "error_body",
    "settings_problems",
]


class RerankdError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidRequest(RerankdError):
    status = 422
    code = "invalid_request"


class MalformedBody(RerankdError):
    status = 400
    code = "malformed_body"


class InvalidText(RerankdError):
    """A string no part of the server should carry further: a NUL character (PostgreSQL refuses it), a
    model name over the length bound or with control characters (it would reach logs and the ledger)."""

    status = 400
    code = "invalid_text"


class UnsupportedMediaType(RerankdError):
    status = 415
    code = "unsupported_media_type"


class Unauthorized(RerankdError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class PaymentRequired(RerankdError):
    """Not 429: clients retry a 429, and a spent budget does not come back by waiting."""

    status = 402
    code = "budget_exhausted"


class Forbidden(RerankdError):
    status = 403
    code = "forbidden"


class Conflict(RerankdError):
    status = 409
    code = "conflict"


class ModelNotFound(RerankdError):
    status = 404
    code = "model_not_found"


class RouteNotFound(RerankdError):
    status = 404
    code = "not_found"


class PayloadTooLarge(RerankdError):
    status = 413
    code = "payload_too_large"


class Overloaded(RerankdError):
    status = 429
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class RateLimited(RerankdError):
    """A key's rpm or tpm is used up for this minute; the headers say the limits and when to retry."""

    status = 429
    code = "rate_limited"


class ModelUnavailable(RerankdError):
    status = 503
    code = "model_unavailable"


class TransientFailure(RerankdError):
    """A scoring attempt failed in a way that a retry may fix (the request's `retries` apply).

    ``retry_after`` is the wait the failing side asked for (an upstream's Retry-After), if any.
    """

    status = 503
    code = "transient_failure"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(RerankdError):
    """The request's deadline (``request_timeout``) came before its answer: work still queued was dropped
    uncomputed, and nothing is charged. Not retried, and no fallback is tried: no time is left."""

    status = 503
    code = "deadline_exceeded"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class CircuitOpen(RerankdError):
    """An upstream's circuit breaker is open: it is not called (nor retried) until its probe time."""

    status = 503
    code = "circuit_open"


class UpstreamError(RerankdError):
    """An upstream refused or garbled the call (a 4xx other than 429, or a body of the wrong shape)."""

    status = 502
    code = "upstream_error"


# -- how each dialect's clients expect an error to look ---------------------------------------------

ErrorShape = Literal["openai", "message", "detail", "tei"]


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    code: int


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


class MessageError(BaseModel):
    message: str


class DetailError(BaseModel):
    detail: str


class TeiError(BaseModel):
    error: str
    error_type: str


_TEI_ERROR_TYPES = {
    401: "Unauthorized",
    402: "Unauthorized",
    403: "Unauthorized",
    429: "Overloaded",
    503: "Unhealthy",
    500: "Backend",
}

ERROR_SHAPES: dict[ErrorShape, tuple[type[BaseModel], Callable[[RerankdError], BaseModel]]] = {
    "openai": (
        OpenAIError,
        lambda exc: OpenAIError(error=OpenAIErrorDetail(message=exc.message, type=exc.code, code=exc.status)),
    ),
    "message": (MessageError, lambda exc: MessageError(message=exc.message)),
    "detail": (DetailError, lambda exc: DetailError(detail=exc.message)),
    "tei": (
        TeiError,
        lambda exc: TeiError(error=exc.message, error_type=_TEI_ERROR_TYPES.get(exc.status, "Validation")),
    ),
}


def error_body(exc: RerankdError, shape: ErrorShape = "openai") -> dict[str, object]:
    """The JSON body of an error, in the shape a dialect's clients parse."""
    return ERROR_SHAPES[shape][1](exc).model_dump(mode="json")


def settings_problems(exc: ValidationError, kind: str | None = None) -> str:
    """What is wrong with settings (the config, a model's entry of ``kind``) as one line for whoever
    wrote them: ``; ``-separated, each naming its setting by its path."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown setting `{where}`" + (f" for kind {kind}" if kind else ""))
        elif err["type"] == "missing":
            problems.append(f"needs a `{where}`")
        else:
            # A validator's ValueError: its message is already the whole sentence.
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
