"""Settings: the YAML config file, environment variables (RERANKD_*) and CLI flags, in one model.

Precedence, highest first: CLI flags, environment variables, the YAML file, built-in defaults.
Without a config file the packaged ``default_config.yaml`` is used. Unknown keys in the file are
errors (a typo should fail at start-up, not silently change nothing).
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, NoDecode, SettingsConfigDict

from rerankd.types import LongDocuments

__all__ = [
    "PROMPT_PRESETS",
    "ConfigError",
    "ModelKind",
    "ModelSpec",
    "Settings",
    "YesNoPrompt",
    "load_settings",
]

log = logging.getLogger(__name__)

ModelKind = Literal["cross-encoder", "bi-encoder", "bm25", "upstream", "llm-reranker"]
Provider = Literal["cohere", "jina", "voyage", "seed", "tei", "vllm", "infinity", "rerankd"]
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


PROMPT_SLOTS = ("instruction", "query", "document")


@dataclass(frozen=True, slots=True)
class YesNoPrompt:
    """How an LLM reranker (kind ``llm-reranker``) is asked about one document.

    ``template`` is the whole prompt, control tokens spelt out, with ``{query}`` and exactly one
    ``{document}`` slot and optionally ``{instruction}`` (literal braces doubled, as in ``str.format``).
    The score compares the model's next-token logits for ``yes_token`` and ``no_token`` after it.
    """

    template: str
    yes_token: str
    no_token: str
    default_instruction: str | None = None

    def check(self) -> None:
        """Raise ValueError, saying what is wrong, unless the template and tokens can be used."""
        try:
            fields = [
                (name, spec, conversion)
                for _, name, spec, conversion in _parse(self.template)
                if name is not None
            ]
        except ValueError as exc:
            raise ValueError(
                f"prompt_template is not a valid template ({exc}); write literal braces as {{{{ }}}}"
            ) from exc
        for name, spec, conversion in fields:
            if name not in PROMPT_SLOTS:
                raise ValueError(
                    f"prompt_template has an unknown slot {{{name}}}; the slots are {{instruction}}, "
                    "{query} and {document} (write literal braces as {{ }})"
                )
            if spec or conversion:
                raise ValueError(f"prompt_template slot {{{name}}} takes no format spec or conversion")
        names = [name for name, _, _ in fields]
        if names.count("document") != 1 or "query" not in names:
            raise ValueError("prompt_template needs exactly one {document} slot and a {query} slot")
        if not self.yes_token or not self.no_token or self.yes_token == self.no_token:
            raise ValueError("yes_token and no_token must be two different, non-empty tokens")

    def around_document(self, *, instruction: str, query: str) -> tuple[str, str]:
        """The prompt text before and after the document, the other slots filled in."""
        before: list[str] = []
        after: list[str] = []
        target = before
        for literal, name, _, _ in _parse(self.template):
            target.append(literal)
            if name == "document":
                target = after
            elif name is not None:
                target.append(instruction if name == "instruction" else query)
        return "".join(before), "".join(after)


def _parse(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    return list(string.Formatter().parse(template))


# Built-in prompts, by the name `prompt:` selects. Qwen3-Reranker's comes from its model card: a system
# turn asking for "yes" or "no", the user turn "<Instruct>: ...\n<Query>: ...\n<Document>: ...", and an
# assistant turn opened with an empty thinking block, after which the model's next token is the answer.
PROMPT_PRESETS: dict[str, YesNoPrompt] = {
    "qwen3": YesNoPrompt(
        template=(
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
            'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
            "<|im_start|>user\n"
            "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n"
        ),
        yes_token="yes",
        no_token="no",
        default_instruction="Given a web search query, retrieve relevant passages that answer the query",
    ),
}
DEFAULT_PROMPT = "qwen3"
_LLM_FIELDS = ("prompt", "prompt_template", "yes_token", "no_token", "default_instruction")


class ModelSpec(BaseModel):
    """One entry of ``models:`` in the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="What clients send as `model`.")
    kind: ModelKind = Field(description="cross-encoder | bi-encoder | bm25 | upstream | llm-reranker")
    source: str | None = Field(
        default=None,
        description="A local folder, a Hugging Face hub id, or `python-package:NAME` for weights bundled "
        "in an installed package. Not used by bm25.",
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    max_length: int | None = Field(
        default=None, ge=8, description="Tokens per scored input; default: model's."
    )
    trust_remote_code: bool = Field(default=False, description="Allow the model's own code from the hub.")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        default="auto",
        description="Compute precision. auto: bf16 where the hardware has it (CUDA, or CPUs with AMX or "
        "AVX512-BF16), fp16 on other GPUs, else fp32. int8: dynamic quantization of the linear layers (CPU).",
    )
    preload: bool = Field(default=False, description="Load at start-up instead of on first use.")
    aliases: tuple[str, ...] = Field(default=(), description="Other names clients may send for this model.")
    max_batch_tokens: int | None = Field(default=None, ge=64, description="Overrides the server setting.")
    long_documents: LongDocuments = Field(
        default="chunk",
        description="A document longer than the window: chunk (score windows, keep the best), "
        "truncate_end, truncate_start, or error. Requests may ask otherwise.",
    )
    max_chunks_per_doc: int = Field(
        default=10, ge=1, description="Windows scored per document when chunking."
    )
    overlap_tokens: int = Field(default=32, ge=0, description="Tokens shared by neighbouring windows.")

    # -- LLM rerankers (kind: llm-reranker); unset fields come from the `prompt` preset --
    prompt: str | None = Field(
        default=None, description="llm-reranker: built-in prompt preset (" + " | ".join(PROMPT_PRESETS) + ")."
    )
    prompt_template: str | None = Field(
        default=None,
        description="llm-reranker: the whole prompt with {query}, {document} and optionally {instruction} "
        "slots; literal braces doubled.",
    )
    yes_token: str | None = Field(default=None, description="llm-reranker: the answer meaning relevant.")
    no_token: str | None = Field(default=None, description="llm-reranker: the answer meaning not relevant.")
    default_instruction: str | None = Field(
        default=None, description="llm-reranker: the instruction of requests that send none."
    )

    # -- upstream providers (kind: upstream) and fallbacks (any kind) --
    provider: Provider | None = Field(
        default=None, description="The upstream's API: " + " | ".join(Provider.__args__)
    )
    base_url: str | None = Field(
        default=None, description="The upstream's base URL, e.g. https://api.cohere.com."
    )
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the upstream key (never the key)."
    )
    upstream_model: str | None = Field(default=None, description="Model name sent upstream; default: `name`.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds for one upstream attempt.")
    max_retries: int = Field(default=3, ge=0, description="Cap on a request's `retries` for this model.")
    max_connections: int = Field(default=16, ge=1, description="Connections to the upstream at most.")
    breaker_failures: int = Field(default=5, ge=1, description="Consecutive failures that open the circuit.")
    breaker_reset_seconds: float = Field(
        default=30.0, gt=0, description="Open circuit: seconds until a probe."
    )
    fallbacks: tuple[str, ...] = Field(
        default=(), description="Other model names tried in order when this one fails (after its retries)."
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

    @model_validator(mode="after")
    def _source_needed(self) -> ModelSpec:
        if self.kind == "upstream":
            if not self.provider or not self.base_url:
                raise ValueError(f"upstream model {self.name!r} needs a `provider` and a `base_url`")
            if not self.base_url.startswith(("http://", "https://")):
                raise ValueError(f"base_url of {self.name!r} must start with http:// or https://")
            return self
        if self.kind != "bm25" and not self.source:
            raise ValueError(f"model {self.name!r} of kind {self.kind} needs a `source` (folder or hub id)")
        return self

    @model_validator(mode="after")
    def _prompt_fits_kind(self) -> ModelSpec:
        if self.kind != "llm-reranker":
            given = [field for field in _LLM_FIELDS if getattr(self, field) is not None]
            if given:
                raise ValueError(
                    f"model {self.name!r}: {', '.join(given)} {'is' if len(given) == 1 else 'are'} only for "
                    f"kind llm-reranker, not {self.kind}"
                )
            return self
        try:
            self.yes_no_prompt().check()
        except ValueError as exc:
            raise ValueError(f"model {self.name!r}: {exc}") from None
        return self

    def yes_no_prompt(self) -> YesNoPrompt:
        """The llm-reranker prompt: the preset, with the fields this entry sets replacing the preset's."""
        name = self.prompt or DEFAULT_PROMPT
        preset = PROMPT_PRESETS.get(name)
        if preset is None:
            raise ValueError(
                f"unknown prompt preset {name!r}; built in: {', '.join(PROMPT_PRESETS)} (or set "
                "prompt_template, yes_token and no_token for another model)"
            )
        return YesNoPrompt(
            template=self.prompt_template if self.prompt_template is not None else preset.template,
            yes_token=self.yes_token if self.yes_token is not None else preset.yes_token,
            no_token=self.no_token if self.no_token is not None else preset.no_token,
            default_instruction=(
                self.default_instruction
                if self.default_instruction is not None
                else preset.default_instruction
            ),
        )


class Settings(BaseSettings):
    """Server settings. Every field is also an environment variable, e.g. ``RERANKD_PORT``."""

    model_config = SettingsConfigDict(env_prefix="RERANKD_", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Interface to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to bind (0 = any free port).")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted Bearer keys. Empty: no authentication (a warning is logged at start-up). "
        "As an environment variable: comma-separated.",
    )
    models: list[ModelSpec] = Field(default_factory=list)
    default_model: str | None = Field(
        default=None,
        description="The model for requests that name none (TEI, Infinity, vLLM, Cohere v1 clients); "
        "default: the first model configured.",
    )
    v1_dialect: Literal["seed", "cohere", "jina", "voyage", "infinity", "vllm"] = Field(
        default="seed",
        description="The format of bare POST /v1/rerank (prefixed paths such as /jina/v1/rerank always "
        "speak their own).",
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
    load_retry_seconds: float = Field(
        default=30.0, ge=0, description="After a failed load, how long before a request tries again."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        seen: set[str] = set()
        for spec in self.models:
            for name in (spec.name, *spec.aliases):
                if name in seen:
                    raise ValueError(f"model name {name!r} is used twice; names and aliases must be unique")
                seen.add(name)
        for spec in self.models:
            for fallback in spec.fallbacks:
                if fallback not in seen or fallback in (spec.name, *spec.aliases):
                    raise ValueError(
                        f"fallback {fallback!r} of model {spec.name!r} is not another configured model"
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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration in {where}: {problems}") from exc
    return Settings.model_validate(loaded.model_dump())
