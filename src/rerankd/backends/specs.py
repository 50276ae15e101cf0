"""The settings of local models, per kind: what a config entry of ``kind: cross-encoder``, ``bi-encoder``,
``llm-reranker`` or ``bm25`` may say, and how each checks that it can be loaded.

No torch here: the config is validated, and ``rerankd models`` checks sources, without the model
libraries (a server without them still serves its other models and says how to install them).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rerankd.backends.prompts import DEFAULT_PROMPT, PROMPT_PRESETS, YesNoPrompt, preset_for_source
from rerankd.backends.sources import check_available, load_failure_hint
from rerankd.spec import Availability, BatchSettings, ModelSpec
from rerankd.types import LongDocuments, SpecSummary

__all__ = [
    "Bm25Spec",
    "CascadeSpec",
    "CascadeStage",
    "CheckpointSpec",
    "Fusion",
    "HybridComponent",
    "HybridSpec",
    "LateInteractionSpec",
    "ListwiseSpec",
    "LlmRerankerSpec",
    "TransformerSpec",
]

Dtype = Literal["auto", "fp32", "bf16-autocast", "bf16", "fp16", "int8"]
# Measured with `rerankd eval` on Cranfield (README, "Measuring quality"): MiniLM, first 60 queries, BM25
# top 30, fp32: truncation 0.3988 NDCG@10, best window 0.3946, first window 0.3988, this mix 0.3992.
BEST_WINDOW_WEIGHT = 0.5


class CheckpointSpec(ModelSpec):
    """A model whose weights are loaded from a folder, a Python package or the Hugging Face hub: where its
    files are, and the device and precision it computes in. Each such kind adds its own settings."""

    source: str = Field(
        description="A local folder, a Hugging Face hub id, or `python-package:NAME` for weights bundled "
        "in an installed package.",
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: Dtype = Field(
        default="auto",
        description="Compute precision. auto: on a CPU with AMX or AVX512-BF16, bf16-autocast; on other "
        "CPUs fp32; on CUDA bf16 where supported, else fp16. bf16-autocast: fp32 weights, matmuls and "
        "attention in bf16 under torch.autocast (keeps the ranking of fp32). bf16 / fp16: weights cast "
        "(half the memory, a little quality lost). int8: dynamic quantization of the linear layers (CPU).",
    )

    def availability(self) -> Availability:
        return check_available(self)

    def load_hint(self, error: BaseException) -> str:
        return load_failure_hint(self, error)

    def with_compute(self, dtype: str | None, cache_mb: float) -> Self:
        return self.model_copy(update={"dtype": dtype}) if dtype else self

    def summary(self) -> SpecSummary:
        return SpecSummary(source=self.source, dtype=self.dtype)


class TransformerSpec(CheckpointSpec):
    """A transformer scoring (query, document) inputs that the scheduler packs into shared passes."""

    max_length: int | None = Field(
        default=None, ge=8, description="Tokens per scored input; default: model's."
    )
    trust_remote_code: bool = Field(default=False, description="Allow the model's own code from the hub.")
    max_batch_tokens: int | None = Field(default=None, ge=64, description="Overrides the server setting.")
    long_documents: LongDocuments = Field(
        default="chunk",
        description="A document longer than the window: chunk (score full-length overlapping windows, "
        "the last one ending at the document's end, and combine their scores: best_window_weight), "
        "truncate_end, truncate_start, or error. Requests may ask otherwise.",
    )
    best_window_weight: float = Field(
        default=BEST_WINDOW_WEIGHT,
        ge=0,
        le=1,
        description="How a chunked document's window scores combine: this weight times its best window's "
        "score plus the rest times its first window's (raw scores). 1: the best window wins; 0: only the "
        "opening counts, as truncation. The default was chosen on Cranfield (see the README).",
    )
    max_chunks_per_doc: int = Field(
        default=10, ge=1, description="Windows scored per document when chunking."
    )
    overlap_tokens: int = Field(default=32, ge=0, description="Tokens shared by neighbouring windows.")
    cache_mb: float = Field(
        default=0,
        ge=0,
        description="Memory (MiB) for a cache of this model's outputs per input, least recently used out "
        "first: embeddings of queries and documents already seen (bi-encoder), their token vectors "
        "(late-interaction), scores of exact-repeat "
        "(query, document) pairs (cross-encoder, llm-reranker). Keyed by the input's tokens and every "
        "setting of this entry, so only identical inputs hit. 0 (default): off, because a cached output "
        "can differ from a fresh one by the rounding of a different batch (in bf16 or fp16 notably).",
    )

    def batch_settings(self) -> BatchSettings:
        return BatchSettings(max_batch_tokens=self.max_batch_tokens, cache_bytes=int(self.cache_mb * 2**20))

    def with_compute(self, dtype: str | None, cache_mb: float) -> Self:
        update: dict[str, object] = {}
        if dtype:
            update["dtype"] = dtype
        if self.cache_mb == 0 and cache_mb > 0:
            update["cache_mb"] = cache_mb
        return self.model_copy(update=update)

    def summary(self) -> SpecSummary:
        return SpecSummary(
            source=self.source,
            max_length=self.max_length,
            dtype=self.dtype,
            max_batch_tokens=self.max_batch_tokens,
        )


class LlmRerankerSpec(TransformerSpec):
    """A causal LM asked "yes" or "no" per document; unset prompt fields come from the `prompt` preset."""

    prompt: str | None = Field(
        default=None,
        description="Built-in prompt preset (" + " | ".join(PROMPT_PRESETS) + "); unset: the one a known hub "
        f"id names, else {DEFAULT_PROMPT}.",
    )
    prompt_template: str | None = Field(
        default=None,
        description="The whole prompt with {query}, {document} and optionally {instruction} slots; "
        "literal braces doubled.",
    )
    yes_token: str | None = Field(default=None, description="The answer meaning relevant.")
    no_token: str | None = Field(
        default=None,
        description="The answer meaning not relevant (a preset without one scores the yes answer alone).",
    )
    default_instruction: str | None = Field(
        default=None, description="The instruction of requests that send none."
    )

    @model_validator(mode="after")
    def _usable_prompt(self) -> LlmRerankerSpec:
        try:
            self.yes_no_prompt().check()
        except ValueError as exc:
            raise ValueError(f"model {self.name!r}: {exc}") from None
        return self

    def preset_name(self) -> str:
        """The preset this entry starts from: the one it names, else its hub id's, else the default."""
        return self.prompt or preset_for_source(self.source) or DEFAULT_PROMPT

    def yes_no_prompt(self) -> YesNoPrompt:
        """The preset, with the fields this entry sets replacing the preset's."""
        name = self.preset_name()
        preset = PROMPT_PRESETS.get(name)
        if preset is None:
            raise ValueError(
                f"unknown prompt preset {name!r}; built in: {', '.join(PROMPT_PRESETS)} (or set "
                "prompt_template, yes_token and no_token for another model)"
            )
        return dataclasses.replace(
            preset,
            pieces=(self.prompt_template,) if self.prompt_template is not None else preset.pieces,
            yes_token=self.yes_token if self.yes_token is not None else preset.yes_token,
            no_token=self.no_token if self.no_token is not None else preset.no_token,
            default_instruction=(
                self.default_instruction
                if self.default_instruction is not None
                else preset.default_instruction
            ),
        )

    def recipe(self) -> str:
        name = self.preset_name()
        if self.prompt_template is not None:
            return f"own prompt_template ({name} otherwise)"
        if self.prompt is None:
            return f"{name} (from the hub id)" if preset_for_source(self.source) else f"{name} (default)"
        return name


