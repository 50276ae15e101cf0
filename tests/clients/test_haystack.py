"""Haystack's Cohere, Jina and TEI rankers against a real server.

``CohereRanker(api_base_url=<server>)`` uses the SDK's ``ClientV2`` (``/v2/rerank``, ``top_n`` 10 with 5
documents, ``max_tokens_per_doc`` 4096). ``JinaRanker(base_url=...)`` takes the whole endpoint URL.
``HuggingFaceTEIRanker(url=...)`` drops any path and posts the root ``/rerank``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rerankd_support.harness import Server

from tests.clients.conftest import CLIENT_TEST_TIMEOUT, ClientRun, Reference, assert_ranking

pytestmark = [pytest.mark.clients, pytest.mark.timeout(CLIENT_TEST_TIMEOUT), pytest.mark.client_venv("main")]

RunClient = Callable[..., ClientRun]

RANK = """
import sys

from haystack import Document
from haystack.utils import Secret

key = Secret.from_token(API_KEY)
kind, top_k = sys.argv[1], int(sys.argv[2])
if kind == "cohere":
    from haystack_integrations.components.rankers.cohere import CohereRanker

    ranker = CohereRanker(model="rerank-v3.5", api_key=key, api_base_url=BASE_URL)
elif kind == "jina":
    from haystack_integrations.components.rankers.jina import JinaRanker

    ranker = JinaRanker(model="jina-reranker-v2-base-multilingual", api_key=key, base_url=BASE_URL)
else:
    from haystack_integrations.components.rankers.huggingface_api import HuggingFaceTEIRanker

    ranker = HuggingFaceTEIRanker(url=BASE_URL, token=key)

documents = [Document(content=d, meta={"i": i}) for i, d in enumerate(DOCUMENTS)]
ranked = ranker.run(query=QUERY, documents=documents, top_k=top_k)["documents"]
emit({"results": [{"index": d.meta["i"], "score": d.score, "document": d.content} for d in ranked]})
"""


@pytest.mark.parametrize(
    ("kind", "suffix", "posted"),
    [
        pytest.param("cohere", "", "/v2/rerank", id="cohere"),
        pytest.param("jina", "/jina/v1/rerank", "/jina/v1/rerank", id="jina"),
        pytest.param("tei", "/tei", "/rerank", id="tei"),
    ],
)
@pytest.mark.parametrize("top_k", [3, 10])
def test_haystack_ranker(
    run_client: RunClient,
    rerankd_server: Server,
    reference: Reference,
    kind: str,
    suffix: str,
    posted: str,
    top_k: int,
) -> None:
    run = run_client(RANK, args=[kind, str(top_k)], base_url=rerankd_server.url + suffix)
    run.assert_posted(posted)
    assert_ranking(run.value["results"], reference, count=min(top_k, 5))
