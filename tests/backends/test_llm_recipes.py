"""`kind: llm-reranker` by its authors' recipes: mxbai-rerank-v2 (mixedbread's `mxbai-rerank` package) and
bge-reranker-v2-gemma (FlagEmbedding's `FlagLLMReranker`), each on a generated tiny model of its
architecture. rerankd's scores through the HTTP API equal the official package's on the same folder (run
in a venv of its own), whatever the other documents of a request; the prompt's pieces are tokenized alone
and joined as ids; a prompt without a `no` answer scores `logit(yes)`; hub ids name their recipe.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from rerankd_support.harness import Server
from rerankd_support.venvs import Group, ensure_venv, pins
from transformers import AutoModelForCausalLM, AutoTokenizer

from rerankd.backends.base import Encoded
from rerankd.backends.llm_reranker import LlmRerankerBackend
from rerankd.backends.prompts import PROMPT_PRESETS
from rerankd.backends.specs import LlmRerankerSpec
from rerankd.kinds import model_spec
from rerankd.types import ScoreOptions

from .scoring import ranking, score_batched

# mxbai-rerank 0.1.6 (the newest) calls the tokenizer's `prepare_for_model`, which transformers 5 removed:
# it runs on the last transformers 4.
MXBAI = Group(
    "mxbai-rerank",
    requirements=pins("mxbai-rerank==0.1.6 transformers==4.57.6 torch==2.13.0"),
    lock=pins(
        """
        accelerate==1.16.0 batched==0.1.5 certifi==2026.10.19.post1 charset-normalizer==3.5.3
        filelock==4.3.2 fsspec==2026.9.0 hf-xet==1.8.0 huggingface-hub==0.36.2 idna==3.21 jinja2==3.1.6
        markupsafe==3.0.4 mpmath==1.3.0 mxbai-rerank==0.1.6 networkx==3.6.1 numpy==2.4.6 packaging==26.4
        psutil==7.2.2 pyyaml==6.0.4 regex==2026.12.2 requests==2.34.2 safetensors==0.8.0 sympy==1.14.0
        tokenizers==0.22.2 torch==2.13.0 tqdm==4.70.1 transformers==4.57.6 typing-extensions==4.16.0
        urllib3==2.8.0
        """
    ),
)
# FlagEmbedding 1.4.2 (the newest) with rerankd's transformers, which it supports.
FLAG_EMBEDDING = Group(
    "flagembedding",
    requirements=pins("FlagEmbedding==1.4.2 transformers==5.25.0 torch==2.13.0"),
    lock=pins(
        """
        accelerate==1.16.0 annotated-doc==0.0.7 annotated-types==0.8.0 anyio==4.16.0
        certifi==2026.10.19.post1 charset-normalizer==3.5.3 click==8.5.1 cloudpickle==3.1.3 datasets==5.2.0
        dill==0.4.1 flagembedding==1.4.2 fsspec==2026.9.0 h11==0.16.0 hf-xet==1.8.0 httpcore2==2.17.0
        httpx2==2.17.0 huggingface-hub==2.5.0 idna==3.21 ir-datasets==0.6.3 jinja2==3.1.6 joblib==1.6.0
        kernels==0.19.1 lxml==6.2.1 lz4==4.4.5 markdown-it-py==4.3.0 markupsafe==3.0.4 mdurl==0.1.2
        mpmath==1.3.0 multiprocess==0.70.19 narwhals==2.29.0 networkx==3.6.1 numpy==2.4.6 packaging==26.4
        pandas==3.1.2 peft==0.22.0 protobuf==7.36.2 psutil==7.2.2 pyarrow==26.0.1 pydantic-core==2.50.5
        pydantic==2.14.4 pygments==2.21.0 python-dateutil==4.0.0 pyyaml==6.0.4 regex==2026.12.2
        requests==2.34.2 rich==15.0.0 safetensors==0.8.0 scikit-learn==1.9.1 scipy==1.17.1
        sentence-transformers==6.3.0 sentencepiece==0.2.3 shellingham==1.5.4 sympy==1.14.0
        threadpoolctl==3.8.0 tokenizers==0.23.3 tomlkit==0.15.3 torch==2.13.0 tqdm==4.70.1
        transformers==5.25.0 truststore==0.10.5 typer==0.29.3 typing-extensions==4.16.0
        typing-inspection==0.4.5 tzdata==2026.6 urllib3==2.8.0 xxhash==4.1.0
        """
    ),
)

# Each case is (query, instruction); the package scores all documents of a case in one padded batch.
# mxbai: `predict` gives logit("1") - logit("0"), and the score it documents (as vLLM serves) is its sigmoid.
MXBAI_ORACLE = """
import json, sys
import torch
from mxbai_rerank import MxbaiRerankV2

