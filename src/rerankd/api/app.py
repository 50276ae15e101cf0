"""``create_app(settings)``: the FastAPI app, its lifespan, and the one error handler.

No process-global state: everything an app needs lives on ``app.state``, so several apps (tests,
a Ray Serve ingress) can live in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import rerankd
from rerankd import access, tracing
from rerankd.api.bounds import UnknownFields
from rerankd.api.common import ClientGone
from rerankd.api.routing import error_body_for, include_routes, route_not_found
from rerankd.config import ConfigError, Settings
from rerankd.errors import (
    Conflict,
    InvalidRequest,
    MalformedBody,
    PayloadTooLarge,
    RerankdError,
    UnsupportedMediaType,
    error_body,
)
from rerankd.serving.runtime import Reloaded, Runtime
from rerankd.web import include_pages

__all__ = ["create_app"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("rerankd.access")


class _BodyTooLarge(Exception):
    pass


class RequestId:
    """Gives every HTTP request an id, in ``request.state.request_id`` and the ``x-request-id`` header of
    its answer, errors included; the ledger keeps it, so a client's complaint finds its row."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())],
                }
            await send(message)

        await self.app(scope, receive, with_id)


class AccessLog:
    """One access line per request (``--log-format json``): the request and, for rerank calls, what the
    service noted of it (``rerankd.access``), logged on ``rerankd.access`` once the answer is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = access.AccessRecord(scope["state"]["request_id"], scope["method"], scope["path"])
        record.trace_id = tracing.trace_id()  # inside the request's span (Traced), when tracing is on
        began = time.perf_counter()

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = int(message["status"])
            await send(message)

        try:
            with access.recording(record):
                await self.app(scope, receive, noting)
        finally:
            record.seconds = round(time.perf_counter() - began, 6)
            record.status = record.status or 499  # no answer started: the client went away first
            access_log.info(
                "%s %s %d", record.method, record.path, record.status, extra={"access": record.fields()}
            )


class Traced:
    """A span for every HTTP request while tracing is on (``rerankd.tracing``), a child of the caller's trace
    when its ``traceparent`` header names one; the service's spans (attempts, admission, tokenizing, queue
    wait, forward passes, upstream calls, settlement) are its children."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: int | None = None

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with tracing.request(scope["method"], scope["path"], scope["headers"]) as span:
            span.set("rerankd.request_id", scope["state"]["request_id"])
            try:
                await self.app(scope, receive, noting)
            finally:
                # Named by its route (a configured path), never by the path a client sent.
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    span.rename(f"{scope['method']} {route}")
                    span.set("http.route", route)
                span.set("http.response.status_code", status)
                if status is not None and status >= 500:  # a server span fails on 5xx only
                    span.fail(str(status))


