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

A prefixed path lets a client's base URL pick its dialect; the bare paths serve the clients that
force a path. Errors are rendered in the shape of the dialect that was asked (``error_body_for``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from rerankd.api import cohere, common, infinity, jina, seed, server, tei, vllm, voyage
from rerankd.config import Settings
from rerankd.errors import MalformedBody, RerankdError

__all__ = ["V1_DIALECTS", "error_body_for", "include_routes", "sniff_v1"]

Endpoint = Callable[..., Awaitable[Any]]

# What bare /v1/rerank speaks, by the `v1_dialect` setting: (endpoint, route options).
V1_DIALECTS: dict[str, tuple[Endpoint, dict[str, Any]]] = {
    "seed": (seed.endpoint, seed.ROUTE),
    "cohere": (cohere.v1_endpoint, cohere.V1_ROUTE),
    "jina": (jina.endpoint, jina.ROUTE),
    "voyage": (voyage.endpoint, voyage.ROUTE),
    "infinity": (infinity.endpoint, infinity.ROUTE),
    "vllm": (vllm.endpoint, vllm.ROUTE),
}

_DIALECT_MODULES: tuple[ModuleType, ...] = (seed, cohere, jina, voyage, tei, infinity, vllm)
_ERROR_BODIES: dict[str, Callable[[RerankdError], Any]] = {m.__name__: m.error_body for m in _DIALECT_MODULES}


def error_body_for(request: Request, exc: RerankdError) -> Any:
    """The error body in the shape the asked dialect's clients parse (OpenAI-style by default)."""
    module = getattr(request.state, "dialect_module", None)
    if module is None:
        module = getattr(request.scope.get("endpoint"), "__module__", "")
    return _ERROR_BODIES.get(module, common.error_body)(exc)


def _validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
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


async def bare_rerank(request: Request) -> JSONResponse:
    """``/rerank``: TEI clients send ``texts``, vLLM and Infinity clients send ``documents``."""
    data = await _read_json(request)
    if isinstance(data, dict) and "texts" in data:
        request.state.dialect_module = tei.__name__
        return await tei.endpoint(_validated(tei.TeiRerankRequest, data), request)
    request.state.dialect_module = vllm.__name__
    return await vllm.endpoint(_validated(vllm.VllmRerankRequest, data), request)


def sniff_v1(request: Request, data: Any) -> str:
    """Which dialect a bare ``/v1/rerank`` body speaks, when ``v1_dialect`` is the default (seed).

    Clients that force this path send their own marks: Cohere's SDKs a ``X-Fern-SDK-Name: cohere``
    header, Cohere-style clients (RAGFlow's Xinference and SiliconFlow) ``return_len`` or
    ``rank_fields``, Voyage's ``top_k``. Anything else is the seed format."""
    if request.headers.get("x-fern-sdk-name", "").lower() == "cohere":
        return "cohere"
    if isinstance(data, dict):
        if "return_len" in data or "rank_fields" in data:
            return "cohere"
        if "top_k" in data:
            return "voyage"
    return "seed"


_V1_MODELS: dict[str, type[BaseModel]] = {
    "seed": seed.SeedRerankRequest,
    "cohere": cohere.CohereV1Request,
    "voyage": voyage.VoyageRerankRequest,
}
_V1_MODULES: dict[str, ModuleType] = {"seed": seed, "cohere": cohere, "voyage": voyage}


async def sniffed_v1_rerank(request: Request) -> JSONResponse:
    """Bare ``/v1/rerank`` with the default setting: the seed format, unless the client says otherwise."""
    data = await _read_json(request)
    dialect = sniff_v1(request, data)
    request.state.dialect_module = _V1_MODULES[dialect].__name__
    endpoint = V1_DIALECTS[dialect][0]
    result: JSONResponse = await endpoint(_validated(_V1_MODELS[dialect], data), request)
    return result


def _one_of(*models: type[BaseModel]) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def include_routes(app: FastAPI, settings: Settings) -> None:
    for module in (server, *_DIALECT_MODULES):
        app.include_router(module.router)
    endpoint, route = V1_DIALECTS[settings.v1_dialect]
    if settings.v1_dialect == "seed":
        route = {
            **route,
            "response_model": None,
            "responses": {**common.RERANK_ERRORS, 200: {"model": seed.SeedRerankResponse}},
            "openapi_extra": _one_of(seed.SeedRerankRequest),
            "summary": "Rerank (seed format; Cohere and Voyage clients get their own)",
        }
        endpoint = sniffed_v1_rerank
    app.add_api_route("/v1/rerank", endpoint, methods=["POST"], **route)
    app.add_api_route("/v2/rerank", cohere.v2_endpoint, methods=["POST"], **cohere.V2_ROUTE)
    bare = APIRouter()
    bare.add_api_route(
        "/rerank",
        bare_rerank,
        methods=["POST"],
        dependencies=[Depends(common.require_key)],
        summary="Rerank (TEI format when the body has `texts`, else vLLM format)",
        responses=common.RERANK_ERRORS,
        openapi_extra=_one_of(tei.TeiRerankRequest, vllm.VllmRerankRequest),
        tags=["rerank: tei", "rerank: vllm"],
    )
    bare.add_api_route("/info", tei.info, methods=["GET"], **tei.INFO_ROUTE)
    app.include_router(bare)