job = json.load(sys.stdin)
model = MxbaiRerankV2(job["folder"], device="cpu", torch_dtype=torch.float32)
answers = []
for query, instruction in job["cases"]:
    raw = model.predict([query] * len(job["documents"]), job["documents"], instruction=instruction)
    answers.append([float(torch.sigmoid(value)) for value in raw])
print(json.dumps({"answers": answers}))
"""
# FlagEmbedding: compute_score with normalize=True (sigmoid of logit("Yes")); its `prompt` is the
# instruction. Run with the tokenizer padding on the left and on the right.
FLAG_ORACLE = """
import json, sys
from FlagEmbedding import FlagLLMReranker

job = json.load(sys.stdin)
model = FlagLLMReranker(job["folder"], use_fp16=False, devices=["cpu"], normalize=True)
sides = {}
for side in ("left", "right"):
    model.tokenizer.padding_side = side
    sides[side] = [
        model.compute_score([[query, document] for document in job["documents"]], prompt=instruction)
        for query, instruction in job["cases"]
    ]
print(json.dumps(sides))
"""

QUERY = "What is the capital of the United States?"
QUERIES = [
    QUERY,
    "  Heat transfer, in laminar flow...  ",
    # Longer than the query's share of the window: cut, as each package cuts it.
    "how does the boundary layer of a wing change with the mach number? " * 80,
]
INSTRUCTION = "Find the passage that names the capital city"
CASES = [(query, instruction) for query in QUERIES for instruction in (None, INSTRUCTION)]
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States. It is a federal district.",
    "Capitalization in English grammar is the use of a capital letter at the start of a word.",
    "短文：华盛顿特区是美国的首都",
    "",
    "!!! punctuation, then words",
    " leading space and trailing space ",
    "flutter of a thin panel in supersonic flow",
    # Ends in ")." where the separator's newline follows: one text would merge across that seam.
    "The capital of the United States is Washington (D.C.).",
]
# Longer than the tiny model's window: mxbai cuts the end of its piece, as rerankd's truncate_end does.
LONG_DOCUMENT = "The shock wave moves ahead of the blunt body and the pressure rises. " * 90
TOLERANCE = 1e-4  # fp32, the bound; observed differences are about 1e-6


@pytest.fixture(scope="module")
def tiny_mxbai(models_dir: Path) -> Path:
    from rerankd_support.models import make_tiny_mxbai_reranker

    return make_tiny_mxbai_reranker(models_dir / "tiny-mxbai")


@pytest.fixture(scope="module")
def tiny_gemma(models_dir: Path) -> Path:
    from rerankd_support.models import make_tiny_gemma_reranker

    return make_tiny_gemma_reranker(models_dir / "tiny-gemma")


def load(path: Path, prompt: str, **fields: Any) -> LlmRerankerBackend:
    return LlmRerankerBackend.load(
        LlmRerankerSpec(
            name="m",
            kind="llm-reranker",
            source=str(path),
            device="cpu",
            prompt=prompt,
            dtype="fp32",
            **fields,
        )
    )


@pytest.fixture(scope="module")
def mxbai(tiny_mxbai: Path) -> LlmRerankerBackend:
    return load(tiny_mxbai, "mxbai-rerank-v2")


@pytest.fixture(scope="module")
def gemma(tiny_gemma: Path) -> LlmRerankerBackend:
    return load(tiny_gemma, "bge-reranker-v2-gemma")


# -- the prompt: pieces tokenized alone ------------------------------------------------------------------


def pieces_ids(tokenizer: Any, texts: list[str]) -> list[int]:
    return [token for text in texts for token in tokenizer.encode(text, add_special_tokens=False)]


@pytest.mark.parametrize("instruction", [None, INSTRUCTION])
def test_mxbai_tokens_are_its_pieces_joined(mxbai: LlmRerankerBackend, instruction: str | None) -> None:
    tokenizer = mxbai.tokenizer
    system, _, sep, _, _, task, closing = PROMPT_PRESETS["mxbai-rerank-v2"].pieces
    for query in QUERIES[:2]:
        query_piece = (f"instruction: {instruction}\n" if instruction else "") + f"query: {query}"
        prepared = mxbai.prepare(query, DOCUMENTS, ScoreOptions(instruction=instruction))
        for document, item in zip(DOCUMENTS, prepared.inputs, strict=True):
            texts = [system, query_piece, sep, f"document: {document}", sep, task, closing]
            assert list(item.input_ids) == pieces_ids(tokenizer, texts)
    # Tokenized as one text, the last document's ")." and the separator's newline would merge: the recipe
    # is the pieces.
    joined = system + query_piece + sep + f"document: {DOCUMENTS[-1]}" + sep + task + closing
    assert tokenizer.encode(joined, add_special_tokens=False) != list(prepared.inputs[-1].input_ids)


def test_gemma_tokens_are_bos_and_its_pieces_joined(gemma: LlmRerankerBackend) -> None:
    tokenizer = gemma.tokenizer
    default = PROMPT_PRESETS["bge-reranker-v2-gemma"].default_instruction or ""
    for instruction, task in ((None, default), (INSTRUCTION, INSTRUCTION)):
        prepared = gemma.prepare(QUERY, DOCUMENTS, ScoreOptions(instruction=instruction))
        for document, item in zip(DOCUMENTS, prepared.inputs, strict=True):
            texts = [f"A: {QUERY}", "\n", f"B: {document}", "\n", task]
            assert list(item.input_ids) == [tokenizer.bos_token_id, *pieces_ids(tokenizer, texts)]


def test_a_prompt_without_a_no_answer_scores_the_yes_logit(
    gemma: LlmRerankerBackend, tiny_gemma: Path
) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(tiny_gemma), dtype=torch.float32).eval()
    yes = AutoTokenizer.from_pretrained(str(tiny_gemma)).encode("Yes", add_special_tokens=False)[0]
    prepared = gemma.prepare(QUERY, DOCUMENTS[:3], ScoreOptions())
    raw = gemma.forward(prepared.inputs)
    for item, score in zip(prepared.inputs, raw, strict=True):
        with torch.no_grad():
            logits = model(torch.tensor([list(item.input_ids)])).logits[0, -1]
        assert score == pytest.approx(float(logits[yes]), abs=1e-5)
    assert gemma.no_id is None


@pytest.mark.parametrize("backend_name", ["mxbai", "gemma"])
def test_shared_prefix_and_batches_change_no_score(backend_name: str, request: pytest.FixtureRequest) -> None:
    backend: LlmRerankerBackend = request.getfixturevalue(backend_name)
    prepared = backend.prepare(QUERY, DOCUMENTS, ScoreOptions())
    try:
        backend.share_prefix = False
        full = backend.forward(prepared.inputs)
    finally:
        backend.share_prefix = True
    assert backend.forward(prepared.inputs) == pytest.approx(full, abs=1e-5)
    assert backend.share_prefix  # the shared path ran
    alone = [backend.forward([Encoded(item.input_ids)])[0] for item in prepared.inputs]
    assert alone == pytest.approx(full, abs=1e-5)
    assert score_batched(backend, QUERY, DOCUMENTS[::-1], budget=300)[::-1] == pytest.approx(full, abs=1e-5)


def test_the_query_piece_is_cut_to_three_quarters_of_the_span(
    mxbai: LlmRerankerBackend, gemma: LlmRerankerBackend
) -> None:
    long_query = QUERIES[2]
    # mxbai: the span (query piece, "\n", document piece) is the window less the chat turns and task prompt.
    tokens = mxbai.tokenizer.encode
    system, _, sep, _, _, task, closing = PROMPT_PRESETS["mxbai-rerank-v2"].pieces
    outside = len(tokens(system)) + len(tokens(sep)) + len(tokens(task)) + len(tokens(closing))
    assert mxbai.max_length == 1024  # the model's positions, below 8192 + the prompt
    item = mxbai.prepare(long_query, ["x"], ScoreOptions()).inputs[0]
    query_ids = tokens(f"query: {long_query}")[: (1024 - outside) * 3 // 4]
    assert list(item.input_ids)[len(tokens(system)) :][: len(query_ids) + 1] == [*query_ids, *tokens(sep)]
    # bge: 3/4 of its 512 tokens; the window is those and its BOS, separator and task prompt.
    default = PROMPT_PRESETS["bge-reranker-v2-gemma"].default_instruction or ""
    gemma_tokens = gemma.tokenizer.encode
    assert gemma.max_length == 512 + 1 + len(gemma_tokens("\n", add_special_tokens=False)) + len(
        gemma_tokens(default, add_special_tokens=False)
    )
    item = gemma.prepare(long_query, ["x"], ScoreOptions()).inputs[0]
    query_ids = gemma_tokens(f"A: {long_query}", add_special_tokens=False)[:384]
    assert list(item.input_ids)[1 : 1 + len(query_ids)] == query_ids


def test_a_bos_prompt_needs_a_tokenizer_with_one(tiny_mxbai: Path) -> None:
    with pytest.raises(ValueError, match="BOS token"):
        load(tiny_mxbai, "bge-reranker-v2-gemma", yes_token="1")


# -- hub ids name their recipe ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "prompt", "expected", "shown"),
    [
        ("mixedbread-ai/mxbai-rerank-base-v2", None, "mxbai-rerank-v2", "mxbai-rerank-v2 (from the hub id)"),
        ("mixedbread-ai/mxbai-rerank-large-v2", None, "mxbai-rerank-v2", "mxbai-rerank-v2 (from the hub id)"),
        (
            "BAAI/bge-reranker-v2-gemma",
            None,
            "bge-reranker-v2-gemma",
            "bge-reranker-v2-gemma (from the hub id)",
        ),
        ("Qwen/Qwen3-Reranker-4B", None, "qwen3", "qwen3 (from the hub id)"),
        ("/models/some-reranker", None, "qwen3", "qwen3 (default)"),
        # Not v2: mxbai's v1 rerankers are cross-encoders, no recipe here.
        ("mixedbread-ai/mxbai-rerank-base-v1", None, "qwen3", "qwen3 (default)"),
        ("mixedbread-ai/mxbai-rerank-base-v2", "qwen3", "qwen3", "qwen3"),
    ],
)
def test_the_recipe_comes_from_the_hub_id_unless_named(
    source: str, prompt: str | None, expected: str, shown: str
) -> None:
    entry: dict[str, Any] = {"name": "m", "kind": "llm-reranker", "source": source}
    if prompt:
        entry["prompt"] = prompt
    spec = model_spec(entry)
    assert isinstance(spec, LlmRerankerSpec)
    assert spec.yes_no_prompt() == PROMPT_PRESETS[expected]
    assert spec.recipe() == shown


def test_the_built_in_config_declares_both_families() -> None:
    from rerankd.config import load_settings

    specs = {spec.name: spec for spec in load_settings().models}
    for name, source, preset in (
        ("mxbai-rerank-base-v2", "mixedbread-ai/mxbai-rerank-base-v2", "mxbai-rerank-v2"),
        ("bge-reranker-v2-gemma", "BAAI/bge-reranker-v2-gemma", "bge-reranker-v2-gemma"),
    ):
        spec = specs[name]
        assert isinstance(spec, LlmRerankerSpec) and spec.source == source and not spec.preload
        assert spec.yes_no_prompt() == PROMPT_PRESETS[preset]


def test_models_command_shows_each_recipe(
    tmp_path: Path, tiny_mxbai: Path, tiny_gemma: Path, tiny_qwen3_reranker: Path
) -> None:
    from rerankd.commands.cli import main

    config = tmp_path / "config.yaml"
    models = [
        {"name": "mxbai", "kind": "llm-reranker", "source": str(tiny_mxbai), "prompt": "mxbai-rerank-v2"},
        {
            "name": "gemma",
            "kind": "llm-reranker",
            "source": str(tiny_gemma),
            "prompt": "bge-reranker-v2-gemma",
        },
        {"name": "qwen3", "kind": "llm-reranker", "source": str(tiny_qwen3_reranker)},
        {"name": "bm25", "kind": "bm25"},
    ]
    config.write_text(json.dumps({"models": models}), encoding="utf-8")
    lines = capture_models(main, config)
    assert lines[0].split()[:5] == ["NAME", "KIND", "LOADABLE", "RECIPE", "WHERE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["mxbai"].split()[3] == "mxbai-rerank-v2"
    assert rows["gemma"].split()[3] == "bge-reranker-v2-gemma"
    assert "qwen3 (default)" in rows["qwen3"]
    assert rows["bm25"].split()[3] == "-"


def capture_models(main: Callable[[list[str]], int], config: Path) -> list[str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["models", "--config", str(config)]) == 0
    return [line for line in out.getvalue().splitlines() if line.strip()]


# -- the official packages, on the same folders, through the HTTP API ---------------------------------


def run_oracle(group: Group, script: str, job: dict[str, Any]) -> Any:
    python = ensure_venv(group)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [str(python), "-c", script],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server], tiny_mxbai: Path, tiny_gemma: Path) -> Server:
    def entry(name: str, folder: Path, prompt: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "kind": "llm-reranker",
            "source": str(folder),
            "prompt": prompt,
            "dtype": "fp32",
            "long_documents": "truncate_end",  # as the packages do
            "preload": True,
            **fields,
        }

    models = [
        entry("mxbai", tiny_mxbai, "mxbai-rerank-v2"),
        entry("mxbai-auto", tiny_mxbai, "mxbai-rerank-v2", dtype="auto"),
        entry("gemma", tiny_gemma, "bge-reranker-v2-gemma"),
        entry("gemma-auto", tiny_gemma, "bge-reranker-v2-gemma", dtype="auto"),
    ]
    return start_server({"models": models})


def rerank(
    server: Server, model: str, query: str, documents: list[str], instruction: str | None
) -> list[float]:
    body: dict[str, Any] = {"model": model, "query": query, "documents": documents, "top_n": None}
    if instruction is not None:
        body["instruction"] = instruction
    response = httpx.post(f"{server.url}/seed/v1/rerank", json=body, timeout=120)
    response.raise_for_status()
    scores = [0.0] * len(documents)
    for result in response.json()["results"]:
        scores[result["index"]] = result["relevance_score"]
    return scores


def assert_served_as(server: Server, model: str, documents: list[str], expected: list[list[float]]) -> float:
    """rerankd's scores equal ``expected`` (one list per case) and rank alike, whatever the request's other
    documents; the largest difference seen."""
    worst = 0.0
    for (query, instruction), answer in zip(CASES, expected, strict=True):
        served = rerank(server, model, query, documents, instruction)
        worst = max(worst, *(abs(a - b) for a, b in zip(served, answer, strict=True)))
        assert served == pytest.approx(answer, abs=TOLERANCE), (query[:40], instruction)
        assert ranking(served) == ranking(answer), (query[:40], instruction)
        backwards = rerank(server, model, query, documents[::-1], instruction)[::-1]
        alone = [rerank(server, model, query, [document], instruction)[0] for document in documents]
        assert backwards == pytest.approx(served, abs=1e-5)
        assert alone == pytest.approx(served, abs=1e-5)
    return worst


@pytest.mark.slow
@pytest.mark.oracles
@pytest.mark.timeout(1500)
def test_mxbai_scores_equal_mxbai_rerank(server: Server, tiny_mxbai: Path) -> None:
    documents = [*DOCUMENTS, LONG_DOCUMENT]
    expected = run_oracle(
        MXBAI, MXBAI_ORACLE, {"folder": str(tiny_mxbai), "documents": documents, "cases": CASES}
    )
    answers = expected["answers"]
    assert max(max(case) - min(case) for case in answers) > 10 * TOLERANCE  # not degenerate
    worst = assert_served_as(server, "mxbai", documents, answers)
    print(f"mxbai-rerank-v2: max |rerankd - mxbai-rerank 0.1.6| = {worst:.2e}")
    for (query, instruction), answer in zip(CASES, answers, strict=True):
        auto = rerank(server, "mxbai-auto", query, documents, instruction)
        assert ranking(auto) == ranking(answer), (query[:40], instruction)


@pytest.mark.slow
@pytest.mark.oracles
@pytest.mark.timeout(1500)
def test_gemma_scores_equal_flag_llm_reranker(server: Server, tiny_gemma: Path) -> None:
    expected = run_oracle(
        FLAG_EMBEDDING, FLAG_ORACLE, {"folder": str(tiny_gemma), "documents": DOCUMENTS, "cases": CASES}
    )
    left, right = expected["left"], expected["right"]
    for a, b in zip(left, right, strict=True):
        assert a == pytest.approx(b, abs=1e-5)  # the package agrees with itself whichever side it pads
    assert max(max(case) - min(case) for case in left) > 10 * TOLERANCE  # not degenerate
    worst = max(
        assert_served_as(server, "gemma", DOCUMENTS, left),
        assert_served_as(server, "gemma", DOCUMENTS, right),
    )
    print(f"bge-reranker-v2-gemma: max |rerankd - FlagEmbedding 1.4.2| = {worst:.2e}")
    for (query, instruction), answer in zip(CASES, left, strict=True):
        auto = rerank(server, "gemma-auto", query, DOCUMENTS, instruction)
        assert ranking(auto) == ranking(answer), (query[:40], instruction)
