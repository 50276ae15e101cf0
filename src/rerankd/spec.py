"""What every entry of ``models:`` in the config has, whatever its kind, and what a kind adds to it.

:class:`ModelSpec` holds the settings every model shares (its names, kind, fallbacks, preload, retry
cap). Each kind of model (``rerankd.kinds``) subclasses it with its own settings, checks whether its
files or service can be had (:meth:`ModelSpec.availability`, behind ``rerankd models``) and says which
of its settings ``/v1/models`` shows (:meth:`ModelSpec.summary`). Unknown keys are errors: a typo
fails at start-up, naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rerankd.gateway.money import to_nanos
from rerankd.types import SEARCH_UNIT_INPUTS, CallSize, SpecSummary

__all__ = ["MODEL_NAME", "Availability", "BatchSettings", "ModelSpec", "Price", "without_credentials"]

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether a model can be had without loading it, and where from (or why not)."""

    loadable: bool
    where: str


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """What a local model asks of the scheduler beyond the server's settings."""

    max_batch_tokens: int | None = None  # padded tokens per pass; None: the server's, else the device's
    cache_bytes: int = 0  # memory for a cache of its outputs; 0: none


def without_credentials(url: str | None) -> str | None:
    """A URL without user:password, query or fragment (they may carry secrets)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Price(BaseModel):
    """What a call to a model costs, in the operator's currency; the parts add up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_million_tokens: Decimal = Field(default=Decimal(0), ge=0, description="Per million tokens (total).")
    per_search_unit: Decimal = Field(
        default=Decimal(0),
        ge=0,
        description=f"Per search unit: one query over up to {SEARCH_UNIT_INPUTS} documents, chunks counted.",
    )
    per_request: Decimal = Field(default=Decimal(0), ge=0, description="Per call answered.")

    def cost_of(self, size: CallSize) -> int:
        """The cost of one answered call of ``size``, in nano-units, rounded once. A price over a new
        quantity is a field here and a term below (and the quantity on ``CallSize``, when it is new)."""
        amount = (
            self.per_million_tokens * size.tokens / 1_000_000
            + self.per_search_unit * size.search_units
            + self.per_request
        )
        return to_nanos(amount)


class ModelSpec(BaseModel):
    """One entry of ``models:``: the settings every kind shares. Kinds subclass it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="What clients send as `model`.")
    kind: str = Field(description="The kind of model; each kind takes its own settings (see rerankd.kinds).")
    aliases: tuple[str, ...] = Field(default=(), description="Other names clients may send for this model.")
    preload: bool = Field(default=False, description="Load at start-up instead of on first use.")
    max_retries: int = Field(default=3, ge=0, description="Cap on a request's `retries` for this model.")
    fallbacks: tuple[str, ...] = Field(
        default=(), description="Other model names tried in order when this one fails (after its retries)."
    )
    price: Price | None = Field(
        default=None, description="What a call costs, charged to the caller's key (null: free)."
    )

    @field_validator("name", "aliases")
    @classmethod
    def _valid_names(cls, value: Any) -> Any:
        for name in [value] if isinstance(value, str) else value:
            if not MODEL_NAME.match(name):
                raise ValueError(
                    f"model name {name!r} must be 1-128 characters of letters, digits and ._:/@+-"
                )
        return value

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def requires(self) -> tuple[str, ...]:
        """Other configured models this one scores through (a hybrid's components)."""
        return ()

    def availability(self) -> Availability:
        """Whether the model can be had (files found, package installed), without loading it."""
        return Availability(True, "built in")

    def batch_settings(self) -> BatchSettings:
        """What this model asks of the scheduler (kinds whose backend it batches say more)."""
        return BatchSettings()

    def with_compute(self, dtype: str | None, cache_mb: float) -> Self:
        """These settings computing in ``dtype`` (None: as configured) with an output cache of ``cache_mb``
        where none is configured, as ``rerankd eval`` runs models; unchanged for kinds without either."""
        return self

    def summary(self) -> SpecSummary:
        return SpecSummary()

    def recipe(self) -> str | None:
        """How this model is asked, where kinds differ by model (an LLM reranker's prompt preset), as
        ``rerankd models`` shows it; None for kinds with one way."""
        return None

    def secrets(self) -> tuple[str, ...]:
        """The values this model's settings give access with (keys, passwords): rerankd redacts them
        wherever they would be shown (``rerankd.redaction``)."""
        return ()

    def load_hint(self, error: BaseException) -> str:
        """What to do when loading failed (the message of ``error`` comes before it)."""
        if isinstance(error, ImportError):
            return "install the missing package named above and restart"
        return "check this model's settings in the config file"

    def described(self) -> str:
        """How the load log line names where the model comes from."""
        return self.summary().source or "built in"
