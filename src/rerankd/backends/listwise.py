"""Listwise rerankers: jina-reranker-v3 ("last but not late"), by the official ``modeling.py`` of its hub
repository (``JinaForRanking``, ``format_docs_prompts_func`` and ``rerank()``).

One sequence of its Qwen3 backbone reads a block of documents and then the query, inside the model's chat
prompt: every document is followed by ``<|embed_token|>`` and the query by ``<|rerank_token|>`` (both
removed from the caller's text first). The last hidden state at each of those tokens goes through the
projector (hidden → hidden/2, ReLU, → 512, no biases); a document's score is the cosine of its vector with
the query's. That cosine, in [−1, 1], is what the official ``rerank()`` returns as ``relevance_score``, so
it is served as is (activation ``identity``).

A long list is cut into blocks the way ``rerank()`` cuts it: the query to 512 tokens and each document to
2048, a block closed at 125 documents or when the tokens left (the window, less twice the query, less its
documents) are no more than one document's limit. Each block gives a query vector; they are averaged, each
weighted by its block's best ``(1 + cosine) / 2``, and every document is scored against that average. With
one block this is the block's own cosine.

Every document attends to the documents before it, so a score belongs to the whole list: there is no
per-document score to cache, and two requests never share a sequence. This is therefore a direct backend:
one request at a time on the model's thread, one forward pass per block, no padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, Qwen3Config, Qwen3Model, Qwen3PreTrainedModel

from rerankd.backends.base import DirectScores
from rerankd.backends.sources import resolve_source
from rerankd.backends.specs import ListwiseSpec
from rerankd.backends.torch_runtime import (
    autocast_dtype,
    compute_context,
    finish_model,
    precision_label,
    resolve_device,
    resolve_dtype,
)
from rerankd.types import Activation, ScoreOptions

__all__ = ["DOCUMENT_TOKEN", "QUERY_TOKEN", "ListwiseBackend", "block_prompt"]

DOCUMENT_TOKEN = "<|embed_token|>"
QUERY_TOKEN = "<|rerank_token|>"
PROJECTOR_DIM = 512  # fixed in the official JinaForRanking, whatever the hidden size
_SYSTEM = (
    "<|im_start|>system\n"
    "You are a search relevance expert who can determine a ranking of the passages based on how relevant "
    "they are to the query. If the query is a question, how relevant a passage is depends on how well it "
    "answers the question. If not, try to analyze the intent of the query and assess how well each passage "
    "satisfies the intent. If an instruction is provided, you should follow the instruction when "
    "determining the ranking.<|im_end|>\n<|im_start|>user\n"
)
_ASSISTANT = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def _without_markers(text: str) -> str:
    # Repeated until none is left: removing one marker can join the pieces of another.
    while QUERY_TOKEN in text or DOCUMENT_TOKEN in text:
        text = text.replace(QUERY_TOKEN, "").replace(DOCUMENT_TOKEN, "")
    return text


def block_prompt(query: str, documents: Sequence[str], instruction: str | None = None) -> str:
    """The text of one block: the official prompt, with the markers removed from the caller's text."""
    query = _without_markers(query)
    passages = "\n".join(
        f'<passage id="{index}">\n{_without_markers(document)}{DOCUMENT_TOKEN}\n</passage>'
        for index, document in enumerate(documents)
    )
    task = f"<instruct>\n{instruction}\n</instruct>\n" if instruction else ""
    return (
        f"{_SYSTEM}I will provide you with {len(documents)} passages, each indicated by a numerical "
        f"identifier. Rank the passages based on their relevance to query: {query}\n{task}{passages}\n"
        f"<query>\n{query}{QUERY_TOKEN}\n</query>{_ASSISTANT}"
    )


class _Ranker(Qwen3PreTrainedModel):  # type: ignore[no-untyped-call]
    """The backbone and projector under the official names (``model.*``, ``projector.0/2``), so that
    ``from_pretrained`` reads both from the official checkpoint without its remote code."""

    def __init__(self, config: Qwen3Config) -> None:
        super().__init__(config)
        self.model = Qwen3Model(config)
        half = config.hidden_size // 2
        self.projector = nn.Sequential(
            nn.Linear(config.hidden_size, half, bias=False),
            nn.ReLU(),
            nn.Linear(half, PROJECTOR_DIM, bias=False),
        )
        self.post_init()  # type: ignore[no-untyped-call]


