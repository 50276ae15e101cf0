"""What every dialect shares: Bearer auth, the service handle, the default model, ``{text}``
documents, cancellation on client disconnect, logging of unknown fields, timing headers, and the
OpenAI-style error body that most dialects use.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from rerankd.errors import RerankdError, Unauthorized
from rerankd.models import ModelPool
from rerankd.service import RerankService
from rerankd.types import RerankRequest, RerankResponse, Timings

__all__ = [
    "RERANK_ERRORS",
    "ClientGone",
    "DialectRequest",
    "PoolDep",
    "ServiceDep",
    "TextDocument",
    "all_if_zero",
    "cancel_on_disconnect",
    "default_model",
    "error_body",
    "log_unknown_fields",
    "pool",
    "require_key",
    "rerank",
    "service",
    "text_of",
    "timing_headers",
]

# Documented on every rerank route of every dialect.
RERANK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON"},
    401: {"description": "Missing or wrong API key"},
    404: {"description": "Unknown model (the message lists the available ones)"},
    413: {"description": "Too many documents, or the body is too large"},
    415: {"description": "Content-Type is not JSON"},
    422: {"description": "Invalid input (the message names the field)"},
    429: {"description": "The model is overloaded; Retry-After says when to come back"},
    503: {"description": "The model cannot be loaded (the message says how to fix it), or scoring failed"},
}

log = logging.getLogger(__name__)


class ClientGone(Exception):
    """The client disconnected before its answer was ready; its work was cancelled."""


def service(request: Request) -> RerankService:
    svc: RerankService = request.app.state.service
    return svc


def pool(request: Request) -> ModelPool:
    models: ModelPool = request.app.state.pool
    return models


ServiceDep = Annotated[RerankService, Depends(service)]
PoolDep = Annotated[ModelPool, Depends(pool)]


def require_key(request: Request) -> None:
    """Check ``Authorization: Bearer KEY`` against the configured keys, in constant time."""
    keys: list[str] = request.app.state.settings.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API key: send the header `Authorization: Bearer <key>`")
    token_bytes = token.strip().encode()
    # Compare against every key, so the time taken does not tell which key came close.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token_bytes, key.encode())
    if not matched:
        raise Unauthorized("invalid API key: check the key in `Authorization: Bearer <key>`")


class DialectRequest(BaseModel):
    """Fields every dialect accepts beyond its own: unknown fields are kept (and logged), not refused."""

    model_config = ConfigDict(extra="allow")

    instruction: str | None = Field(
        default=None,
        description="The task, for LLM rerankers such as Qwen3-Reranker; other models ignore it.",
    )
    raw_scores: bool = Field(default=False, description="Skip the sigmoid of one-label cross-encoders.")


class TextDocument(BaseModel):
    """A document given as an object: ``text`` is ranked, other fields are kept and echoed back."""

    model_config = ConfigDict(extra="allow")
    text: str


def text_of(document: str | TextDocument) -> str:
    return document if isinstance(document, str) else document.text


def all_if_zero(top: int | None) -> int | None:
    """Clients send 0 or null for "all of them"; a negative count is left for the service to refuse."""
    return None if top == 0 else top


def default_model(request: Request, model: str | None) -> str:
    """The model a request names, or the server's default (for dialects whose clients send none)."""
    if model:
        return model
    settings = request.app.state.settings
    if settings.default_model:
        return str(settings.default_model)
    return str(settings.models[0].name) if settings.models else ""


async def rerank(
    request: Request, dialect: str, body: BaseModel, internal: RerankRequest
) -> tuple[RerankResponse, dict[str, str]]:
    """Run one rerank call for a dialect's endpoint: log unknown fields, cancel on disconnect."""
    began = time.perf_counter()
    log_unknown_fields(request, dialect, body)
    svc: RerankService = request.app.state.service
    response: RerankResponse = await cancel_on_disconnect(request, svc.rerank(internal))
    headers = timing_headers(response.timings, began)
    headers["x-rerankd-served-by"] = response.model
    return response, headers


def error_body(exc: RerankdError) -> dict[str, Any]:
    """The OpenAI-style error body that the seed gateways and most clients parse."""
    return {"error": {"message": exc.message, "type": exc.code, "code": exc.status}}


def log_unknown_fields(request: Request, dialect: str, body: BaseModel) -> None:
    """Unknown fields are accepted (clients send extras) and logged once per field name."""
    extra = body.model_extra or {}
    seen: set[tuple[str, str]] = request.app.state.unknown_fields
    for name in extra:
        if (dialect, name) not in seen:
            seen.add((dialect, name))
            log.warning("ignoring unknown field %r in %s rerank requests (logged once)", name, dialect)


async def cancel_on_disconnect(request: Request, work: Awaitable[Any]) -> Any:
    """Await ``work``, cancelling it if the client disconnects first (so queued pairs are dropped)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        raise ClientGone()
    return task.result()


def timing_headers(timings: Timings, began: float) -> dict[str, str]:
    """TEI-style headers that tell a caller where the time went, in milliseconds."""
    return {
        "x-total-time": f"{(time.perf_counter() - began) * 1000:.2f}",
        "x-tokenization-time": f"{timings.tokenization * 1000:.2f}",
        "x-queue-time": f"{timings.queue * 1000:.2f}",
        "x-inference-time": f"{timings.inference * 1000:.2f}",
    }
