"""`kind: late-interaction` (ColBERT, PyLate checkpoints): the recipe read from the checkpoint, and scores
through the HTTP API equal to PyLate's own on the same folder (run in a venv of its own), whatever the
other documents of a request; the document-vector cache; what a checkpoint must hold."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rerankd_support.harness import Server
from rerankd_support.venvs import Group, ensure_venv, pins

from rerankd.backends.late_interaction import LateInteractionBackend
from rerankd.kinds import load_model, model_spec
from rerankd.types import ScoreOptions

# PyLate 1.6.0 (the newest) with the versions it pins. Its own requirements also name its index
# backends (fast-plaid, which pins torch 2.11, fastkmeans, ninja); models, scores and rank do not import
# them, so PyLate is installed without its dependencies and these name the ones those modules use.
PYLATE = Group(
    "pylate",
    requirements=pins(
        """
        torch==2.13.0 sentence-transformers==5.3.0 transformers==5.3.0 datasets==5.2.0 accelerate==1.16.0
        pandas==3.1.2 scipy==1.17.1 ujson==5.12.0
        """
    ),
    lock=pins(
        """
        accelerate==1.16.0 annotated-doc==0.0.7 annotated-types==0.8.0 anyio==4.16.0
        certifi==2026.10.19.post1 click==8.5.1 cloudpickle==3.1.3 datasets==5.2.0 dill==0.4.1
        filelock==4.3.2 fsspec==2026.9.0 h11==0.16.0 hf-xet==1.8.0 httpcore==1.0.9 httpx==0.29.0
        huggingface-hub==1.33.0 idna==3.21 jinja2==3.1.6 joblib==1.6.0 markdown-it-py==4.3.0
        markupsafe==3.0.4 mdurl==0.1.2 mpmath==1.3.0 multiprocess==0.70.19 narwhals==2.29.0
        networkx==3.6.1 numpy==2.4.6 packaging==26.4 pandas==3.1.2 psutil==7.2.2 pyarrow==26.0.1
        pydantic==2.14.4 pydantic-core==2.50.5 pygments==2.21.0 python-dateutil==4.0.0 pyyaml==6.0.4
        regex==2026.12.2 rich==15.0.0 safetensors==0.8.0 scikit-learn==1.9.1 scipy==1.17.1
        sentence-transformers==5.3.0 shellingham==1.5.4 sympy==1.14.0 threadpoolctl==3.8.0
        tokenizers==0.22.2 torch==2.13.0 tqdm==4.70.1 transformers==5.3.0 typer==0.29.3
        typing-inspection==0.4.5 typing-extensions==4.16.0 tzdata==2026.6 ujson==5.12.0 xxhash==4.1.0
        """
    ),
    no_deps=("pylate==1.6.0",),
)

# PyLate encodes the query and the documents (``ColBERT.encode``, in batches of 4 to pad them together),
# and scores each pair with ``colbert_scores``; the score rerankd serves is that over the query's vectors.
ORACLE = """
import json, sys
import torch
from pylate import models, scores

job = json.load(sys.stdin)
model = models.ColBERT(job["folder"], device="cpu", **job["overrides"])
documents = model.encode(job["documents"], is_query=False, batch_size=4, convert_to_tensor=True)
answers = []
for query in job["queries"]:
    vectors = model.encode([query], is_query=True, convert_to_tensor=True)[0]
    maxsim = [float(scores.colbert_scores(vectors[None], d[None])[0, 0]) for d in documents]
    answers.append({"vectors": vectors.shape[0], "scores": [s / vectors.shape[0] for s in maxsim]})
print(json.dumps(answers))
"""

QUERIES = [
    "what is the boundary layer?",
    "  Heat transfer, in laminar flow...  ",
    # Longer than the 32 tokens of a query: cut, as PyLate cuts it.
    "how does the shock wave ahead of a blunt body move when the free stream mach number rises, and what "
    "happens to the pressure and the temperature behind it on the wing surface near the leading edge?",
]
DOCUMENTS = [
    "The boundary layer separates from the wing near the trailing edge.",
    "   Flow over a flat plate: laminar, then turbulent!   ",
    "heat transfer in a laminar boundary layer, measured (again) at mach 2.",
    "Café, naïve résumé — the shock wave; the nozzle.",
    "...!!!???",
    # Longer than the 180 tokens of a document: cut, as PyLate cuts it.
    "the shock wave moves ahead of the blunt body and the pressure rises. " * 20,
    "flutter of a thin panel in supersonic flow",
]
TOLERANCE = 1e-4  # fp32, the bound; observed differences are about 1e-7


def oracle(folder: Path, queries: list[str], documents: list[str], **overrides: Any) -> list[dict[str, Any]]:
    python = ensure_venv(PYLATE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    job = {"folder": str(folder), "queries": queries, "documents": documents, "overrides": overrides}
    done = subprocess.run(
        [str(python), "-c", ORACLE],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return answers


def rerank(server: Server, model: str, query: str, documents: list[str]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/seed/v1/rerank",
        json={
            "model": model,
            "query": query,
            "documents": documents,
            "top_n": None,
            "return_documents": False,
        },
        timeout=120,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def scores_of(body: dict[str, Any], count: int) -> list[float]:
    scores = [0.0] * count
    for result in body["results"]:
        scores[result["index"]] = result["relevance_score"]
    return scores


def ranking(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


@pytest.fixture(scope="module")
def answerai_shaped(models_dir: Path, minilm_path: Path) -> Path:
    """answerai-colbert-small-v1's shape and markers, random weights, the real BERT vocabulary."""
    from rerankd_support.models import make_late_interaction

    folder = models_dir / "answerai-colbert-small-shaped"
    return (
        folder
        if (folder / "modules.json").exists()
        else make_late_interaction(folder, tokenizer_from=minilm_path)
    )


