"""How an LLM reranker (kind ``llm-reranker``) is asked about one document: the prompt's pieces with their
slots, how they are tokenized, the answer tokens, and the built-in presets that the ``prompt`` setting
names (each an author's published recipe), with the hub ids each preset is recognised from.
"""

from __future__ import annotations

import fnmatch
import string
from dataclasses import dataclass

__all__ = ["DEFAULT_PROMPT", "PROMPT_PRESETS", "YesNoPrompt", "preset_for_source"]


PROMPT_SLOTS = ("instruction", "query", "document")


@dataclass(frozen=True, slots=True)
class YesNoPrompt:
    """How an LLM reranker (kind ``llm-reranker``) is asked about one document.

    ``pieces`` is the whole prompt in order, control tokens spelt out, with one ``{query}`` slot, exactly
    one ``{document}`` slot, and optionally ``{instruction}`` (literal braces doubled, as in
    ``str.format``). Each piece is tokenized on its own, without special tokens, and the ids are joined:
    that is how the authors' code of some models tokenizes, and it differs from tokenizing the joined
    text wherever a merge would cross a seam. A prompt tokenized as one text is a single piece.

    The raw score is ``logit(yes_token) - logit(no_token)`` at the last position; a prompt without a
    ``no_token`` is scored by ``logit(yes_token)`` alone, so the sigmoid the service applies gives the
    probability of the one answer.
    """

    pieces: tuple[str, ...]
    yes_token: str
    no_token: str | None
    default_instruction: str | None = None
    # How a request's instruction fills the {instruction} slot; no instruction leaves the slot empty.
    instruction_format: str = "{instruction}"
    # The ids begin with the tokenizer's BOS token.
    bos: bool = False
    # The query's share of the room: of the window less the prompt's own tokens when the query and the
    # document are in one piece; of the tokens from the query's piece to the document's when they are in
    # pieces of their own (that piece is cut, as the authors' code cuts it).
    query_share: float = 0.5
    # The recipe's own length of the span from the query's piece to the document's: unless max_length is
    # set, each request's window is this plus the prompt's other tokens (within the model's positions), as
    # the authors' code sizes it. None: the window is the model's own limit.
    span_length: int | None = None

    def check(self) -> None:
        """Raise ValueError, saying what is wrong, unless the pieces and tokens can be used."""
        names: list[str] = []
        for piece in self.pieces:
            names.extend(_slots(piece))
        if names.count("document") != 1 or "query" not in names:
            raise ValueError("prompt_template needs exactly one {document} slot and a {query} slot")
        if len(self.pieces) > 1 and names.count("query") > 1:
            raise ValueError("a prompt of several pieces needs exactly one {query} slot")
        if names.count("instruction") > 1:
            raise ValueError("prompt_template has more than one {instruction} slot")
        if _slots(self.instruction_format) != ["instruction"]:
            raise ValueError("instruction_format needs exactly one {instruction} slot and no other")
        if not self.yes_token or self.yes_token == self.no_token or self.no_token == "":
            raise ValueError("yes_token and no_token must be two different, non-empty tokens")
        if not 0 < self.query_share < 1:
            raise ValueError("query_share must be between 0 and 1")

    @property
    def document_piece(self) -> int:
        """The index of the piece that holds the document."""
        return next(index for index, piece in enumerate(self.pieces) if "document" in _slots(piece))

    @property
    def query_piece(self) -> int:
        """The index of the piece that holds the query."""
        return next(index for index, piece in enumerate(self.pieces) if "query" in _slots(piece))

    def fill(self, piece: str, *, instruction: str, query: str) -> str:
        """A piece without a document slot, the other slots filled in."""
        return "".join(
            literal + self._value(name, instruction, query) for literal, name, _, _ in _parse(piece)
        )

    def around_document(self, *, instruction: str, query: str) -> tuple[str, str]:
        """The document's piece before and after the document, the other slots filled in."""
        before: list[str] = []
        after: list[str] = []
        target = before
        for literal, name, _, _ in _parse(self.pieces[self.document_piece]):
            target.append(literal)
            if name == "document":
                target = after
            else:
                target.append(self._value(name, instruction, query))
        return "".join(before), "".join(after)

    def _value(self, name: str | None, instruction: str, query: str) -> str:
        if name == "query":
            return query
        if name == "instruction" and instruction:
            return self.instruction_format.format(instruction=instruction)
        return ""


