"""How an LLM reranker (kind ``llm-reranker``) is asked about one document: the prompt with its slots,
the two answer tokens, and the built-in presets that the ``prompt`` setting names.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

__all__ = ["DEFAULT_PROMPT", "PROMPT_PRESETS", "YesNoPrompt"]


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
