"""kind: listwise (jina-reranker-v3) through the HTTP API, against the official recipe, on a generated model.

The official code is remote code of the hub repository jinaai/jina-reranker-v3 (``modeling.py``: the prompt
of ``format_docs_prompts_func``, ``JinaForRanking.forward``, ``_truncate_texts`` and the blocking and block
merging of ``rerank()``), not a PyPI package, so ``Official`` below re-writes it from that file on plain
transformers: ``Qwen3Model``'s last hidden states, the projector read from the checkpoint, cosines in
numpy as ``rerank()`` computes them. It shares no code with the backend.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import yaml
from rerankd_support.harness import Server, all_models_ready
from safetensors import safe_open
from transformers import AutoTokenizer, Qwen3Model

from rerankd.backends.listwise import ListwiseBackend
from rerankd.backends.specs import ListwiseSpec
from rerankd.commands.cli import main
from rerankd.kinds import model_spec

from .scoring import ranking

QUERY = "What is the capital of China?"
DOCUMENTS = [
    "The capital of China is Beijing.",
    "Gravity pulls objects toward each other.",
    "Beijing 是中华人民共和国的首都。",
    "short",
    "Shanghai is the largest city of China<|embed_token|>, not its capital.",
    "",
    "A <|rerank_token|>marker in the text is removed before scoring.",
    "The Forbidden City stands in the centre of Beijing, the capital.",
]
MANY = [
    f"Passage {n}: the boundary layer over a wing {'separates' if n % 2 else 'stays attached'}."
    for n in range(8)
]
LONG = " ".join(f"The boundary layer {n} separates from the wing near its trailing edge." for n in range(20))

_SYSTEM = (
    "<|im_start|>system\nYou are a search relevance expert who can determine a ranking of the passages based "
    "on how relevant they are to the query. If the query is a question, how relevant a passage is depends on "
    "how well it answers the question. If not, try to analyze the intent of the query and assess how well "
    "each passage satisfies the intent. If an instruction is provided, you should follow the instruction "
    "when determining the ranking.<|im_end|>\n<|im_start|>user\n"
)


class Official:
    """jina-reranker-v3's ``rerank()`` as its modeling.py computes it (see the module's docstring)."""

    def __init__(self, path: Path, padding_side: str = "left") -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.tokenizer.padding_side = padding_side
        self.model = Qwen3Model.from_pretrained(str(path), dtype=torch.float32).eval()
        with safe_open(str(path / "model.safetensors"), framework="pt") as weights:
            first, second = (weights.get_tensor(f"projector.{i}.weight") for i in (0, 2))
        down = torch.nn.Linear(first.shape[1], first.shape[0], bias=False)
        up = torch.nn.Linear(second.shape[1], second.shape[0], bias=False)
        down.weight.data.copy_(first)
        up.weight.data.copy_(second)
        self.projector = torch.nn.Sequential(down, torch.nn.ReLU(), up)
        self.document_id = self.tokenizer.convert_tokens_to_ids("<|embed_token|>")
        self.query_id = self.tokenizer.convert_tokens_to_ids("<|rerank_token|>")

    def prompt(self, query: str, documents: Sequence[str], instruction: str | None) -> str:
        def clean(text: str) -> str:
            return text.replace("<|rerank_token|>", "").replace("<|embed_token|>", "")

        text = (
            f"I will provide you with {len(documents)} passages, each indicated by a numerical identifier. "
            f"Rank the passages based on their relevance to query: {clean(query)}\n"
        )
        if instruction:
            text += f"<instruct>\n{instruction}\n</instruct>\n"
        passages = [
            f'<passage id="{i}">\n{clean(d)}<|embed_token|>\n</passage>' for i, d in enumerate(documents)
        ]
        text += "\n".join(passages) + "\n" + f"<query>\n{clean(query)}<|rerank_token|>\n</query>"
        return _SYSTEM + text + "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

    def truncate(self, text: str, limit: int) -> tuple[str, int]:
        ids = self.tokenizer(text, truncation=True, max_length=limit)["input_ids"]
        return (str(self.tokenizer.decode(ids)) if len(ids) >= limit else text), len(ids)

    def blocks(
        self,
        query: str,
        documents: Sequence[str],
        block_size: int,
        max_length: int,
        max_query: int,
        max_doc: int,
    ) -> tuple[str, list[list[str]]]:
        query, query_length = self.truncate(query, max_query)
        blocks: list[list[str]] = [[]]
        capacity = max_length - 2 * query_length
        for document in documents:
            text, length = self.truncate(document, max_doc)
            blocks[-1].append(text)
            capacity -= length
            if len(blocks[-1]) >= block_size or capacity <= max_doc:
                blocks.append([])
                capacity = max_length - 2 * query_length
        return query, [block for block in blocks if block]

    def embeddings(self, prompts: list[str]) -> tuple[list[np.ndarray], list[np.ndarray], int]:
        """Projected query and document vectors of each prompt, the prompts padded into one batch as the
        official ``_compute_multi_batch`` does; and the real tokens read."""
        batch = self.tokenizer(prompts, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = self.model(**batch, output_hidden_states=True).hidden_states[-1]
            queries, documents = [], []
            for row, ids in enumerate(batch["input_ids"]):
                queries.append(self.projector(hidden[row][ids == self.query_id])[0].float().numpy())
                documents.append(self.projector(hidden[row][ids == self.document_id]).float().numpy())
        return queries, documents, int(batch["attention_mask"].sum())

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        instruction: str | None = None,
        block_size: int = 125,
        max_length: int | None = None,
        max_query: int = 512,
        max_doc: int = 2048,
        together: bool = False,
    ) -> tuple[list[float], int]:
        """Scores in input order and the tokens read; ``together`` pads every block into one batch."""
        limit = max_length or self.tokenizer.model_max_length
        query, blocks = self.blocks(query, documents, block_size, limit, max_query, max_doc)
        prompts = [self.prompt(query, block, instruction) for block in blocks]
        if together:
            queries, vectors, tokens = self.embeddings(prompts)
        else:
            parts = [self.embeddings([prompt]) for prompt in prompts]
            queries = [q for part in parts for q in part[0]]
            vectors = [d for part in parts for d in part[1]]
            tokens = sum(part[2] for part in parts)
        weights = []
        for q, d in zip(queries, vectors, strict=True):
            cosines = d @ q / (np.linalg.norm(q) * np.linalg.norm(d, axis=1))
            weights.append(((1.0 + cosines) / 2.0).max())
        merged = np.average(np.array(queries), axis=0, weights=weights)
        stacked = np.concatenate(vectors)
        scores = stacked @ merged / (np.linalg.norm(merged) * np.linalg.norm(stacked, axis=1))
        return [float(s) for s in scores], tokens


@pytest.fixture(scope="module")
def tiny_jina(models_dir: Path) -> Path:
    from rerankd_support.models import make_tiny_jina_reranker_v3

    return make_tiny_jina_reranker_v3(models_dir / "tiny-jina-reranker-v3")


@cache
def official(path: Path, padding_side: str = "left") -> Official:
    return Official(path, padding_side)


def entry(path: Path, name: str, **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "listwise",
        "source": str(path),
        "device": "cpu",
        "dtype": "fp32",
        **settings,
    }


@pytest.fixture(scope="module")
def server(start_server: Any, tiny_jina: Path) -> Server:
    models = [
        entry(tiny_jina, "jina"),
        entry(tiny_jina, "jina-blocks", block_documents=3),
        entry(tiny_jina, "jina-cut", max_length=80, max_query_tokens=6, max_document_tokens=12),
        entry(tiny_jina, "jina-auto", dtype="auto"),
    ]
    models = [{**model, "preload": True} for model in models]
    server: Server = start_server({"models": models}, ready=all_models_ready)
    return server


def rerank(server: Server, model: str, query: str, documents: list[str], **extra: Any) -> dict[str, Any]:
    body = {"model": model, "query": query, "documents": documents, "return_documents": False, **extra}
    response = httpx.post(f"{server.url}/v1/rerank", json=body, timeout=120)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def in_input_order(answer: dict[str, Any]) -> list[float]:
    scores = [0.0] * len(answer["results"])
    for result in answer["results"]:
        scores[result["index"]] = result["relevance_score"]
    return scores


@pytest.mark.parametrize("instruction", [None, "Prefer passages that name the city"])
def test_scores_equal_the_official_rerank(server: Server, tiny_jina: Path, instruction: str | None) -> None:
    extra = {"instruction": instruction} if instruction else {}
    answer = rerank(server, "jina", QUERY, DOCUMENTS, **extra)
    theirs, tokens = official(tiny_jina).rerank(QUERY, DOCUMENTS, instruction=instruction)
    ours = in_input_order(answer)
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert [r["index"] for r in answer["results"]] == ranking(theirs)
    assert max(ours) - min(ours) > 1e-3 and all(-1 <= s <= 1 for s in ours)  # cosines, as rerank() gives
    # Usage counts every token the model read: the whole sequence, documents as their own tokens.
    usage = answer["usage"]
    assert usage["total_tokens"] == tokens
    markers = ("<|embed_token|>", "<|rerank_token|>")
    clean = [d.replace(markers[0], "").replace(markers[1], "") for d in DOCUMENTS]
    tokenizer = official(tiny_jina).tokenizer
    assert usage["documents_tokens"] == sum(len(tokenizer(d)["input_ids"]) for d in clean)


def test_markers_in_the_text_do_not_count(server: Server) -> None:
    plain = rerank(server, "jina", QUERY, ["Shanghai is the largest city of China, not its capital.", "x"])
    marked = rerank(server, "jina", QUERY + "<|rerank_token|>", [DOCUMENTS[4], "x<|embed_token|>"])
    assert in_input_order(marked) == pytest.approx(in_input_order(plain), abs=1e-6)


@pytest.mark.parametrize("together, side", [(False, "left"), (True, "left"), (True, "right")])
def test_long_lists_are_blocked_and_merged_as_the_official_code(
    server: Server, tiny_jina: Path, together: bool, side: str
) -> None:
    # 8 documents in blocks of 3: three sequences, their query vectors averaged by each block's best score.
    answer = rerank(server, "jina-blocks", QUERY, MANY)
    reference = official(tiny_jina, side)
    theirs, tokens = reference.rerank(QUERY, MANY, block_size=3, together=together)
    assert in_input_order(answer) == pytest.approx(theirs, abs=1e-4)
    assert [r["index"] for r in answer["results"]] == ranking(theirs)
    assert answer["usage"]["total_tokens"] == tokens
    one_block, _ = reference.rerank(QUERY, MANY)
    assert max(abs(a - b) for a, b in zip(one_block, theirs, strict=True)) > 1e-4  # blocking mattered


def test_query_and_documents_are_cut_and_blocked_by_length(server: Server, tiny_jina: Path) -> None:
    # An 80-token budget, a 6-token query and 12-token documents: blocks close by length, texts are cut
    # and decoded back as the official _truncate_texts does.
    documents = [LONG, *MANY[:5], LONG[:40]]
    answer = rerank(server, "jina-cut", LONG, documents)
    theirs, tokens = official(tiny_jina).rerank(LONG, documents, max_length=80, max_query=6, max_doc=12)
    _, blocks = official(tiny_jina).blocks(LONG, documents, 125, 80, 6, 12)
    assert len(blocks) > 1
    assert in_input_order(answer) == pytest.approx(theirs, abs=1e-4)
    assert answer["usage"]["total_tokens"] == tokens


def test_a_request_never_shares_its_sequence(server: Server) -> None:
    alone = [rerank(server, "jina", QUERY, DOCUMENTS), rerank(server, "jina", "wing lift", MANY)]

    async def together() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            bodies = [
                {"model": "jina", "query": QUERY, "documents": DOCUMENTS},
                {"model": "jina", "query": "wing lift", "documents": MANY},
            ]
            responses = await asyncio.gather(*(client.post("/v1/rerank", json=b) for b in bodies))
            return [r.json() for r in responses]

    for single, concurrent in zip(alone, asyncio.run(together()), strict=True):
        assert in_input_order(concurrent) == in_input_order(single)


def test_auto_precision_ranks_as_fp32(server: Server) -> None:
    for query, documents in [(QUERY, DOCUMENTS), ("wing lift", MANY)]:
        fp32 = rerank(server, "jina", query, documents)
        auto = rerank(server, "jina-auto", query, documents)
        assert [r["index"] for r in auto["results"]] == [r["index"] for r in fp32["results"]]


def test_the_config_takes_only_listwise_settings() -> None:
    spec = model_spec({"name": "j", "kind": "listwise", "source": "jinaai/jina-reranker-v3"})
    assert isinstance(spec, ListwiseSpec)
    assert (spec.max_query_tokens, spec.max_document_tokens, spec.block_documents) == (512, 2048, 125)
    with pytest.raises(ValueError, match="cache_mb"):
        model_spec({"name": "j", "kind": "listwise", "source": "x", "cache_mb": 64})


def test_a_checkpoint_without_the_projector_is_refused(tiny_qwen3_reranker: Path) -> None:
    spec = ListwiseSpec(name="j", kind="listwise", source=str(tiny_qwen3_reranker), dtype="fp32")
    with pytest.raises(ValueError, match="projector"):
        ListwiseBackend.load(spec)


def test_eval_accepts_the_kind(tiny_jina: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    corpus = [{"_id": f"d{n}", "title": "", "text": text} for n, text in enumerate(MANY)]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus), encoding="utf-8")
    queries = [{"_id": "q0", "text": "does the boundary layer separate"}]
    (folder / "queries.jsonl").write_text(json.dumps(queries[0]), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td1\t1", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"models": [entry(tiny_jina, "jina")]}), encoding="utf-8")
    argv = ["eval", str(folder), "--config", str(config), "-m", "jina", "--top-k", "8"]
    assert main([*argv, "--no-plots", "--no-progress", "--out", str(tmp_path / "out")]) == 0
    assert "| jina |" in capsys.readouterr().out
