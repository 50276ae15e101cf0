"""Every HTTP path and the dialect that answers it — the one table to read to find where a request goes.

| path                                   | dialect                                        |
|----------------------------------------|------------------------------------------------|
| /v1/rerank                             | the ``v1_dialect`` setting (default: seed)     |
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

__all__ = ["V1_DIALECTS", "error_body_for", "include_routes"]

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


async def bare_rerank(request: Request) -> JSONResponse:
    """``/rerank``: TEI clients send ``texts``, vLLM and Infinity clients send ``documents``."""
    try:
        data = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"request body is not valid JSON ({exc}); send a JSON object") from exc
    if isinstance(data, dict) and "texts" in data:
        request.state.dialect_module = tei.__name__
        return await tei.endpoint(_validated(tei.TeiRerankRequest, data), request)
    request.state.dialect_module = vllm.__name__
    return await vllm.endpoint(_validated(vllm.VllmRerankRequest, data), request)


def _one_of(*models: type[BaseModel]) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": refs}}}}}


def include_routes(app: FastAPI, settings: Settings) -> None:
    for module in (server, *_DIALECT_MODULES):
        app.include_router(module.router)
    endpoint, route = V1_DIALECTS[settings.v1_dialect]
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
