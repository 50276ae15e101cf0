"""LLM rerankers: causal LMs asked "does this document meet the query?" and scored by their answer.

Qwen3-Reranker, mxbai-rerank-v2, bge-reranker-v2-gemma and models like them are LMs fine-tuned to answer
one token. Each (query, document) pair becomes the model's own prompt (``prompts.YesNoPrompt``: for
Qwen3 a system turn, the user turn ``<Instruct>: ...\\n<Query>: ...\\n<Document>: ...`` and the opened
assistant turn), and the raw score is ``logit(yes) - logit(no)`` at the last position, so
the sigmoid the service applies is the model card's ``softmax([no, yes])[yes]`` and ``raw_scores`` gives
the log-odds; a prompt without a ``no`` answer (bge-reranker-v2-gemma) scores ``logit(yes)``, whose
sigmoid is the probability of "yes". A sequence-classification conversion of such a model (its one-label
head is the ``yes`` row of the LM head minus the ``no`` row) loads here too and scores the same prompt
with that head.

Tokenization is part of each recipe. A prompt is a list of pieces, each tokenized alone and joined as
ids, as the authors' code does (mxbai, FlagEmbedding); Qwen3's model card tokenizes the filled-in prompt
as one text, which is one piece. The document is encoded inside its piece, and the token offsets tell
the document's tokens from the piece's (a byte-level BPE glues the space before the document to its first
word, so encoding the document alone would give other tokens). Only the document's tokens are truncated
or cut into windows (windows.py's policies); the instruction and the prompt's end never are. An overlong
query is cut to the prompt's ``query_share`` of the room: within one piece, of what the rest of the
prompt leaves; in a piece of its own, of the span from its piece to the document's (the piece's tokens
cut at the end, as the authors' code cuts them).

Batches are padded on the left with position ids counting real tokens only, so every row ends at the
last column and is computed as it would be alone: a document's score does not depend on its batch. The
tokens all rows of a batch begin with (one request's prompt up to the document; the system prompt and
instruction, across requests) are computed once and their keys and values reused by every row.
Usage counts every token the model reads: ``query_tokens`` is the prompt around the documents (template,
instruction and query) once per input scored, ``document_tokens`` the document's tokens in its windows.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import torch
from tokenizers import Encoding, Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from rerankd.backends.base import Encoded, Prepared, Windows
from rerankd.backends.sources import resolve_source
from rerankd.backends.specs import LlmRerankerSpec
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
from rerankd.backends.windows import FitPolicy, window_starts
from rerankd.errors import InvalidRequest
from rerankd.types import Activation, ScoreOptions

__all__ = ["LlmRerankerBackend", "fit_document", "shared_prefix_length", "split_prompt_tokens"]

log = logging.getLogger(__name__)

# The model card's max_length for Qwen3-Reranker; the models accept far more (32k-40k positions), but a
# longer window mostly costs memory and time, and a config can raise it.
DEFAULT_MAX_LENGTH = 8192
# Rows of a batch that begin with the same tokens (the prompt up to the document, for one request's
# documents; up to the query, for requests with the same instruction) share that prefix's keys and values,
# computed once, when it is at least this long.
MIN_SHARED_PREFIX = 16


def _default_max_length(tokenizer: Any, config: Any) -> int:
    limits = [DEFAULT_MAX_LENGTH]
    if 0 < getattr(tokenizer, "model_max_length", 0) < 1_000_000:
        limits.append(int(tokenizer.model_max_length))
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        limits.append(int(positions))
    return min(limits)


def _recipe_max_length(span_length: int, frame: int, config: Any) -> int:
    """The window of a recipe that sets the length of its query-to-document span: that span and the
    prompt's other tokens, within the model's positions (as mxbai's code caps it; its tokenizer's limit
    plays no part there)."""
    positions = getattr(config, "max_position_embeddings", None)
    return min(span_length + frame, int(positions)) if positions else span_length + frame


def _token_id(rust: Tokenizer, token: str, field: str) -> int:
    """The id of a configured answer token: a vocabulary entry (``yes``), or text that is one token."""
    found = rust.token_to_id(token)
    if found is not None:
        return int(found)
    ids = rust.encode(token, add_special_tokens=False).ids
    if len(ids) == 1:
        return int(ids[0])
    raise ValueError(
        f"{field} {token!r} is not one token of this model's vocabulary (as text it is {len(ids)} tokens); "
        f"set {field} to the vocabulary entry the model answers with"
    )


def split_prompt_tokens(encoding: Encoding, start: int, end: int) -> tuple[list[int], list[int], list[int]]:
    """Token ids of a prompt encoded with a document at characters ``[start, end)``: before, in, after it.

    A token that holds any of the document's characters (including one that also holds prompt text, such
    as a space glued to the first word) belongs to the document.
    """
    ids, offsets = encoding.ids, encoding.offsets
    head = 0
    while head < len(ids) and offsets[head][1] <= start:
        head += 1
    tail = len(ids)
    while tail > head and offsets[tail - 1][0] >= end:
        tail -= 1
    return list(ids[:head]), list(ids[head:tail]), list(ids[tail:])


def fit_document(ids: list[int], budget: int, policy: FitPolicy, index: int) -> list[tuple[int, int]]:
    """The windows of one document's tokens, as token ranges: itself, cut, or chunked with overlap into
    full-length windows (as windows.py does)."""
    if policy.max_tokens_per_doc is not None:
        ids = ids[: policy.max_tokens_per_doc]
    if len(ids) <= budget:
        return [(0, len(ids))]
    mode = policy.long_documents
    if mode == "error":
        raise InvalidRequest(
            f"document {index} has {len(ids)} tokens, more than the {budget} that fit the model's window "
            "next to the prompt; shorten it, or allow truncation"
        )
    if mode == "truncate_end":
        return [(0, budget)]
    if mode == "truncate_start":
        return [(len(ids) - budget, len(ids))]
    starts = window_starts(len(ids), budget, policy.overlap, policy.max_chunks)
    return [(start, start + budget) for start in starts]


class LlmRerankerBackend:
    activation: Activation = "sigmoid"

    def __init__(self, model: Any, tokenizer: Any, device: torch.device, spec: LlmRerankerSpec) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.spec = spec
        self.prompt = spec.yes_no_prompt()
        self.precision = precision_label(spec.dtype, device)
        self.autocast = autocast_dtype(spec.dtype, device)  # None: compute in the weights' dtype
        self.batch_tokens = default_batch_tokens(device)
        # A private copy of the Rust tokenizer: transformers changes padding and truncation on the shared
        # one per call. Special tokens are never added: the template spells out every control token.
        self.rust: Tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self.rust.no_padding()
        self.rust.no_truncation()
        self.bos: list[int] = []
        if self.prompt.bos:
            if tokenizer.bos_token_id is None:
                raise ValueError("the prompt begins with a BOS token, and this model's tokenizer has none")
            self.bos = [int(tokenizer.bos_token_id)]
        self.config = model.config
        # A recipe that sets its span's length sizes each request's window around it, as its authors' code
        # does (a longer task prompt, a longer window); a configured max_length is the window itself.
        self.recipe_window = not spec.max_length and self.prompt.span_length is not None
        if spec.max_length:
            self.max_length = spec.max_length
        elif self.recipe_window:
            self.max_length = self._window(self._pieces(self.prompt.default_instruction or "", ""))
        else:
            self.max_length = _default_max_length(tokenizer, model.config)
        self.classifier = "ForSequenceClassification" in type(model).__name__
        config = model.config
        pad_id = getattr(config, "pad_token_id", None) if self.classifier else None
        for candidate in (pad_id, tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
            if candidate is not None:
                self.pad_id = int(candidate)
                break
        if self.classifier:
            num_labels = int(config.num_labels)
            if num_labels not in (1, 2):
                raise ValueError(f"a reranker needs 1 or 2 output labels; this model has {num_labels}")
            self.num_labels = num_labels
            # The head reads each row's last token that is not padding, found by the config's pad id;
            # without one the model refuses batches of more than one row.
            config.pad_token_id = self.pad_id
        else:
            self.yes_id = _token_id(self.rust, self.prompt.yes_token, "yes_token")
            # None: the prompt is scored by its one answer's logit.
            self.no_id = (
                None
                if self.prompt.no_token is None
                else _token_id(self.rust, self.prompt.no_token, "no_token")
            )
            # Only the last position's logits are needed; most LMs can skip the vocabulary-sized
            # projection everywhere else.
            self.keep_last = "logits_to_keep" in inspect.signature(model.forward).parameters
        # transformers 5.x renamed the key/value cache argument from ``past_key_values`` to ``cache`` (the
        # old name warns, and goes in 5.40); older releases know only the old one.
        self.cache_argument = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )
        self.share_prefix = True
        fixed = self._fixed_tokens(self.prompt.default_instruction or "")
        if fixed + 2 > self.max_length:
            raise ValueError(
                f"the prompt alone takes {fixed} tokens, which leaves no room in the {self.max_length}-token "
                "window for a query and a document; raise max_length or shorten the template"
            )

    @classmethod
    def load(cls, spec: LlmRerankerSpec) -> LlmRerankerBackend:
        source = resolve_source(spec)
        device = resolve_device(spec.device)
        # Keywords spelled out: transformers types from_pretrained's keywords, and a **dict fits none of them.
        revision, remote = spec.revision, spec.trust_remote_code
        config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=remote)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=remote)
        architectures = getattr(config, "architectures", None) or []
        classifier = any(name.endswith("ForSequenceClassification") for name in architectures)
        loader = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
        model = loader.from_pretrained(
            source,
            config=config,
            dtype=resolve_dtype(spec.dtype, device),
            revision=revision,
            trust_remote_code=remote,
        )
        model = finish_model(model.eval().to(device), spec.dtype)
        return cls(model, tokenizer, device, spec)

    # -- tokenization (the scheduler's tokenizer thread) ------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return list(self.rust.encode(text, add_special_tokens=False).ids) if text else []

    def _pieces(self, instruction: str, query: str) -> list[list[int]]:
        """The ids of each piece but the document's (left empty), the slots filled in, nothing cut."""
        document = self.prompt.document_piece
        return [
            []
            if index == document
            else self._encode(self.prompt.fill(piece, instruction=instruction, query=query))
            for index, piece in enumerate(self.prompt.pieces)
        ]

    def _frame_tokens(self, pieces: list[list[int]]) -> int:
        """The prompt's tokens outside the span from the query's piece to the document's."""
        first, last = sorted((self.prompt.query_piece, self.prompt.document_piece))
        return len(self.bos) + sum(len(ids) for index, ids in enumerate(pieces) if not first <= index <= last)

    def _fixed_tokens(self, instruction: str) -> int:
        """The prompt's tokens with an empty query and no document."""
        before, after = self.prompt.around_document(instruction=instruction, query="")
        pieces = sum(len(ids) for ids in self._pieces(instruction, ""))
        return len(self.bos) + pieces + len(self._encode(before + after))

    def _instruction(self, options: ScoreOptions) -> str:
        if options.instruction is not None and options.instruction.strip():
            return options.instruction
        return self.prompt.default_instruction or ""

    def _window(self, pieces: list[list[int]]) -> int:
        """The tokens one input may have, given the prompt's pieces."""
        if not self.recipe_window or self.prompt.span_length is None:
            return self.max_length
        return _recipe_max_length(self.prompt.span_length, self._frame_tokens(pieces), self.config)

    def _no_room(self, room: int, window: int) -> InvalidRequest:
        return InvalidRequest(
            f"the prompt with this instruction takes {window - room} of the model's "
            f"{window} tokens and leaves no room for the query and documents; send a shorter instruction"
        )

    def _fit_query(self, query: str, instruction: str) -> str:
        """The query in the document's piece, cut to its share of the room the rest of the prompt leaves
        (documents keep the rest)."""
        room = self.max_length - self._fixed_tokens(instruction)
        if room < 2:
            raise self._no_room(room, self.max_length)
        encoding = self.rust.encode(query, add_special_tokens=False)
        limit = int(room * self.prompt.query_share)
        if len(encoding.ids) > limit:
            query = query[: encoding.offsets[limit][0]]
        return query

    def _frame(self, query: str, instruction: str) -> tuple[list[int], str, str, list[int], int]:
        """The prompt around the document: the ids before its piece, the piece's text before and after the
        document, the ids after its piece (an overlong query cut), and the window."""
        prompt = self.prompt
        document = prompt.document_piece
        if prompt.query_piece == document:
            query = self._fit_query(query, instruction)
        pieces = self._pieces(instruction, query)
        window = self._window(pieces)
        if prompt.query_piece != document:
            room = window - self._frame_tokens(pieces)
            if room < 2:
                raise self._no_room(room, window)
            pieces[prompt.query_piece] = pieces[prompt.query_piece][: int(room * prompt.query_share)]
        before, after = prompt.around_document(instruction=instruction, query=query)
        head = [*self.bos, *(token for ids in pieces[:document] for token in ids)]
        tail = [token for ids in pieces[document + 1 :] for token in ids]
        return head, before, after, tail, window

    def prepare(self, query: str, documents: Sequence[str], options: ScoreOptions) -> Prepared:
        policy = FitPolicy.of(options, self.spec)
        opening, before, after, closing, window = self._frame(query, self._instruction(options))
        texts = [before + document + after for document in documents]
        encodings = self.rust.encode_batch(texts, add_special_tokens=False)
        inputs: list[Encoded] = []
        owner: list[int] = []
        spans: list[tuple[int, int]] = []
        document_tokens: list[int] = []
        chunks: list[int] = []
        prompt_tokens = 0
        for index, (document, encoding) in enumerate(zip(documents, encodings, strict=True)):
            inner, body, outer = split_prompt_tokens(encoding, len(before), len(before) + len(document))
            offsets = encoding.offsets[len(inner) : len(inner) + len(body)]
            # The pieces before and after the document's piece, tokenized alone, around its tokens.
            head, tail = [*opening, *inner], [*outer, *closing]
            budget = max(1, window - len(head) - len(tail))
            windows = fit_document(body, budget, policy, index)
            for start, end in windows:
                inputs.append(Encoded([*head, *body[start:end], *tail]))
                owner.append(index)
                # The document's characters begin after the prompt's `before` part.
                spans.append(
                    (
                        max(0, offsets[start][0] - len(before)) if end > start else 0,
                        min(len(document), offsets[end - 1][1] - len(before)) if end > start else 0,
                    )
                )
            prompt_tokens += (len(head) + len(tail)) * len(windows)
            document_tokens.append(sum(end - start for start, end in windows))
            chunks.append(len(windows))
        fitted = Windows(owner, spans, len(documents), policy.best_window_weight)
        return Prepared(
            inputs,
            prompt_tokens,
            document_tokens,
            fitted.document_scores,
            chunks,
            windows=fitted,
            window_scores=list,
        )

    # -- the forward pass (the model's worker thread) ------------------------------------------

    def forward(self, inputs: Sequence[Encoded]) -> list[float]:
        shared = shared_prefix_length(inputs) if self.share_prefix and len(inputs) > 1 else 0
        if shared >= MIN_SHARED_PREFIX:
            try:
                return self._forward(inputs, shared)
            except (AttributeError, TypeError, NotImplementedError) as exc:
                # A model whose code takes no key/value cache (remote code, say): compute rows in full.
                log.warning(
                    "model %r cannot reuse a shared prefix (%s); computing every row in full",
                    self.spec.name,
                    exc,
                )
                self.share_prefix = False
        return self._forward(inputs, 0)

    def _forward(self, inputs: Sequence[Encoded], shared: int) -> list[float]:
        batch = pad_batch(
            [Encoded(item.input_ids[shared:]) for item in inputs], self.pad_id, self.device, side="left"
        )
        mask = batch["attention_mask"]
        # Left padding would shift a short row's positions by its padding; counting real tokens only
        # gives every row the positions it has alone.
        positions = shared + (mask.cumsum(-1) - 1).clamp(min=0)
        extra: dict[str, Any] = {"use_cache": False}
        # The shared prefix's keys and values too are computed under autocast, like the rest of the rows.
        with torch.inference_mode(), compute_context(self.autocast, self.device):
            if shared:
                extra = {self.cache_argument: self._prefix_cache(inputs[0].input_ids[:shared], len(inputs))}
                mask = torch.cat([mask.new_ones(len(inputs), shared), mask], dim=1)
            if self.classifier:
                logits = self.model(
                    batch["input_ids"], attention_mask=mask, position_ids=positions, **extra
                ).logits
                logits = logits.float()
                scores = logits[:, 0] if self.num_labels == 1 else logits[:, 1] - logits[:, 0]
            else:
                if self.keep_last:
                    extra["logits_to_keep"] = 1
                output = self.model(batch["input_ids"], attention_mask=mask, position_ids=positions, **extra)
                last = output.logits[:, -1].float()
                scores = (
                    last[:, self.yes_id] if self.no_id is None else last[:, self.yes_id] - last[:, self.no_id]
                )
        return [float(score) for score in scores.cpu()]

    def _prefix_cache(self, prefix: Sequence[int], rows: int) -> Any:
        """The keys and values of the tokens every row starts with, computed once, one copy per row.

        The forward pass appends each layer's keys and values of the rest to it and keeps them until it
        returns: for the whole batch, so at most ``max_batch_tokens`` tokens' worth (for Qwen3-0.6B in fp32,
        229 kB a token: 1.9 GB at the default 8192), where a pass without a cache holds one layer's at a time.
        """
        ids = torch.tensor([list(prefix)], dtype=torch.long, device=self.device)
        output = self.model.base_model(input_ids=ids, use_cache=True)
        cache = getattr(output, "cache", None)
        if cache is None:
            cache = output.past_key_values
        cache.batch_repeat_interleave(rows)
        return cache


def shared_prefix_length(inputs: Sequence[Encoded]) -> int:
    """How many leading tokens all inputs have in common, leaving every input at least one of its own."""
    first = inputs[0].input_ids
    limit = min(len(item) for item in inputs) - 1
    for index in range(limit):
        token = first[index]
        if any(item.input_ids[index] != token for item in inputs):
            return index
    return max(0, limit)
