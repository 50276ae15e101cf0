"""What every route shares: Bearer auth, the service handle, the default model, cancellation on
client disconnect, logging of unknown fields, and timing headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from rerankd.service import RerankService
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
    "service",
    "timing_headers",
]

log = logging.getLogger(__name__)


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
