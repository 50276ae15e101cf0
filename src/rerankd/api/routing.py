"""Every HTTP path and the dialect that answers it — the one table to read to find where a request goes.

| path                                   | dialect                                        |
|----------------------------------------|------------------------------------------------|
| /v1/rerank                             | ``v1_dialect`` (default seed: see sniff_v1)    |
| /v2/rerank                             | Cohere v2                                      |
| /rerank                                | TEI when the body has ``texts``, else vLLM     |
| /info                                  | TEI's server info                              |
| /seed/v1/rerank                        | seed (api/seed.py)                             |
| /cohere/v1/rerank, /cohere/v2/rerank   | Cohere v1, v2 (api/cohere.py)                  |
| /jina/v1/rerank                        | Jina (api/jina.py)                             |
| /voyage/v1/rerank                      | Voyage AI (api/voyage.py)                      |
| /tei/rerank, /tei/info                 | text-embeddings-inference (api/tei.py)         |
| /infinity/rerank                       | Infinity (api/infinity.py)                     |
| /vllm/rerank, /vllm/v1/rerank, /vllm/v2/rerank | vLLM (api/vllm.py)                     |
| /health, /v1/models, /metrics          | api/server.py                                  |
| /v1/usage, /admin/keys, /admin/usage   | api/admin.py (keys and usage; admin keys only) |
| /playground, /docs, /redoc (GET pages) | rerankd/web/ (no dialect; see web/pages.py)    |

A prefixed path lets a client's base URL pick its dialect (each dialect's ``paths``); the bare paths
serve the clients that force a path. Every rerank route runs the same endpoint (``dialect.answer``).
Errors are rendered in the shape of the dialect that was asked (``error_body_for``); a path that
repeats its version (``/v1/v1/rerank``, from a base URL that already ends in ``/v1``) gets a 404 that
names the path meant and the base URL to configure.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from rerankd.api import DIALECTS, admin, cohere, server, tei, vllm, voyage
from rerankd.api.common import require_key
from rerankd.api.dialect import Dialect, Endpoint, answer, endpoint_for, error_responses, route_options
from rerankd.config import ConfigError, Settings
from rerankd.errors import MalformedBody, RerankdError, RouteNotFound, error_body
from rerankd.redaction import redact

__all__ = ["error_body_for", "include_routes", "likely_path", "route_not_found", "sniff_v1"]


def error_body_for(request: Request, exc: RerankdError) -> Any:
    """The error body in the shape the asked dialect's clients parse (OpenAI-style by default)."""
    dialect: Dialect[Any] | None = getattr(request.state, "dialect", None)
    if dialect is None:
        dialect = request.app.state.endpoint_dialects.get(request.scope.get("endpoint"))
    # The last gate before a client: whatever an error quotes (an upstream's answer, a request's text) is
    # redacted here too.
    shown = copy.copy(exc)
    shown.message = redact(exc.message)
    return error_body(shown, dialect.errors if dialect else "openai")


def _validated(dialect: Dialect[Any], request: Request, data: Any) -> Any:
    request.state.dialect = dialect
    try:
        return dialect.request.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        ) from exc


async def _read_json(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"request body is not valid JSON ({exc}); send a JSON object") from exc
    except RecursionError as exc:
        raise MalformedBody("request body is nested too deeply; send a flat JSON object") from exc


async def bare_rerank(request: Request) -> Response:
    """``/rerank``: TEI clients send ``texts``, vLLM and Infinity clients send ``documents``."""
    data = await _read_json(request)
    dialect = tei.DIALECT if isinstance(data, dict) and "texts" in data else vllm.DIALECT
    return await answer(dialect, _validated(dialect, request, data), request)


def sniff_v1(request: Request, data: Any) -> Dialect[Any]:
    """Which dialect a bare ``/v1/rerank`` body speaks, when ``v1_dialect`` is the default (seed).

    Clients that force this path send their own marks: Cohere's SDKs a ``X-Fern-SDK-Name: cohere``
    header, Cohere-style clients (RAGFlow's Xinference and SiliconFlow) ``return_len`` or
    ``rank_fields``, Voyage's ``top_k``. Anything else is the seed format."""
    if request.headers.get("x-fern-sdk-name", "").lower() == "cohere":
        return cohere.V1
    if isinstance(data, dict):
        if "return_len" in data or "rank_fields" in data:
            return cohere.V1
        if "top_k" in data:
            return voyage.DIALECT
    return DIALECTS["seed"]