@pytest.fixture(scope="module")
def tiny_stanford(models_dir: Path) -> Path:
    """The Stanford ColBERT library's layout (colbert-ir/colbertv2.0's), which PyLate also loads."""
    from rerankd_support.models import make_tiny_late_interaction

    return make_tiny_late_interaction(models_dir / "tiny-colbert-stanford", layout="stanford")


@pytest.fixture(scope="module")
def folders(tiny_late_interaction: Path, tiny_stanford: Path, answerai_shaped: Path) -> dict[str, Path]:
    return {"tiny": tiny_late_interaction, "stanford": tiny_stanford, "answerai": answerai_shaped}


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server], folders: dict[str, Path]) -> Server:
    def entry(name: str, source: Path, **settings: Any) -> dict[str, Any]:
        return {"name": name, "kind": "late-interaction", "source": str(source), "dtype": "fp32", **settings}

    tiny = folders["tiny"]
    models = [
        entry("tiny", tiny),
        # jina-colbert-v2's way: the query's [MASK] expansion takes part in attention.
        entry("tiny-attending", tiny, attend_to_expansion_tokens=True),
        entry("tiny-auto", tiny, dtype="auto"),
        entry("tiny-cached", tiny, cache_mb=16),
        entry("stanford", folders["stanford"]),
        entry("answerai", folders["answerai"]),
    ]
    return start_server({"models": models})


@pytest.mark.slow
@pytest.mark.oracles
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("model", "folder", "overrides", "query_length"),
    [
        ("tiny", "tiny", {}, 32),
        ("tiny-attending", "tiny", {"attend_to_expansion_tokens": True}, 32),
        ("stanford", "stanford", {}, 24),
        ("answerai", "answerai", {}, 32),
    ],
)
def test_scores_equal_pylate_whatever_the_request(
    server: Server,
    folders: dict[str, Path],
    model: str,
    folder: str,
    overrides: dict[str, Any],
    query_length: int,
) -> None:
    expected = oracle(folders[folder], QUERIES, DOCUMENTS, **overrides)
    worst = 0.0
    for query, answer in zip(QUERIES, expected, strict=True):
        assert answer["vectors"] == query_length  # PyLate pads the query with [MASK] to its length
        served = scores_of(rerank(server, model, query, DOCUMENTS), len(DOCUMENTS))
        worst = max(worst, *(abs(a - b) for a, b in zip(served, answer["scores"], strict=True)))
        assert served == pytest.approx(answer["scores"], abs=TOLERANCE), query
        assert ranking(served) == ranking(answer["scores"]), query
        # Other documents in the request, in another order, or none: the same scores.
        backwards = scores_of(rerank(server, model, query, DOCUMENTS[::-1]), len(DOCUMENTS))[::-1]
        alone = [rerank(server, model, query, [d])["results"][0]["relevance_score"] for d in DOCUMENTS]
        assert backwards == pytest.approx(served, abs=1e-6)
        assert alone == pytest.approx(served, abs=1e-6)
    print(f"{model}: max |rerankd - PyLate| = {worst:.2e}")


@pytest.mark.slow
@pytest.mark.oracles
@pytest.mark.timeout(900)
def test_auto_precision_ranks_as_pylate(server: Server, tiny_late_interaction: Path) -> None:
    expected = oracle(tiny_late_interaction, QUERIES, DOCUMENTS)
    for query, answer in zip(QUERIES, expected, strict=True):
        served = scores_of(rerank(server, "tiny-auto", query, DOCUMENTS), len(DOCUMENTS))
        assert ranking(served) == ranking(answer["scores"]), query


def cache_state(server: Server, model: str) -> dict[str, int]:
    models = httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"]
    state: dict[str, int] = next(m for m in models if m["id"] == model)["cache"]
    return state


