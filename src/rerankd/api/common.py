"""What every dialect shares: Bearer auth, the service handle, cancellation on client disconnect,
logging of unknown fields, error bodies; and the dialect-free routes (/health, /v1/models, /metrics).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from rerankd.errors import RerankdError, Unauthorized
from rerankd.models import ModelPool
from rerankd.service import RerankService

__all__ = [
    "ClientGone",
    "PoolDep",
    "ServiceDep",
    "cancel_on_disconnect",
    "error_body",
    "log_unknown_fields",
    "pool",
    "require_key",
    "router",
    "service",
    "timing_headers",
]

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


# -- dialect-free routes ------------------------------------------------------------------------

router = APIRouter()


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models_ready: int
    models_configured: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rerankd"
    kind: str
    status: str = Field(description="not_loaded | loading | ready | failed")
    error: str | None = Field(default=None, description="Why the model cannot be loaded, and how to fix it.")
    aliases: list[str] = Field(default_factory=list)
    source: str | None = None
    max_length: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.get("/health", response_model=Health, tags=["server"], summary="Liveness (no auth)")
async def health(models: PoolDep) -> Health:
    ready = sum(entry.status == "ready" for entry in models.entries.values())
    return Health(models_ready=ready, models_configured=len(models.entries))


@router.get(
    "/v1/models",
    response_model=ModelList,
    response_model_exclude_none=True,
    dependencies=[Depends(require_key)],
    tags=["server"],
    summary="Configured models, with kind and load status",
)
async def list_models(request: Request, models: PoolDep) -> ModelList:
    started = int(request.app.state.started_at)
    cards = []
    for entry in models.entries.values():
        scorer = entry.scorer
        max_length = getattr(getattr(scorer, "backend", None), "max_length", None) or entry.spec.max_length
        cards.append(
            ModelCard(
                id=entry.spec.name,
                created=started,
                kind=entry.spec.kind,
                status=entry.status,
                error=entry.error,
                aliases=list(entry.spec.aliases),
                source=entry.spec.source,
                max_length=max_length,
            )
        )
    return ModelList(data=cards)


@router.get("/metrics", dependencies=[Depends(require_key)], tags=["server"], summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    ready = sum(entry.status == "ready" for entry in request.app.state.pool.entries.values())
    request.app.state.metrics.models_ready.set(ready)
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


def timing_headers(timings: Any, began: float) -> dict[str, str]:
    """TEI-style headers that tell a caller where the time went, in milliseconds."""
    return {
        "x-total-time": f"{(time.perf_counter() - began) * 1000:.2f}",
        "x-tokenization-time": f"{timings.tokenization * 1000:.2f}",
        "x-queue-time": f"{timings.queue * 1000:.2f}",
        "x-inference-time": f"{timings.inference * 1000:.2f}",
    }
