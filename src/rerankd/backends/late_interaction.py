"""Late interaction (ColBERT): PyLate checkpoints, scored by MaxSim over token vectors.

The query and each document are encoded apart, as PyLate's ``ColBERT.encode`` does: the text stripped
(and lower-cased where the checkpoint's sentence_bert_config.json says so), tokenized, its marker token
(``query_prefix`` / ``document_prefix``) inserted after the first special token; the query cut to
``query_length`` and, with query expansion, padded to it with the mask token, which is attended only
with ``attend_to_expansion_tokens``; a document cut to ``document_length`` (``max_length`` here) or
chunked. Every token's hidden state goes through the checkpoint's Dense projection(s) and is
L2-normalised; the query keeps all its vectors (the expansion ones included), a document drops those of
its skip-list tokens (punctuation by default). MaxSim sums, over the query's vectors, the best cosine
with any of the document's vectors; the score is MaxSim / the number of query vectors, in [-1, 1]
(activation ``identity``).

Each input's output is its vectors, so the scheduler's output cache (``cache_mb``) keeps documents'
token vectors: a document scored again, for any query, costs no encoder pass. The vectors are kept for
every token; the skip-list applies when scoring.

The checkpoint is read with transformers and safetensors, not through PyLate (not a dependency): a folder
PyLate saved (the Transformer module's folder, the Dense modules' weights, config_sentence_transformers.json)
or one of the Stanford ColBERT library (an ``HF_ColBERT`` and its ``linear`` projection, artifact.metadata),
each with PyLate's defaults where it says nothing.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import AutoModel, AutoTokenizer
from transformers.utils.hub import cached_file

from rerankd.backends.base import Encoded, Prepared, Windows
from rerankd.backends.sources import resolve_source
from rerankd.backends.specs import LateInteractionSpec
from rerankd.backends.torch_runtime import (
    autocast_dtype,
    compute_context,
    default_batch_tokens,
    finish_model,
    pad_batch,
    precision_label,
    resolve_device,
    resolve_dtype,
)
from rerankd.backends.windows import FitPolicy, Fitted, Windower
from rerankd.types import Activation, ScoreOptions

__all__ = ["LateInteractionBackend", "Recipe"]

# The Dense activations a checkpoint may name (PyLate writes Identity; a converted sentence-transformers
# Dense keeps its own).
_ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "torch.nn.modules.linear.Identity": torch.nn.Identity,
    "torch.nn.modules.activation.Tanh": torch.nn.Tanh,
}


@dataclass(frozen=True, slots=True)
class Recipe:
    """How a checkpoint encodes: the settings PyLate reads from config_sentence_transformers.json."""

    query_prefix: str
    document_prefix: str
    query_length: int
    document_length: int
    do_query_expansion: bool
    attend_to_expansion_tokens: bool
    skiplist_words: tuple[str, ...]

    @classmethod
    def of(cls, saved: dict[str, Any], spec: LateInteractionSpec) -> Recipe:
        """This entry's settings, else the checkpoint's, else PyLate's defaults."""

        def pick(configured: Any, key: str, default: Any) -> Any:
            if configured is not None:
                return configured
            value = saved.get(key)
            return default if value is None else value

        expansion = bool(pick(None, "do_query_expansion", True))
        return cls(
            query_prefix=str(pick(spec.query_prefix, "query_prefix", "[Q] ")),
            document_prefix=str(pick(spec.document_prefix, "document_prefix", "[D] ")),
            query_length=int(pick(spec.query_length, "query_length", 32)),
            document_length=int(pick(spec.max_length, "document_length", 180)),
            do_query_expansion=expansion,
            # Without expansion there is nothing to attend to (PyLate forces it off too).
            attend_to_expansion_tokens=expansion
            and bool(pick(spec.attend_to_expansion_tokens, "attend_to_expansion_tokens", False)),
            skiplist_words=tuple(pick(None, "skiplist_words", list(string.punctuation))),
        )


