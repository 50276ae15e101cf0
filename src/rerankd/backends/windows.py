"""Fitting documents into a model's window: truncation (either end), chunking with overlap, or refusal.

Chunks are all full windows: the last one ends at the document's end and overlaps its neighbour by
more than ``overlap`` when it must (a short last window, scored on its own, can outrank the text
around it for little reason). Every window knows its character range in the document as sent.

Works on the tokenizer's own Rust ``tokenizers.Tokenizer`` (a private copy with padding and
truncation switched off, since transformers changes those settings on the shared one per call):
the query and the documents are encoded once without special tokens, cut into windows, and each
(query, window) pair gets the model's special tokens and token types from the tokenizer's
post-processor — exactly what the tokenizer would produce for that text pair.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokenizers import Encoding, Tokenizer

from rerankd.backends.base import Encoded
from rerankd.backends.specs import TransformerSpec
from rerankd.errors import InvalidRequest
from rerankd.types import LongDocuments, ScoreOptions

__all__ = ["FitPolicy", "Fitted", "Windower", "window_starts"]


@dataclass(frozen=True, slots=True)
class FitPolicy:
    long_documents: LongDocuments
    max_chunks: int
    overlap: int
    max_tokens_per_doc: int | None
    best_window_weight: float = 1.0

    @classmethod
    def of(cls, options: ScoreOptions, spec: TransformerSpec) -> FitPolicy:
        """The request's choices where it made them, the model's configured defaults elsewhere."""
        return cls(
            long_documents=options.long_documents or spec.long_documents,
            max_chunks=options.max_chunks_per_doc or spec.max_chunks_per_doc,
            overlap=spec.overlap_tokens if options.overlap_tokens is None else options.overlap_tokens,
            max_tokens_per_doc=options.max_tokens_per_doc,
            best_window_weight=spec.best_window_weight,
        )


def window_starts(length: int, budget: int, overlap: int, max_chunks: int) -> list[int]:
    """Where each window of ``budget`` tokens starts in a document of ``length`` tokens: every
    ``budget - overlap`` tokens, the last one moved back to end at the document's end (so that it is
    full length too), at most ``max_chunks`` windows (then the document's end is not scored)."""
    if length <= budget:
        return [0]
    step = budget - min(overlap, budget // 2)
    starts = [0]
    while starts[-1] + budget < length and len(starts) < max(1, max_chunks):
        starts.append(min(starts[-1] + step, length - budget))
    return starts


@dataclass(frozen=True, slots=True)
class Fitted:
    inputs: list[Encoded]
    owner: list[int]  # the document each input belongs to
    query_tokens: int
    document_tokens: list[int]  # tokens scored per document, summed over its windows
    chunks: list[int]  # windows per document
    spans: list[tuple[int, int]]  # each input's character range in its document


class Windower:
    def __init__(self, tokenizer: Any, max_length: int, *, with_token_types: bool) -> None:
        self.rust: Tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self.rust.no_padding()
        self.rust.no_truncation()
        self.max_length = max_length
        self.with_token_types = with_token_types
        self.pair_specials = (
            self.rust.post_processor.num_special_tokens_to_add(True) if self.rust.post_processor else 0
        )
        self.single_specials = (
            self.rust.post_processor.num_special_tokens_to_add(False) if self.rust.post_processor else 0
        )

    def _encoded(self, encoding: Encoding) -> Encoded:
        return Encoded(encoding.ids, encoding.type_ids if self.with_token_types else None)

    def _query(self, query: str) -> Encoding:
        """The query, cut to half the window if longer, so that documents keep room."""
        encoding = self.rust.encode(query, add_special_tokens=False)
        limit = max(1, (self.max_length - self.pair_specials) // 2)
        if len(encoding.ids) > limit:
            encoding.truncate(limit)
        return encoding

    def _windows(self, document: Encoding, budget: int, policy: FitPolicy, index: int) -> list[Encoding]:
        if policy.max_tokens_per_doc is not None and len(document.ids) > policy.max_tokens_per_doc:
            document.truncate(policy.max_tokens_per_doc, direction="right")
        if len(document.ids) <= budget:
            return [document]
        mode = policy.long_documents
        if mode == "error":
            raise InvalidRequest(
                f"document {index} has {len(document.ids)} tokens, more than the {budget} that fit the "
                "model's window next to the query; shorten it, or allow truncation"
            )
        if mode in ("truncate_end", "truncate_start"):
            document.truncate(budget, direction="right" if mode == "truncate_end" else "left")
            return [document]
        windows = []
        length = len(document.ids)
        for start in window_starts(length, budget, policy.overlap, policy.max_chunks):
            # A copy cut at both ends (Encoding has no slicing): ids, token types and offsets stay aligned.
            window = copy.deepcopy(document)
            window.truncate(start + budget, direction="right")
            window.truncate(budget, direction="left")
            windows.append(window)
        return windows

    def pairs(self, query: str, documents: Sequence[str], policy: FitPolicy) -> Fitted:
        """Cross-encoder inputs: ``[CLS] query [SEP] window [SEP]`` for each window of each document."""
        encoded_query = self._query(query)
        budget = self.max_length - self.pair_specials - len(encoded_query.ids)
        return self._fit(documents, budget, policy, encoded_query)

    def documents(self, documents: Sequence[str], policy: FitPolicy) -> Fitted:
        """Each window of each document alone (``[CLS] window [SEP]``), for models that encode the query
        their own way."""
        return self._fit(documents, self.max_length - self.single_specials, policy, None)

    def singles(self, query: str, documents: Sequence[str], policy: FitPolicy) -> tuple[Encoded, Fitted]:
        """Bi-encoder inputs: the query alone, and each window of each document alone."""
        encoded_query = self.rust.encode(query, add_special_tokens=False)
        encoded_query.truncate(self.max_length - self.single_specials)
        query_input = self._encoded(self.rust.post_process(encoded_query, None, True))
        fitted = self._fit(documents, self.max_length - self.single_specials, policy, None)
        return query_input, Fitted(
            fitted.inputs,
            fitted.owner,
            len(encoded_query.ids),
            fitted.document_tokens,
            fitted.chunks,
            fitted.spans,
        )

    def _fit(
        self, documents: Sequence[str], budget: int, policy: FitPolicy, query: Encoding | None
    ) -> Fitted:
        inputs: list[Encoded] = []
        owner: list[int] = []
        tokens: list[int] = []
        chunks: list[int] = []
        spans: list[tuple[int, int]] = []
        for index, document in enumerate(self.rust.encode_batch(list(documents), add_special_tokens=False)):
            windows = self._windows(document, budget, policy, index)
            for window in windows:
                inputs.append(
                    self._encoded(
                        self.rust.post_process(query, window, True)
                        if query is not None
                        else self.rust.post_process(window, None, True)
                    )
                )
                owner.append(index)
                offsets = window.offsets
                spans.append((offsets[0][0], offsets[-1][1]) if offsets else (0, len(documents[index])))
            tokens.append(sum(len(window.ids) for window in windows))
            chunks.append(len(windows))
        return Fitted(inputs, owner, len(query.ids) if query is not None else 0, tokens, chunks, spans)