async def sniffed_v1_rerank(request: Request) -> Response:
    """Bare ``/v1/rerank`` with the default setting: the seed format, unless the client says otherwise."""
    data = await _read_json(request)
    dialect = sniff_v1(request, data)
    return await answer(dialect, _validated(dialect, request, data), request)


def _json_of(*models: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI ``content`` of one of these models (documented elsewhere, so in the components)."""
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {"content": {"application/json": {"schema": schema}}}


def _body_of(*models: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, **_json_of(*models)}}


_REPEATED_VERSION = re.compile(r"/(v\d+)/\1(?=/)")


def likely_path(path: str) -> tuple[str, str, str] | None:
    """For a path that repeats its version segment (``/cohere/v1/v1/rerank``): the path meant
    (``/cohere/v1/rerank``), the base path to configure (``/cohere``) and the repeated segment."""
    match = _REPEATED_VERSION.search(path)
    if match is None:
        return None
    version = match.group(1)
    return path[: match.start()] + path[match.start() + len(version) + 1 :], path[: match.start()], version


def route_not_found(request: Request) -> RouteNotFound:
    """A 404 that says what to do; for a repeated version, in the dialect of the path meant."""
    path = request.url.path
    guess = likely_path(path)
    routes = {getattr(route, "path", None): route for route in request.app.routes}
    if guess is None or guess[0] not in routes:
        return RouteNotFound(f"no route {request.method} {path}; see /docs for the API")
    meant, base, version = guess
    request.state.dialect = request.app.state.endpoint_dialects.get(getattr(routes[meant], "endpoint", None))
    root = str(request.base_url).rstrip("/")
    return RouteNotFound(
        f"no route {request.method} {path}; did you mean {meant}? The client's base URL probably ends in "
        f"/{version} already, and the client adds /{version} itself: set the base URL to {root}{base} instead"
    )


def include_routes(app: FastAPI, settings: Settings) -> None:
    """Every route: each dialect's own paths, the bare paths, and the server routes."""
    dialect_of: dict[Endpoint, Dialect[Any]] = {}

    def add(path: str, dialect: Dialect[Any], **options: Any) -> None:
        endpoint = endpoint_for(dialect)
        dialect_of[endpoint] = dialect
        app.add_api_route(path, endpoint, methods=["POST"], **{**route_options(dialect), **options})

    for dialect in DIALECTS.values():
        for path in dialect.paths:
            add(path, dialect)

    v1 = DIALECTS.get(settings.v1_dialect)
    if v1 is None:
        raise ConfigError(
            f"v1_dialect {settings.v1_dialect!r} is not a dialect; choose one of {', '.join(DIALECTS)}"
        )
    if v1.name == "seed":
        seed = DIALECTS["seed"]
        sniffed = (seed, cohere.V1, voyage.DIALECT)
        app.add_api_route(
            "/v1/rerank",
            sniffed_v1_rerank,
            methods=["POST"],
            **{
                **route_options(seed, "Rerank (seed format; Cohere and Voyage clients get their own)"),
                "response_model": None,
                "responses": {
                    **error_responses(*(d.errors for d in sniffed)),
                    200: {
                        "description": "The ranking, in the format the client spoke",
                        **_json_of(*(d.response for d in sniffed)),
                    },
                },
            },
            openapi_extra=_body_of(seed.request),
        )
    else:
        add("/v1/rerank", v1)
    add("/v2/rerank", cohere.V2)

    bare = APIRouter()
    bare.add_api_route(
        "/rerank",
        bare_rerank,
        methods=["POST"],
        dependencies=[Depends(require_key)],
        summary="Rerank (TEI format when the body has `texts`, else vLLM format)",
        responses=error_responses(tei.DIALECT.errors, vllm.DIALECT.errors),
        openapi_extra=_body_of(tei.DIALECT.request, vllm.DIALECT.request),
        tags=["rerank: tei", "rerank: vllm"],
    )
    for path in ("/info", "/tei/info"):
        bare.add_api_route(path, tei.info, methods=["GET"], **tei.INFO_ROUTE)
    app.include_router(bare)
    app.include_router(server.router)
    app.include_router(admin.self_service)
    app.include_router(admin.router)
    dialect_of[tei.info] = tei.DIALECT
    app.state.endpoint_dialects = dialect_of
