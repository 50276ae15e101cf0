"""The dialect-free routes: ``/health`` (no auth), ``/v1/models`` and ``/metrics``."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from rerankd.api.common import PoolDep, require_key

__all__ = ["router"]

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
    precision: str | None = Field(default=None, description="What a loaded model computes in.")
    fallbacks: list[str] | None = Field(default=None, description="Models tried in order if this one fails.")
    provider: str | None = Field(default=None, description="Upstream models: the provider's API.")
    base_url: str | None = Field(default=None, description="Upstream models: where calls go.")
    api_key_env: str | None = Field(default=None, description="Upstream models: the variable with the key.")
    circuit: dict[str, Any] | None = Field(
        default=None, description="Upstream models: breaker state (closed, open, half_open) and failures."
    )


def _without_credentials(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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
        backend = getattr(scorer, "backend", None)
        max_length = getattr(backend, "max_length", None) or entry.spec.max_length
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
                precision=getattr(backend, "precision", None),
                fallbacks=list(entry.spec.fallbacks) or None,
                provider=entry.spec.provider,
                base_url=_without_credentials(entry.spec.base_url),
                api_key_env=entry.spec.api_key_env,
                circuit=entry.circuit,
            )
        )
    return ModelList(data=cards)


@router.get("/metrics", dependencies=[Depends(require_key)], tags=["server"], summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    ready = sum(entry.status == "ready" for entry in request.app.state.pool.entries.values())
    request.app.state.metrics.models_ready.set(ready)
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")
