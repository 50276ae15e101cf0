"""The dialect-free routes: ``/health`` (no auth), ``/v1/models`` and ``/metrics``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from rerankd.api.common import ServiceDep, require_key
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

    @classmethod
    def of(cls, view: ModelView, created: int) -> ModelCard:
        circuit = view.loaded.circuit if view.loaded else None
        cache = view.loaded.cache if view.loaded else None
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
        )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.get("/health", response_model=Health, tags=["server"], summary="Liveness (no auth)")
async def health(service: ServiceDep) -> Health:
    views = service.models()
    return Health(models_ready=sum(view.status == "ready" for view in views), models_configured=len(views))


@router.get(
    "/v1/models",
    response_model=ModelList,
    response_model_exclude_none=True,
    dependencies=[Depends(require_key)],
    tags=["server"],
    summary="Configured models, with kind and load status",
)
async def list_models(request: Request, service: ServiceDep) -> ModelList:
    started = int(request.app.state.started_at)
    return ModelList(data=[ModelCard.of(view, started) for view in service.models()])


@router.get("/metrics", dependencies=[Depends(require_key)], tags=["server"], summary="Prometheus metrics")
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics_text(), media_type="text/plain; version=0.0.4")
