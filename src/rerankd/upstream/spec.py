"""The settings of an upstream model (``kind: upstream``): which provider API, where, with which key,
and how patiently; and what ``rerankd models`` says about it.
"""

from __future__ import annotations

import os

from pydantic import Field, field_validator

from rerankd.redaction import redact, url_secrets
from rerankd.spec import Availability, ModelSpec, without_credentials
from rerankd.types import SpecSummary
from rerankd.upstream import PROVIDERS

__all__ = ["UpstreamSpec"]


class UpstreamSpec(ModelSpec):
    """A model served by another rerank API, called over HTTP."""

    provider: str = Field(description="The upstream's API: " + " | ".join(PROVIDERS))
    base_url: str = Field(description="The upstream's base URL, e.g. https://api.cohere.com.")
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the upstream key (never the key)."
    )
    upstream_model: str | None = Field(default=None, description="Model name sent upstream; default: `name`.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds for one upstream attempt.")
    max_connections: int = Field(default=16, ge=1, description="Connections to the upstream at most.")
    breaker_failures: int = Field(default=5, ge=1, description="Consecutive failures that open the circuit.")
    breaker_reset_seconds: float = Field(
        default=30.0, gt=0, description="Open circuit: seconds until a probe."
    )

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"provider {value!r} is not one of {', '.join(PROVIDERS)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url {redact(repr(value))} must start with http:// or https://")
        return value

    def api_key(self) -> str:
        """The key from the variable ``api_key_env`` names; empty when there is none."""
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""

    def secrets(self) -> tuple[str, ...]:
        return (self.api_key(), *url_secrets(self.base_url))

    def availability(self) -> Availability:
        where = f"{self.provider} API at {without_credentials(self.base_url)}"
        if self.api_key_env is None:
            return Availability(True, f"{where}, no key")
        if os.environ.get(self.api_key_env):
            return Availability(True, f"{where}, key from ${self.api_key_env} (set)")
        return Availability(False, f"{where}, key from ${self.api_key_env}, which is NOT set")

    def summary(self) -> SpecSummary:
        return SpecSummary(
            provider=self.provider, base_url=without_credentials(self.base_url), api_key_env=self.api_key_env
        )

    def described(self) -> str:
        return f"{self.provider} at {without_credentials(self.base_url)}"

    def load_hint(self, error: BaseException) -> str:
        return "check the provider and base_url of this model"