class LateInteractionBackend:
    activation: Activation = "identity"

    def __init__(
        self,
        model: Any,
        projection: torch.nn.Module,
        tokenizer: Any,
        recipe: Recipe,
        lowercase: bool,
        device: torch.device,
        spec: LateInteractionSpec,
    ) -> None:
        self.model = model
        self.projection = projection
        self.tokenizer = tokenizer
        self.recipe = recipe
        self.lowercase = lowercase
        self.device = device
        self.spec = spec
        self.precision = precision_label(spec.dtype, device)
        self.autocast = autocast_dtype(spec.dtype, device)  # None: compute in the weights' dtype
        self.batch_tokens = default_batch_tokens(device)
        self.query_prefix_id = _marker(tokenizer, recipe.query_prefix, "query_prefix")
        self.document_prefix_id = _marker(tokenizer, recipe.document_prefix, "document_prefix")
        # PyLate pads queries with the mask token (an MLM's), else the end token, else the pad token.
        expansion = next(
            (
                t
                for t in (tokenizer.mask_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
                if t is not None
            ),
            None,
        )
        if expansion is None and recipe.do_query_expansion:
            raise ValueError("query expansion needs a mask, end or pad token, and this tokenizer has none")
        self.expansion_id = expansion
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (expansion or 0)
        # Unknown words map to the unknown token, as in PyLate (which then skips that token too).
        skip = (tokenizer.convert_tokens_to_ids(word) for word in recipe.skiplist_words)
        self.skiplist = frozenset(token for token in skip if token is not None)
        self.max_length = max(recipe.document_length, recipe.query_length)
        uses_token_types = "token_type_ids" in tokenizer.model_input_names
        document_room = recipe.document_length - (self.document_prefix_id is not None)
        self.windows = Windower(tokenizer, document_room, with_token_types=uses_token_types)
        self.query_room = recipe.query_length - (self.query_prefix_id is not None)
        # forward() tells a query's expansion from the rest by its trailing expansion tokens: sound only if
        # every other input ends with a closing special token that is not the expansion token.
        closing = self.windows.rust.post_process(self.windows.rust.encode("a", add_special_tokens=False))
        if (
            not closing.special_tokens_mask
            or not closing.special_tokens_mask[-1]
            or closing.ids[-1] == expansion
        ):
            raise ValueError("late interaction needs a tokenizer that ends each text with a special token")

    @classmethod
    def load(cls, spec: LateInteractionSpec) -> LateInteractionBackend:
        source = resolve_source(spec)
        device = resolve_device(spec.device)
        revision, remote = spec.revision, spec.trust_remote_code
        modules = _read_json(source, "modules.json", revision)
        if isinstance(modules, list):
            checkpoint = _pylate_layout(source, revision, modules)
        else:
            checkpoint = _stanford_layout(source, revision)
        recipe = Recipe.of(checkpoint.settings, spec)
        dtype = resolve_dtype(spec.dtype, device)
        folder = checkpoint.folder
        tokenizer = AutoTokenizer.from_pretrained(
            source, subfolder=folder, revision=revision, trust_remote_code=remote
        )
        model = AutoModel.from_pretrained(
            source, subfolder=folder, dtype=dtype, revision=revision, trust_remote_code=remote
        )
        model = finish_model(model.eval().to(device), spec.dtype)
        layers = torch.nn.Sequential(*checkpoint.projection).eval().to(device, dtype)
        projection = finish_model(layers, spec.dtype)
        return cls(model, projection, tokenizer, recipe, checkpoint.lowercase, device, spec)

    def _text(self, text: str) -> str:
        text = text.strip()
        return text.lower() if self.lowercase else text

    def _query(self, query: str) -> tuple[Encoded, int]:
        """The query's input (marker inserted, expansion appended) and its text tokens."""
        rust = self.windows.rust
        encoding = rust.encode(self._text(query), add_special_tokens=False)
        encoding.truncate(max(0, self.query_room - self.windows.single_specials))
        text_tokens = len(encoding.ids)
        encoding = rust.post_process(encoding, None, True)
        ids, types = _marked(encoding.ids, encoding.type_ids, self.query_prefix_id)
        if self.recipe.do_query_expansion and self.expansion_id is not None:
            extra = self.recipe.query_length - len(ids)
            ids, types = ids + [self.expansion_id] * extra, types + [0] * extra
        return Encoded(ids, types if self.windows.with_token_types else None), text_tokens

    def prepare(self, query: str, documents: Sequence[str], options: ScoreOptions) -> Prepared:
        query_input, query_tokens = self._query(query)
        texts = [self._text(document) for document in documents]
        policy = FitPolicy.of(options, self.spec)
        fitted = self.windows.documents(texts, policy)
        inputs = [query_input]
        kept: list[list[int]] = []  # per window, the positions whose vectors MaxSim reads
        for item in fitted.inputs:
            ids, types = _marked(item.input_ids, item.token_type_ids, self.document_prefix_id)
            inputs.append(Encoded(ids, types if item.token_type_ids is not None else None))
            kept.append([p for p, token in enumerate(ids) if token not in self.skiplist])
        spans = _spans_as_sent(documents, texts, fitted)
        windows = Windows(fitted.owner, spans, len(documents), policy.best_window_weight)

        def window_scores(outputs: list[Any]) -> list[float]:
            query_vectors = outputs[0]
            count = query_vectors.shape[0]
            scores = []
            for vectors, positions in zip(outputs[1:], kept, strict=True):
                similarity = query_vectors @ vectors[positions].T
                scores.append(float(similarity.max(dim=1).values.sum()) / count)
            return scores

        def combine(outputs: list[Any]) -> list[float]:
            return windows.document_scores(window_scores(outputs))

        return Prepared(
            inputs,
            query_tokens,
            fitted.document_tokens,
            combine,
            fitted.chunks,
            windows=windows,
            window_scores=window_scores,
        )

    def forward(self, inputs: Sequence[Encoded]) -> list[torch.Tensor]:
        batch = pad_batch(inputs, self.pad_id, self.device)
        if self.recipe.do_query_expansion and not self.recipe.attend_to_expansion_tokens:
            mask = batch["attention_mask"]
            for row, item in enumerate(inputs):
                end = len(item)
                start = end - _trailing(item.input_ids, self.expansion_id)
                if start < end:
                    mask[row, start:end] = 0
        with torch.inference_mode(), compute_context(self.autocast, self.device):
            hidden = self.model(**batch).last_hidden_state
            vectors = self.projection(hidden).float()
            vectors = torch.nn.functional.normalize(vectors, dim=-1).cpu()
        return [vectors[row, : len(item)] for row, item in enumerate(inputs)]


def _marked(
    ids: Sequence[int], types: Sequence[int] | None, marker: int | None
) -> tuple[list[int], list[int]]:
    """The marker token inserted after the first (special) token, as PyLate inserts it."""
    ids, types = list(ids), list(types) if types is not None else [0] * len(ids)
    if marker is None:
        return ids, types
    return [*ids[:1], marker, *ids[1:]], [*types[:1], 0, *types[1:]]


def _trailing(ids: Sequence[int], token: int | None) -> int:
    count = 0
    for value in reversed(ids):
        if value != token:
            break
        count += 1
    return count


def _marker(tokenizer: Any, prefix: str, setting: str) -> int | None:
    """The id of a marker token; None for an empty prefix (no marker). PyLate adds a missing marker to the
    vocabulary with a new, untrained embedding: refused here, since such a checkpoint was not trained
    with it."""
    if not prefix:
        return None
    token = tokenizer.convert_tokens_to_ids(prefix)
    if token is None or token == tokenizer.unk_token_id:
        raise ValueError(
            f"{setting} {prefix!r} is not a token of this checkpoint's tokenizer; set {setting} to the "
            "marker it was trained with (e.g. [unused0] / [unused1], or [QueryMarker] / [DocumentMarker])"
        )
    return int(token)


def _spans_as_sent(documents: Sequence[str], texts: Sequence[str], fitted: Fitted) -> list[tuple[int, int]]:
    """Each window's character range in the document as sent: the text was stripped (and may have been
    lower-cased) before tokenizing."""
    spans: list[tuple[int, int]] = list(fitted.spans)
    if any(len(text) != len(document.strip()) for text, document in zip(texts, documents, strict=True)):
        from rerankd.backends.bi_encoder import _original_spans  # a lower-cased character became two

        stripped = [document.strip() for document in documents]
        spans = _original_spans(stripped, fitted.owner, spans)
    lead = [len(document) - len(document.lstrip()) for document in documents]
    return [
        (start + lead[owner], end + lead[owner])
        for owner, (start, end) in zip(fitted.owner, spans, strict=True)
    ]


def _read_json(source: str, name: str, revision: str | None, folder: str = "", required: bool = False) -> Any:
    """A JSON file of the checkpoint (a local folder or the hub); None where it has none, unless
    ``required`` (then transformers' error says why: missing, or not cached while offline)."""
    path = cached_file(
        source, name, subfolder=folder, revision=revision, _raise_exceptions_for_missing_entries=required
    )
    return json.loads(Path(path).read_text(encoding="utf-8")) if path else None


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    folder: str  # the encoder's subfolder ("" for the checkpoint's own)
    settings: dict[str, Any]  # what it says of the recipe, under PyLate's names
    lowercase: bool
    projection: list[torch.nn.Module]


def _pylate_layout(source: str, revision: str | None, modules: list[Any]) -> _Checkpoint:
    """A folder PyLate saved: sentence-transformers modules, config_sentence_transformers.json."""
    # PyLate keeps the Transformer and the Dense modules and drops any other (pooling, normalize).
    encoders = [m for m in modules if str(m.get("type", "")).endswith("Transformer")]
    denses = [m for m in modules if str(m.get("type", "")).endswith("Dense")]
    if len(encoders) != 1 or not denses:
        raise ValueError(
            f"{source}: a PyLate checkpoint has one Transformer module and Dense projection(s); "
            f"modules.json lists {[m.get('type') for m in modules]}"
        )
    folder = str(encoders[0].get("path", ""))
    saved = _read_json(source, "config_sentence_transformers.json", revision)
    encoder = _read_json(source, "sentence_bert_config.json", revision, folder)
    return _Checkpoint(
        folder,
        saved if isinstance(saved, dict) else {},
        isinstance(encoder, dict) and bool(encoder.get("do_lower_case", False)),
        [_dense(source, str(m["path"]), revision) for m in denses],
    )


def _stanford_layout(source: str, revision: str | None) -> _Checkpoint:
    """A folder of the Stanford ColBERT library (colbert-ir/colbertv2.0, RAGatouille's models): an
    ``HF_ColBERT`` whose weights hold the projection (``linear.weight``, no bias), and artifact.metadata,
    read as PyLate reads it (markers [unused0] / [unused1] where it names none)."""
    config = _read_json(source, "config.json", revision, required=True)
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if not architectures or architectures[0] != "HF_ColBERT":
        raise ValueError(
            f"{source} is neither a PyLate checkpoint (modules.json) nor a Stanford ColBERT one (config.json "
            "naming HF_ColBERT)"
        )
    metadata = _read_json(source, "artifact.metadata", revision)
    metadata = metadata if isinstance(metadata, dict) else {}
    settings = {
        "query_prefix": metadata.get("query_token_id") or "[unused0]",
        "document_prefix": metadata.get("doc_token_id") or "[unused1]",
        "query_length": metadata.get("query_maxlen"),
        "document_length": metadata.get("doc_maxlen"),
        "attend_to_expansion_tokens": metadata.get("attend_to_mask_tokens"),
    }
    weight = _linear_weights(source, "", revision)["weight"]
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    linear.load_state_dict({"weight": weight})
    return _Checkpoint("", settings, False, [linear])


def _dense(source: str, folder: str, revision: str | None) -> torch.nn.Module:
    """One Dense module: a linear layer and its activation, from its config.json and weights."""
    config = _read_json(source, "config.json", revision, folder)
    if not isinstance(config, dict):
        raise ValueError(f"the Dense module {folder!r} of {source} has no config.json")
    if config.get("use_residual"):
        raise ValueError(f"the Dense module {folder!r} of {source} has a residual branch (not supported)")
    name = str(config.get("activation_function", "torch.nn.modules.linear.Identity"))
    if name not in _ACTIVATIONS:
        raise ValueError(f"the Dense module {folder!r} of {source}: activation {name} is not supported")
    linear = torch.nn.Linear(
        int(config["in_features"]), int(config["out_features"]), bias=bool(config["bias"])
    )
    linear.load_state_dict(_linear_weights(source, folder, revision))
    return torch.nn.Sequential(linear, _ACTIVATIONS[name]())


def _linear_weights(source: str, folder: str, revision: str | None) -> dict[str, torch.Tensor]:
    """The ``linear.*`` tensors of a folder's weights (only those: in a Stanford checkpoint they sit
    beside the whole encoder's)."""

    def weights(name: str) -> str | None:
        return cached_file(
            source, name, subfolder=folder, revision=revision, _raise_exceptions_for_missing_entries=False
        )

    if safetensors := weights("model.safetensors"):
        with safe_open(safetensors, framework="pt") as tensors:
            names = [key for key in tensors.keys() if key.startswith("linear.")]
            state = {key: tensors.get_tensor(key) for key in names}
    elif legacy := weights("pytorch_model.bin"):
        loaded = torch.load(legacy, map_location="cpu", weights_only=True)
        state = {key: value for key, value in loaded.items() if key.startswith("linear.")}
    else:
        raise ValueError(f"{source} has no weights (model.safetensors) in {folder or 'its folder'}")
    if not state:
        raise ValueError(f"{source}: the weights in {folder or 'its folder'} hold no projection (linear.*)")
    return {key.removeprefix("linear."): value for key, value in state.items()}
