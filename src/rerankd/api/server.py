"""The dialect-free routes: ``/health`` and ``/ready`` (no auth), ``/v1/models`` and ``/metrics``.

``/health`` is liveness: the process answers. ``/ready`` (``/readyz``, as Kubernetes spells it) is 200 only
when every preloaded model is ready and the database answers, else 503 with the reasons.

Tenants are kept apart: a client key's ``/v1/models`` lists the models it may use and what it needs to
call them, never how the server reaches them (upstream URL, key variable, source) nor state that counts
other tenants' calls (circuit, cache); an operator (an admin key, or anyone on a server without keys)
sees everything. ``/metrics`` is the operator's too, or a scraper's with a key of ``metrics_keys``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rerankd.api.common import ServiceDep, caller, require_metrics, require_reader
from rerankd.types import ModelView

__all__ = ["router"]

router = APIRouter()


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models_ready: int
    models_configured: int


class CircuitCard(BaseModel):
    circuit: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    retry_in_seconds: float = Field(description="Until the next probe, when open.")


class CacheCard(BaseModel):
    capacity_bytes: int
    bytes: int = Field(description="Memory held now.")
    entries: int
    hits: int = Field(description="Inputs served from the cache since the model loaded.")
    misses: int = Field(description="Inputs looked up and computed.")
    evictions: int


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
    precision: str | None = Field(default=None, description="What a loaded model computes in.")
    fallbacks: list[str] | None = Field(default=None, description="Models tried in order if this one fails.")
    provider: str | None = Field(default=None, description="Upstream models: the provider's API.")
    base_url: str | None = Field(default=None, description="Upstream models: where calls go.")
    api_key_env: str | None = Field(default=None, description="Upstream models: the variable with the key.")
    circuit: CircuitCard | None = Field(
        default=None, description="Upstream models: breaker state and failures (after the first call)."
    )
    cache: CacheCard | None = Field(
        default=None, description="Local models with `cache_mb` set, once loaded: their output cache."
    )
    threads_layout: str | None = Field(
        default=None,
        description="Local models, once loaded: how their forward passes use the cores (`threads_layout`), "
        "e.g. `parallel: 2 workers x 1 thread (auto: single 6.3, parallel 8.5 inputs/s)`.",
    )

    @classmethod
    def of(cls, view: ModelView, created: int) -> ModelCard:
        circuit = view.loaded.circuit if view.loaded else None
        cache = view.loaded.cache if view.loaded else None
        layout = view.loaded.layout if view.loaded else None
        return cls(
            id=view.name,
            created=created,
            kind=view.kind,
            status=view.status,
            error=view.error,
            aliases=list(view.aliases),
            source=view.settings.source,
            max_length=view.max_length,
            precision=view.precision,
            fallbacks=list(view.fallbacks) or None,
            provider=view.settings.provider,
            base_url=view.settings.base_url,
            api_key_env=view.settings.api_key_env,
            circuit=CircuitCard(**asdict(circuit)) if circuit else None,
            cache=CacheCard(**asdict(cache)) if cache else None,
            threads_layout=layout.describe() if layout else None,
        )

    @classmethod
    def public(cls, view: ModelView, created: int, usable: set[str]) -> ModelCard:
        """What a client key sees of a model it may use (``usable``: the names of all such models)."""
        fallbacks = [name for name in view.fallbacks if name in usable]
        return cls(
            id=view.name,
            created=created,
            kind=view.kind,
            status=view.status,
            error=view.error,  # what a call to the model would answer (503) too
            aliases=list(view.aliases),
            max_length=view.max_length,
            precision=view.precision,
            fallbacks=fallbacks or None,
        )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.get("/health", response_model=Health, tags=["server"], summary="Liveness (no auth)")
async def health(service: ServiceDep) -> Health:
    views = service.models()
    return Health(models_ready=sum(view.status == "ready" for view in views), models_configured=len(views))


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    reasons: list[str] = Field(description="What is not ready, one line each (empty when ready).")
    models: dict[str, str] = Field(description="Each preloaded model and its status.")
    database: Literal["ok", "unreachable", "none"] = Field(description="`none`: no database configured.")


async def ready(request: Request) -> JSONResponse:
    state = await request.app.state.runtime.readiness()
    body = Ready(
        status="ready" if state.ready else "not_ready",
        reasons=list(state.reasons),
        models=state.models,
        database=state.database,
    )
    return JSONResponse(body.model_dump(), status_code=200 if state.ready else 503)


for _path in ("/ready", "/readyz"):
    router.add_api_route(
        _path,
        ready,
        methods=["GET"],
        tags=["server"],
        summary="Readiness (no auth): 200 when every preloaded model is ready and the database answers",
        response_model=Ready,
        responses={503: {"model": Ready, "description": "Not ready: `reasons` says why"}},
    )


@router.get(
    "/v1/models",
    response_model=ModelList,
    response_model_exclude_none=True,
    dependencies=[Depends(require_reader)],
    tags=["server"],
    summary="The models the key may use, with kind and load status (every model, with settings, for an "
    "admin key)",
)
async def list_models(request: Request, service: ServiceDep) -> ModelList:
    started = int(request.app.state.started_at)
    who = caller(request)
    views = service.models_for(who)
    if who.operator:
        return ModelList(data=[ModelCard.of(view, started) for view in views])
    usable = {name for view in views for name in (view.name, *view.aliases)}
    return ModelList(data=[ModelCard.public(view, started, usable) for view in views])


@router.get(
    "/metrics",
    dependencies=[Depends(require_metrics)],
    tags=["server"],
    summary="Prometheus metrics (admin keys and metrics_keys)",
)
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics_text(), media_type="text/plain; version=0.0.4")