class ListwiseSpec(CheckpointSpec):
    """A listwise reranker (jina-reranker-v3): one sequence reads a block of documents and the query.

    The defaults are the official ``rerank()``'s; a score depends on the whole block, so changing them
    changes scores, not only speed."""

    max_length: int | None = Field(
        default=None,
        ge=64,
        description="Tokens one block may hold, by the official rule (twice the query plus the documents); "
        "default: the tokenizer's model_max_length (131072 for jina-reranker-v3), as the official code.",
    )
    max_query_tokens: int = Field(default=512, ge=1, description="The query is cut to this many tokens.")
    max_document_tokens: int = Field(default=2048, ge=1, description="Each document is cut to this many.")
    block_documents: int = Field(default=125, ge=1, description="Documents one sequence reads at most.")

    def summary(self) -> SpecSummary:
        return SpecSummary(source=self.source, max_length=self.max_length, dtype=self.dtype)


class LateInteractionSpec(TransformerSpec):
    """A late-interaction (ColBERT) model saved by PyLate: token vectors of the query and of each document,
    scored by MaxSim. What is unset here comes from the checkpoint's config_sentence_transformers.json, and
    what that lacks from PyLate's defaults, as PyLate itself reads them."""

    max_length: int | None = Field(
        default=None,
        ge=8,
        description="Tokens per document (or window), its marker and special tokens included; default: the "
        "checkpoint's document_length.",
    )
    long_documents: LongDocuments = Field(
        default="truncate_end",
        description="A document longer than max_length: truncate_end (the ColBERT recipe), truncate_start, "
        "chunk (windows scored apart and combined: best_window_weight), or error.",
    )
    query_length: int | None = Field(
        default=None,
        ge=4,
        description="Tokens per query: a longer one is cut, a shorter one padded with [MASK] (query "
        "expansion); default: the checkpoint's.",
    )
    query_prefix: str | None = Field(
        default=None, description="The query marker token, e.g. [unused0]; default: the checkpoint's."
    )
    document_prefix: str | None = Field(
        default=None, description="The document marker token, e.g. [unused1]; default: the checkpoint's."
    )
    attend_to_expansion_tokens: bool | None = Field(
        default=None,
        description="Whether the query's [MASK] padding takes part in attention (jina-colbert-v2: true); "
        "default: the checkpoint's.",
    )