class RequestGuard:
    """Rejects non-JSON POST bodies (415) and bodies over the byte limit (413) before parsing."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"content-type" not in headers:
            # A body sent without Content-Type is read as JSON, as most rerank servers do.
            scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if content_type and not (content_type == "application/json" or content_type.endswith("+json")):
            await _send_error(
                send,
                UnsupportedMediaType(
                    f"Content-Type {content_type!r} is not supported; send a JSON body with "
                    "`Content-Type: application/json`"
                ),
            )
            return
        too_large = PayloadTooLarge(
            f"request body is larger than this server's limit of {self.max_bytes} bytes; "
            "send fewer or shorter documents per request"
        )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_error(send, too_large)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_error(send, too_large)


async def _send_error(send: Send, exc: RerankdError) -> None:
    response = JSONResponse(error_body(exc), status_code=exc.status, headers=exc.headers)
    await send(
        {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})


# Pydantic's words for the usual mistakes, in the client's terms: never the names of rerankd's classes.
_PLAIN = {
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "missing": "is required",
}
# A union's members appear in an error's location by their type (`str`, `TextDocument`, `dict[str,any]`).
_MEMBER = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|[A-Z]\w*)$")


def _validation_error(exc: RequestValidationError) -> RerankdError:
    errors: list[Any] = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return MalformedBody('request body is not valid JSON; send a JSON object such as {"model": ...}')
    problems: dict[str, list[str]] = {}  # location -> what is wrong there (a union's members: each)
    for err in errors:
        parts = [str(part) for part in err.get("loc", ()) if part != "body"]
        location = ".".join(part for part in parts if not _MEMBER.match(part)) or "body"
        message = _PLAIN.get(str(err.get("type")), str(err.get("msg", "invalid")))
        if message not in problems.setdefault(location, []):
            problems[location].append(message)
    lines = [
        f"{location}: " + " or ".join(m.removeprefix("must be ") if i else m for i, m in enumerate(messages))
        if all(m.startswith("must be ") for m in messages)
        else f"{location}: " + "; ".join(messages)
        for location, messages in problems.items()
    ]
    more = f" (and {len(lines) - 5} more)" if len(lines) > 5 else ""
    return InvalidRequest("invalid request: " + "; ".join(lines[:5]) + more)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RerankdError)
    async def on_rerankd_error(request: Request, exc: RerankdError) -> JSONResponse:
        return JSONResponse(error_body_for(request, exc), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await on_rerankd_error(request, _validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = RerankdError(str(exc.detail))
        error.status, error.code = exc.status_code, "http_error"
        if exc.status_code == 404:
            error = route_not_found(request)
        elif exc.status_code == 400:  # FastAPI could not parse the body (e.g. nested too deep)
            error = MalformedBody(f"request body could not be parsed as JSON ({exc.detail})")
        return JSONResponse(error_body_for(request, error), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ClientGone)
    async def on_client_gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this handler outside every middleware, RequestId included: the id is added here.
        request_id = getattr(request.state, "request_id", None)
        log.exception("unexpected error on %s %s (request %s)", request.method, request.url.path, request_id)
        error = RerankdError(f"internal error ({type(exc).__name__}); the server log has the details")
        headers = {"x-request-id": request_id} if request_id else None
        return JSONResponse(error_body_for(request, error), status_code=500, headers=headers)


async def reload(app: FastAPI) -> Reloaded:
    """Re-read the config the server started from and serve it from the next call (SIGHUP and
    ``POST /admin/reload``). An invalid config is refused with its reason, and the running one kept."""
    read: Callable[[], Settings] | None = app.state.read_settings
    if read is None:
        raise Conflict(
            "this server was not started from a config it can read again (only `rerankd serve` is)"
        )
    try:
        settings = read()
    except ConfigError as exc:
        log.error("reload refused, the running config is kept: %s", exc)
        raise InvalidRequest(f"reload refused, the running config is kept: {exc}") from None
    done: Reloaded = app.state.runtime.reload(settings)
    app.state.settings = app.state.runtime.settings
    log.info(
        "reloaded: models added %s, changed %s (served by their old version until ready), removed %s "
        "(drained), kept %s%s",
        list(done.added),
        list(done.changed),
        list(done.removed),
        list(done.kept),
        f"; these settings wait for a restart: {', '.join(done.needs_restart)}" if done.needs_restart else "",
    )
    return done


def _on_sighup(app: FastAPI) -> None:
    async def reload_logged() -> None:
        with contextlib.suppress(RerankdError):  # refused: logged with its reason by reload()
            await reload(app)

    task = asyncio.ensure_future(reload_logged())
    app.state.reloading = task  # held until done: the loop keeps tasks only weakly


def create_app(settings: Settings, *, read_settings: Callable[[], Settings] | None = None) -> FastAPI:
    """The app over ``settings``; ``read_settings`` reads the config again for a reload (SIGHUP,
    ``POST /admin/reload``), as ``rerankd serve`` read it at start."""
    runtime = Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The database migrated, holds past their deadline released (and swept from now on), models preloaded.
        await runtime.start()
        if settings.require_ready:
            readiness = await runtime.readiness()
            if not readiness.ready:
                # uvicorn reports a failed start-up and exits non-zero: what require_ready asks for.
                await runtime.stop()
                raise RuntimeError("require_ready: not ready: " + "; ".join(readiness.reasons))
        if not settings.api_keys and not settings.admin_keys and not settings.metered:
            log.warning("no api_keys configured: every client is accepted without authentication")
        hangup = read_settings is not None and hasattr(signal, "SIGHUP")
        if hangup:
            try:
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _on_sighup, app)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread: POST /admin/reload
                hangup = False
        yield
        if hangup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await runtime.stop()

    app = FastAPI(
        title="rerankd",
        version=rerankd.__version__,
        description="Self-hosted rerank API server and gateway. POST /v1/rerank ranks documents by "
        "relevance to a query with the model you name; GET /v1/models lists the models. The same service "
        "speaks the Cohere (v1, v2), Jina, Voyage, TEI, Infinity and vLLM rerank formats, each under its own "
        "prefix (/cohere/v2/rerank, /jina/v1/rerank, /tei/rerank, ...). Try the models side by side in the "
        "[playground](/playground).",
        lifespan=lifespan,
        # /docs and /redoc are served by rerankd.web from local assets (FastAPI's load them from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = runtime.metrics
    app.state.runtime = runtime
    app.state.read_settings = read_settings
    app.state.reload = lambda: reload(app)  # for POST /admin/reload, which cannot import this module
    app.state.service = runtime.service
    app.state.unknown_fields = UnknownFields()
    app.state.started_at = time.time()
    include_routes(app, settings)
    include_pages(app)
    _install_error_handlers(app)
    app.add_middleware(RequestGuard, max_bytes=settings.max_request_bytes)
    if settings.log_format == "json":
        app.add_middleware(AccessLog)  # inside RequestId: it knows the request's id
    if tracing.on():
        app.add_middleware(Traced)  # outside AccessLog: its line has the trace id
    app.add_middleware(RequestId)  # outermost: every answer carries its id
    return app