def _parse(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    return list(string.Formatter().parse(template))


def _slots(template: str) -> list[str]:
    """The slots of a template, checked: known names, no format spec or conversion."""
    try:
        fields = [
            (name, spec, conversion) for _, name, spec, conversion in _parse(template) if name is not None
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
    return [name for name, _, _ in fields]


# Built-in prompts, by the name `prompt:` selects, each from its authors' code or model card.
PROMPT_PRESETS: dict[str, YesNoPrompt] = {
    # Qwen3-Reranker's model card: a system turn asking for "yes" or "no", the user turn
    # "<Instruct>: ...\n<Query>: ...\n<Document>: ...", and an assistant turn opened with an empty thinking
    # block, after which the model's next token is the answer. The card's code tokenizes the middle as one
    # text (its fixed prefix and suffix alone give the same ids: they end and begin at control tokens).
    "qwen3": YesNoPrompt(
        pieces=(
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
            'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
            "<|im_start|>user\n"
            "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n",
        ),
        yes_token="yes",
        no_token="no",
        default_instruction="Given a web search query, retrieve relevant passages that answer the query",
    ),
    # mixedbread's mxbai-rerank package (mxbai_rerank/mxbai_rerank_v2.py, MxbaiRerankV2): the Qwen chat
    # turns around "[instruction: ...\n]query: ...", "\n", "document: ...", "\n", the task prompt; each
    # tokenized alone. The query's piece is cut to 3/4 of max_length (the span's 8192 tokens); the score
    # is logit("1") - logit("0") at the last position.
    "mxbai-rerank-v2": YesNoPrompt(
        pieces=(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
            "<|im_end|>\n<|im_start|>user\n",
            "{instruction}query: {query}",
            "\n",
            "document: {document}",
            "\n",
            "You are a search relevance expert who evaluates how well documents match search queries. For "
            "each query-document pair, carefully analyze the semantic relationship between them, then "
            "provide your binary relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:",
            "<|im_end|>\n<|im_start|>assistant\n",
        ),
        yes_token="1",
        no_token="0",
        instruction_format="instruction: {instruction}\n",
        query_share=0.75,
        span_length=8192,
    ),
    # FlagEmbedding's FlagLLMReranker (inference/reranker/decoder_only/base.py): BOS, "A: {query}", "\n",
    # "B: {passage}", "\n", the task prompt (its `prompt`, here the instruction), each tokenized alone.
    # The query is cut to 3/4 of max_length (512); the score is logit("Yes") at the last position, whose
    # sigmoid is FlagEmbedding's normalize=True score.
    "bge-reranker-v2-gemma": YesNoPrompt(
        pieces=("A: {query}", "\n", "B: {document}", "\n", "{instruction}"),
        yes_token="Yes",
        no_token=None,
        default_instruction="Given a query A and a passage B, determine whether the passage contains an "
        "answer to the query by providing a prediction of either 'Yes' or 'No'.",
        bos=True,
        query_share=0.75,
        span_length=512,
    ),
}
DEFAULT_PROMPT = "qwen3"

# Hub ids whose recipe is known (matched without regard to case), for entries that name no preset.
PRESET_SOURCES: dict[str, str] = {
    "mixedbread-ai/mxbai-rerank-*-v2": "mxbai-rerank-v2",
    "BAAI/bge-reranker-v2-gemma": "bge-reranker-v2-gemma",
    "Qwen/Qwen3-Reranker-*": "qwen3",
}


def preset_for_source(source: str) -> str | None:
    """The preset of a hub id whose recipe is known; None for any other source."""
    for pattern, preset in PRESET_SOURCES.items():
        if fnmatch.fnmatchcase(source.lower(), pattern.lower()):
            return preset
    return None