class Bm25Spec(ModelSpec):
    """BM25 over each request's own documents (bm25s); nothing to download."""

    k1: float = Field(default=1.5, ge=0, description="Term-frequency saturation.")
    b: float = Field(default=0.75, ge=0, le=1, description="Document-length normalisation.")

    def availability(self) -> Availability:
        if importlib.util.find_spec("bm25s") is None:
            return Availability(False, "the bm25s package is not installed (pip install 'rerankd[bm25]')")
        return Availability(True, "built in (bm25s)")


Fusion = Literal["rrf", "minmax", "zscore"]


class HybridComponent(BaseModel):
    """One model a hybrid combines, and its weight in the fusion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="A configured model's name or alias.")
    weight: float = Field(default=1.0, ge=0, description="Its weight in the fused score.")


class HybridSpec(ModelSpec):
    """Several configured models scoring the same documents, their scores fused per request."""

    components: tuple[HybridComponent, ...] = Field(
        min_length=2, description="The models combined (e.g. bm25 and a neural model) with their weights."
    )
    fusion: Fusion = Field(
        default="minmax",
        description="rrf: sum of weight / (rrf_k + rank); minmax: weighted sum of each model's scores "
        "scaled to 0..1 within the request; zscore: weighted sum of standardised scores. "
        "`rerankd eval --tune` picks the method and weights on a collection.",
    )
    rrf_k: float = Field(default=60.0, gt=0, description="rrf's rank offset.")

    @classmethod
    def of(cls, spec: ModelSpec) -> HybridSpec | None:
        """``spec`` as a hybrid's settings; None for other kinds (what ``rerankd eval --tune`` tunes)."""
        return spec if isinstance(spec, cls) else None

    def requires(self) -> tuple[str, ...]:
        return tuple(component.model for component in self.components)

    def summary(self) -> SpecSummary:
        return SpecSummary(source=f"{self.fusion} of " + ", ".join(self.requires()))


class CascadeStage(BaseModel):
    """One stage of a cascade: a configured model, and how many of the previous stage's best documents it
    scores (the first stage scores them all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="A configured model's name or alias.")
    top_k: int | None = Field(
        default=None,
        ge=1,
        description="The previous stage's best documents this stage scores (required after the first).",
    )


class CascadeSpec(ModelSpec):
    """Configured models in turn, each scoring only the best documents of the one before: cheap models
    first, the costly one on a few."""

    stages: tuple[CascadeStage, ...] = Field(
        min_length=2,
        description="The models in order, e.g. bm25, then a bi-encoder on bm25's top 100, then a "
        "cross-encoder on its top 20.",
    )

    @model_validator(mode="after")
    def _narrowing_stages(self) -> CascadeSpec:
        first, *rest = self.stages
        if first.top_k is not None:
            raise ValueError(
                f"cascade {self.name!r}: the first stage ({first.model}) scores every document; "
                "`top_k` belongs to the later stages"
            )
        kept: int | None = None
        for position, stage in enumerate(rest, start=2):
            if stage.top_k is None:
                raise ValueError(
                    f"cascade {self.name!r}: stage {position} ({stage.model}) needs a `top_k`: how many of "
                    "the previous stage's best documents it scores"
                )
            if kept is not None and stage.top_k > kept:
                raise ValueError(
                    f"cascade {self.name!r}: stage {position} ({stage.model}) has top_k {stage.top_k}, more "
                    f"than the {kept} the stage before it scores"
                )
            kept = stage.top_k
        return self

    def requires(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(stage.model for stage in self.stages))

    def summary(self) -> SpecSummary:
        steps = [self.stages[0].model] + [f"{s.model} (top {s.top_k})" for s in self.stages[1:]]
        return SpecSummary(source="cascade: " + " -> ".join(steps))