@pytest.mark.slow
def test_a_document_scored_again_for_another_query_costs_no_encoder_pass(server: Server) -> None:
    first = rerank(server, "tiny-cached", QUERIES[0], DOCUMENTS)
    before = cache_state(server, "tiny-cached")
    second = rerank(server, "tiny-cached", QUERIES[1], DOCUMENTS)
    after = cache_state(server, "tiny-cached")
    # Only the new query was encoded; every document's vectors came from the cache.
    assert after["hits"] - before["hits"] == len(DOCUMENTS)
    assert after["misses"] - before["misses"] == 1
    fresh = rerank(server, "tiny", QUERIES[1], DOCUMENTS)
    assert scores_of(second, len(DOCUMENTS)) == pytest.approx(scores_of(fresh, len(DOCUMENTS)), abs=1e-6)
    # Usage counts the tokens of the texts scored, cached or not (as for bi-encoders).
    assert second["usage"]["documents_tokens"] == first["usage"]["documents_tokens"]
    assert second["usage"] == fresh["usage"]


@pytest.fixture(scope="module")
def tiny(tiny_late_interaction: Path) -> LateInteractionBackend:
    spec = {"name": "tiny", "kind": "late-interaction", "source": str(tiny_late_interaction), "dtype": "fp32"}
    backend: LateInteractionBackend = load_model(model_spec(spec))
    return backend


def test_query_is_marked_cut_and_expanded_to_its_length(tiny: LateInteractionBackend) -> None:
    tokenizer = tiny.tokenizer
    short = tiny.prepare("boundary layer", ["a plate."], ScoreOptions())
    query, document = short.inputs
    q_marker, d_marker = tokenizer.convert_tokens_to_ids(["[Q] ", "[D] "])
    words = tokenizer("boundary layer", add_special_tokens=False)["input_ids"]
    cls, sep, mask = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id
    assert list(query.input_ids) == [cls, q_marker, *words, sep] + [mask] * (32 - len(words) - 3)
    assert list(document.input_ids)[:2] == [cls, d_marker]
    assert short.query_tokens == len(words)  # usage: the text's tokens, not markers or [MASK]
    long = tiny.prepare(QUERIES[2], ["a plate."], ScoreOptions())
    assert len(long.inputs[0]) == 32 and long.inputs[0].input_ids[-1] == sep
    assert long.query_tokens == 32 - 3
    # The expansion's vectors count: 32 query vectors whatever the query's length.
    assert tiny.forward(long.inputs)[0].shape == (32, 16)


def test_punctuation_is_encoded_but_not_scored(tiny: LateInteractionBackend) -> None:
    prepared = tiny.prepare("boundary layer", ["the boundary layer ..."], ScoreOptions())
    query, document = tiny.forward(prepared.inputs)
    ids = list(prepared.inputs[1].input_ids)
    dot = tiny.tokenizer.convert_tokens_to_ids(".")
    assert document.shape[0] == len(ids) and ids.count(dot) == 3  # encoded, and attended by the rest
    read = [position for position, token in enumerate(ids) if token != dot]
    maxsim = (query @ document[read].T).max(dim=1).values.sum()
    assert prepared.combine([query, document]) == [pytest.approx(float(maxsim) / 32, abs=1e-7)]


def test_chunked_windows_point_into_the_document_as_sent(tiny_late_interaction: Path) -> None:
    spec = {"name": "t", "kind": "late-interaction", "source": str(tiny_late_interaction), "dtype": "fp32"}
    backend = load_model(model_spec({**spec, "max_length": 16, "long_documents": "chunk"}))
    # Words that are whole tokens of the tiny vocabulary, so that windows begin and end with words.
    document = "   " + "the flow in the boundary layer of the wing is laminar. " * 4
    prepared = backend.prepare("laminar", [document], ScoreOptions(return_spans=True))
    assert prepared.chunks is not None and prepared.chunks[0] > 1
    assert all(len(item) <= 16 for item in prepared.inputs[1:])
    assert prepared.windows is not None
    # Each window's range in the text as sent (leading spaces included) holds exactly its tokens.
    for (start, end), window in zip(prepared.windows.spans, prepared.inputs[1:], strict=True):
        text_ids = backend.tokenizer(document[start:end], add_special_tokens=False)["input_ids"]
        assert text_ids == list(window.input_ids)[2:-1]  # without [CLS] [D] ... [SEP]
    assert document[slice(*prepared.windows.spans[0])].startswith("the flow in")


def test_a_checkpoint_it_cannot_serve_is_refused_saying_why(
    tiny_late_interaction: Path, tmp_path: Path
) -> None:
    def load(folder: Path) -> None:
        load_model(model_spec({"name": "x", "kind": "late-interaction", "source": str(folder)}))

    unknown_marker = tmp_path / "unknown-marker"
    shutil.copytree(tiny_late_interaction, unknown_marker)
    settings = json.loads((unknown_marker / "config_sentence_transformers.json").read_text())
    settings["query_prefix"] = "[QueryMarker]"
    (unknown_marker / "config_sentence_transformers.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match=r"query_prefix '\[QueryMarker\]' is not a token"):
        load(unknown_marker)
    no_modules = tmp_path / "no-modules"
    shutil.copytree(tiny_late_interaction, no_modules)
    (no_modules / "modules.json").unlink()
    with pytest.raises(ValueError, match="neither a PyLate checkpoint"):
        load(no_modules)
