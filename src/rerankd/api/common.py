"""What every route shares: Bearer auth, the service handle, the default model, cancellation on
client disconnect, logging of unknown fields, and timing headers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from rerankd.api.bounds import UnknownFields
from rerankd.serving.service import RerankService
from rerankd.types import ANONYMOUS, Caller, Timings

__all__ = [
    "ClientGone",
    "ServiceDep",
    "caller",
    "cancel_on_disconnect",
    "default_model",
    "log_unknown_fields",
    "request_id",
    "require_admin",
    "require_key",
    "require_metrics",
    "require_reader",
    "service",
    "timing_headers",
]


class ClientGone(Exception):
    """The client disconnected before its answer was ready; its work was cancelled."""


def service(request: Request) -> RerankService:
    svc: RerankService = request.app.state.service
    return svc


ServiceDep = Annotated[RerankService, Depends(service)]


async def require_key(request: Request) -> None:
    """The caller of ``Authorization: Bearer KEY`` (a static or managed client key), kept on the request."""
    svc: RerankService = request.app.state.service
    request.state.caller = await svc.authenticate(request.headers.get("authorization"))


async def require_reader(request: Request) -> None:
    """For what lists models: a client key (kept as the caller, who sees the models it may use) or an
    admin key (an operator, who sees every model and its settings)."""
    svc: RerankService = request.app.state.service
    request.state.caller = await svc.meter.authenticate_reader(request.headers.get("authorization"))


async def require_metrics(request: Request) -> None:
    """``/metrics`` counts every tenant's calls: an admin key or a key of ``metrics_keys`` only."""
    svc: RerankService = request.app.state.service
    await svc.meter.authenticate_metrics(request.headers.get("authorization"))


def require_admin(request: Request) -> None:
    """Only a key of ``admin_keys`` opens the admin API; client keys never do."""
    svc: RerankService = request.app.state.service
    svc.meter.authenticate_admin(request.headers.get("authorization"))


def request_id(request: Request) -> str:
    """This request's id (sent back as ``x-request-id`` and kept in the ledger)."""
    found: str = request.state.request_id
    return found


def caller(request: Request) -> Caller:
    found: Caller = getattr(request.state, "caller", ANONYMOUS)
    return found


def default_model(request: Request) -> str:
    """The server's default model, for dialects whose clients send none."""
    settings = request.app.state.settings
    if settings.default_model:
        return str(settings.default_model)
    return str(settings.models[0].name) if settings.models else ""


def log_unknown_fields(request: Request, dialect: str, body: BaseModel) -> None:
    """Unknown fields are accepted (clients send extras) and logged once per field name, boundedly."""
    unknown: UnknownFields = request.app.state.unknown_fields
    unknown.report(dialect, body.model_extra or {})


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
