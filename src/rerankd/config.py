"""Settings: the YAML config file, environment variables (RERANKD_*) and CLI flags, in one model.

Precedence, highest first: CLI flags, environment variables, the YAML file, built-in defaults.
Without a config file the packaged ``default_config.yaml`` is used. Unknown keys in the file are
errors (a typo should fail at start-up, not silently change nothing).
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SerializeAsAny, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, NoDecode, SettingsConfigDict

from rerankd.errors import settings_problems
from rerankd.kinds import model_spec
from rerankd.spec import ModelSpec

__all__ = ["ConfigError", "Settings", "env_value", "load_settings"]


def env_value(name: str, default: str | None = None) -> str | None:
    """An environment variable of the command line's flags; set but empty counts as unset."""
    return os.environ.get(name) or default


log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


class Settings(BaseSettings):
    """Server settings. Every field is also an environment variable, e.g. ``RERANKD_PORT``."""

    model_config = SettingsConfigDict(env_prefix="RERANKD_", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Interface to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to bind (0 = any free port).")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per log line, and one access line per request (request id, key "
        "prefix, dialect, models, status, documents, tokens, cost, queue and compute seconds).",
    )
    require_ready: bool = Field(
        default=False,
        description="Exit non-zero at start-up when a preloaded model fails to load or the database "
        "does not answer, instead of serving what did load.",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted Bearer keys. Empty: no authentication (a warning is logged at start-up). "
        "As an environment variable: comma-separated.",
    )
    # Each entry is validated by the settings class of its kind (rerankd.kinds).
    models: list[SerializeAsAny[ModelSpec]] = Field(default_factory=list)
    database_url: str = Field(
        default="sqlite:///rerankd.db",
        description="Where managed keys and the usage ledger live: a SQLite file (created on first start) or "
        "postgresql+psycopg://user:password@host/db for several replicas; `none` keeps no ledger and no "
        "managed keys.",
    )
    admin_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys of the /admin/ API (never client keys). As an environment variable: "
        "comma-separated.",
    )
    metrics_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys that read /metrics only (for a Prometheus scraper); admin keys read it too, "
        "client keys never. /metrics is open only on a server without keys of any kind. As an environment "
        "variable: comma-separated.",
    )
    default_model: str | None = Field(
        default=None,
        description="The model for requests that name none (TEI, Infinity, vLLM, Cohere v1 clients); "
        "default: the first model configured.",
    )
    v1_dialect: str = Field(
        default="seed",
        description="The dialect of bare POST /v1/rerank, e.g. seed, cohere or jina (the server refuses to "
        "start, listing the others, if unknown); prefixed paths such as /jina/v1/rerank speak their own.",
    )
    max_documents: int = Field(default=1000, ge=1, description="Most documents in one request (else 413).")
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Largest body (else 413).")
    max_retries: int = Field(default=3, ge=0, description="Cap on a request's `retries`.")
    request_timeout: float = Field(
        default=60.0, gt=0, description="Deadline of one request across retries and fallbacks (seconds)."
    )
    max_queue_pairs: int = Field(
        default=8192, ge=1, description="Pending (query, document) pairs per model before 429."
    )
    max_queue_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Estimated seconds of queued work per model (pending inputs / measured rate) before 429.",
    )
    max_batch_tokens: int | None = Field(
        default=None,
        ge=64,
        description="Padded tokens in one forward pass. Default: 4096 on CPU (passes that size are as "
        "efficient per token as larger ones there, and stay in cache), 16384 on GPU.",
    )
    max_batch_size: int = Field(default=256, ge=1, description="Rows in one forward pass.")
    max_pass_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Predicted seconds of one forward pass at most (from the cost measured when a model "
        "loads): bounds how long a newly arrived request waits behind a pass; passes are otherwise cut "
        "for the most throughput.",
    )
    threads_layout: Literal["auto", "single", "parallel"] = Field(
        default="auto",
        description="How a local model's forward passes use the CPU's cores: `single`, one worker thread "
        "whose passes use every core (torch's OpenMP threads); `parallel`, one worker thread per core, each "
        "running its own passes on one core (no OpenMP barrier to stall when a core is taken); `auto` times "
        "both when a model loads (a second or two) and keeps the faster. On a GPU: `single`.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's line and headers, from connecting (or from the "
        "first byte after an idle keep-alive); then the connection is closed (408).",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a request body may send nothing before its connection is closed.",
    )
    keep_alive_timeout: int = Field(
        default=5,
        ge=1,
        description="Seconds an idle keep-alive connection is kept for the client's next request.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest request line and headers, in bytes (else 431 and the connection is closed).",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections at most (lowered to the file-descriptor limit less 64). One more "
        "closes the connection waiting longest for a request, or is refused (503) when every one is busy.",
    )
    load_retry_seconds: float = Field(
        default=30.0, ge=0, description="After a failed load, how long before a request tries again."
    )

    @field_validator("models", mode="before")
    @classmethod
    def _specs_by_kind(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [model_spec(entry) for entry in value]

    @field_validator("api_keys", "admin_keys", "metrics_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.strip().split(":", 1)[0].split("+", 1)[0].lower()
        if value.strip().lower() not in ("", "none") and scheme not in ("sqlite", "postgresql"):
            raise ValueError(
                f"{scheme}://... is not supported: use sqlite:///path/to/rerankd.db, "
                "postgresql+psycopg://user:password@host/db, or none"
            )
        return value

    @property
    def metered(self) -> bool:
        """Whether a database keeps managed keys and the ledger."""
        return self.database_url.strip().lower() not in ("", "none")

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        seen: set[str] = set()
        for spec in self.models:
            for name in spec.names:
                if name in seen:
                    raise ValueError(f"model name {name!r} is used twice; names and aliases must be unique")
                seen.add(name)
        for spec in self.models:
            for fallback in spec.fallbacks:
                if fallback not in seen or fallback in spec.names:
                    raise ValueError(
                        f"fallback {fallback!r} of model {spec.name!r} is not another configured model"
                    )
        composite = {name for spec in self.models if spec.requires() for name in spec.names}
        for spec in self.models:
            for needed in spec.requires():
                if needed not in seen or needed in spec.names:
                    raise ValueError(
                        f"model {spec.name!r} combines {needed!r}, which is not another configured model"
                    )
                if needed in composite:
                    raise ValueError(
                        f"model {spec.name!r} combines {needed!r}, which combines models itself; "
                        "list that model's components instead"
                    )
        by_name = {name: spec for spec in self.models for name in spec.names}
        for spec in self.models:
            # A model that scores through priced models must say what its own calls cost: free calls
            # would let any key use the priced components for nothing.
            priced = [needed for needed in spec.requires() if by_name[needed].price is not None]
            if priced and spec.price is None:
                raise ValueError(
                    f"model {spec.name!r} combines priced models ({', '.join(priced)}) but has no `price` of "
                    "its own: give it one (its calls' usage counts every component's tokens)"
                )
        if set(self.admin_keys) & set(self.api_keys):
            raise ValueError(
                "a key is in both admin_keys and api_keys; an admin key must not be a client key"
            )
        if set(self.metrics_keys) & set(self.api_keys):
            raise ValueError(
                "a key is in both metrics_keys and api_keys; a client key must not read other tenants' "
                "metrics"
            )
        if self.default_model is not None and self.default_model not in seen:
            raise ValueError(f"default_model {self.default_model!r} is not a configured model name or alias")
        return self


def default_config_text() -> str:
    return resources.files("rerankd").joinpath("default_config.yaml").read_text(encoding="utf-8")


def _read_yaml(path: Path | None) -> dict[str, Any]:
    try:
        text = default_config_text() if path is None else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build settings from a YAML file (or the packaged default), the environment and ``overrides``."""
    file_data = _read_yaml(Path(config_file) if config_file else None)
    explicit = {key: value for key, value in overrides.items() if value is not None}

    class _WithFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: Any, init_settings: Any, env_settings: Any, *_: Any, **__: Any
        ) -> tuple[Any, ...]:
            return (init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=file_data))

    try:
        loaded = _WithFile(**explicit)
    except ValidationError as exc:
        where = config_file or "the built-in default config"
        raise ConfigError(f"invalid configuration in {where}: {settings_problems(exc)}") from exc
    return Settings.model_validate(loaded.model_dump())
