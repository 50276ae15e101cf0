"""``litellm.rerank`` against a real server, once per provider prefix, each with the ``api_base``
that reaches the dialect it speaks.

litellm rebuilds the URL from ``api_base``: ``cohere/`` posts ``/v2/rerank``, ``jina_ai/`` keeps only the
host and posts ``/v1/rerank``, ``infinity/`` and ``hosted_vllm/`` and ``huggingface/`` append
``/rerank``, ``voyage/`` appends ``/v1/rerank``. ``huggingface/`` speaks TEI, which has no top_n, but litellm
sends one: rerankd honours it (before issue 10 every document came back).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rerankd_support.harness import Server

from tests.clients.conftest import CLIENT_TEST_TIMEOUT, ClientRun, Reference, assert_ranking

pytestmark = [pytest.mark.clients, pytest.mark.timeout(CLIENT_TEST_TIMEOUT), pytest.mark.client_venv("main")]

RunClient = Callable[..., ClientRun]

RERANK = """
import sys

import litellm

model, api_base = sys.argv[1], sys.argv[2]
response = litellm.rerank(
    model=model, query=QUERY, documents=DOCUMENTS, top_n=3, api_base=api_base, api_key=API_KEY
)
emit({"results": [
    {
        "index": r["index"],
        "score": r["relevance_score"],
        "document": (r.get("document") or {}).get("text"),
    }
    for r in response.results
]})
"""


@pytest.mark.parametrize(
    ("model", "suffix", "posted", "count"),
    [
        pytest.param("cohere/rerank-english-v3.0", "", "/v2/rerank", 3, id="cohere"),
        pytest.param("jina_ai/jina-reranker-v2-base-multilingual", "/jina", "/v1/rerank", 3, id="jina_ai"),
        pytest.param("infinity/BAAI/bge-reranker-base", "/infinity", "/infinity/rerank", 3, id="infinity"),
        pytest.param("hosted_vllm/BAAI/bge-reranker-base", "", "/rerank", 3, id="hosted_vllm"),
        pytest.param("huggingface/BAAI/bge-reranker-base", "", "/rerank", 3, id="huggingface"),
        pytest.param("voyage/rerank-2", "/voyage", "/voyage/v1/rerank", 3, id="voyage"),
    ],
)
def test_litellm_rerank(
    run_client: RunClient,
    rerankd_server: Server,
    reference: Reference,
    model: str,
    suffix: str,
    posted: str,
    count: int,
) -> None:
    run = run_client(RERANK, args=[model, rerankd_server.url + suffix])
    run.assert_posted(posted)
    assert_ranking(run.value["results"], reference, count=count)