class ListwiseBackend:
    activation: Activation = "identity"

    def __init__(self, ranker: Any, tokenizer: Any, device: torch.device, spec: ListwiseSpec) -> None:
        self.ranker = ranker
        self.tokenizer = tokenizer
        self.device = device
        self.spec = spec
        self.precision = precision_label(spec.dtype, device)
        self.autocast = autocast_dtype(spec.dtype, device)
        self.document_id = _marker_id(tokenizer, DOCUMENT_TOKEN)
        self.query_id = _marker_id(tokenizer, QUERY_TOKEN)
        limit = getattr(tokenizer, "model_max_length", 0)
        self.max_length = spec.max_length or (
            int(limit) if 0 < limit < 10**7 else int(ranker.config.max_position_embeddings)
        )

    @classmethod
    def load(cls, spec: ListwiseSpec) -> ListwiseBackend:
        source = resolve_source(spec)
        device = resolve_device(spec.device)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=spec.revision)
        # With output_loading_info, from_pretrained returns (model, info), which its annotation omits.
        loaded: Any = _Ranker.from_pretrained(
            source,
            dtype=resolve_dtype(spec.dtype, device),
            revision=spec.revision or "main",
            output_loading_info=True,
        )
        ranker, info = loaded
        missing = [key for key in info["missing_keys"] if key.startswith(("projector.", "model."))]
        if missing:
            raise ValueError(
                f"{spec.source} is not a listwise checkpoint like jina-reranker-v3: it lacks "
                f"{', '.join(sorted(missing)[:4])}"
            )
        ranker = finish_model(ranker.eval().to(device), spec.dtype)
        return cls(ranker, tokenizer, device, spec)

    def score(self, query: str, documents: Sequence[str], options: ScoreOptions) -> DirectScores:
        if not documents:
            return DirectScores([], 0, [])
        spec = self.spec
        document_limit = min(spec.max_document_tokens, options.max_tokens_per_doc or spec.max_document_tokens)
        query, query_length = self._cut(query, spec.max_query_tokens)
        cut = [self._cut(document, document_limit) for document in documents]
        texts = [text for text, _ in cut]
        total = 0
        query_vectors: list[torch.Tensor] = []
        document_vectors: list[torch.Tensor] = []
        weights: list[float] = []
        for start, end in self._blocks([length for _, length in cut], query_length, document_limit):
            ids = self.tokenizer(block_prompt(query, texts[start:end], options.instruction))["input_ids"]
            total += len(ids)
            query_vector, block_vectors = self._vectors(ids, end - start)
            cosines = torch.cosine_similarity(block_vectors, query_vector.unsqueeze(0), dim=-1)
            query_vectors.append(query_vector)
            document_vectors.append(block_vectors)
            weights.append(float(((1.0 + cosines) / 2.0).max()))
        weight = torch.tensor(weights).unsqueeze(1)
        merged = (weight * torch.stack(query_vectors)).sum(dim=0) / weight.sum()
        scores = torch.cosine_similarity(torch.cat(document_vectors), merged.unsqueeze(0), dim=-1)
        # Usage counts every token read: each document's own tokens, and the rest of every sequence (the
        # prompt and the query, which each block reads twice) as the query's.
        counts = [len(self.tokenizer(_without_markers(text))["input_ids"]) for text in texts]
        return DirectScores([float(s) for s in scores], total - sum(counts), counts)

    def _cut(self, text: str, limit: int) -> tuple[str, int]:
        """The text cut to ``limit`` tokens (decoded back, as the official code does) and its length."""
        ids = self.tokenizer(text, truncation=True, max_length=limit)["input_ids"]
        return (self.tokenizer.decode(ids) if len(ids) >= limit else text), len(ids)

    def _blocks(
        self, lengths: Sequence[int], query_length: int, document_limit: int
    ) -> list[tuple[int, int]]:
        """Consecutive ranges of documents, one per sequence, by the official rule."""
        blocks: list[tuple[int, int]] = []
        start, room = 0, self.max_length - 2 * query_length
        for index, length in enumerate(lengths):
            room -= length
            if index + 1 - start >= self.spec.block_documents or room <= document_limit:
                blocks.append((start, index + 1))
                start, room = index + 1, self.max_length - 2 * query_length
        if start < len(lengths):
            blocks.append((start, len(lengths)))
        return blocks

    def _vectors(self, ids: list[int], documents: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass over a block: the projected query vector and the documents' vectors, in fp32."""
        tokens = torch.tensor([ids], device=self.device)
        with torch.inference_mode(), compute_context(self.autocast, self.device):
            hidden = self.ranker.model(input_ids=tokens).last_hidden_state[0]
            at_documents = tokens[0] == self.document_id
            at_query = tokens[0] == self.query_id
            if int(at_documents.sum()) != documents or int(at_query.sum()) != 1:
                raise RuntimeError("the block's markers do not match its documents")
            projected = self.ranker.projector(hidden[at_query | at_documents]).float()
        # The query marker comes after every document marker.
        return projected[-1], projected[:-1]


def _marker_id(tokenizer: Any, marker: str) -> int:
    ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"the tokenizer has no single token {marker}: not a jina-reranker-v3 tokenizer")
    return int(ids[0])
