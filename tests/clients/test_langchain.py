"""langchain-cohere's ``CohereRerank`` against a real server (cohere 5.21 beneath it).

It uses the SDK's ``ClientV2``: ``base_url`` is the server root and it posts ``/v2/rerank`` with
``max_tokens_per_doc: null`` (and ``top_n`` 3 by default, even with fewer documents).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.clients.conftest import CLIENT_TEST_TIMEOUT, ClientRun, Reference, assert_ranking

pytestmark = [
    pytest.mark.clients,
    pytest.mark.timeout(CLIENT_TEST_TIMEOUT),
    pytest.mark.client_venv("cohere5"),
]

RunClient = Callable[..., ClientRun]

COMPRESS = """
from langchain_cohere import CohereRerank
from langchain_core.documents import Document

reranker = CohereRerank(model="rerank-v3.5", cohere_api_key=API_KEY, base_url=BASE_URL, top_n=3)
documents = [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCUMENTS)]
kept = reranker.compress_documents(documents, QUERY)
emit({"results": [
    {"index": d.metadata["i"], "score": d.metadata["relevance_score"], "document": d.page_content}
    for d in kept
]})
"""

RERANK = """
from langchain_cohere import CohereRerank

reranker = CohereRerank(model="rerank-v3.5", cohere_api_key=API_KEY, base_url=BASE_URL)
ranked = reranker.rerank(DOCUMENTS[:2], QUERY)  # top_n 3 by default, with 2 documents
emit({"results": [{"index": r["index"], "score": r["relevance_score"]} for r in ranked]})
"""


def test_langchain_cohere_rerank_compress_documents(run_client: RunClient, reference: Reference) -> None:
    run = run_client(COMPRESS)
    run.assert_posted("/v2/rerank")
    assert_ranking(run.value["results"], reference)


def test_langchain_cohere_rerank_more_top_n_than_documents(run_client: RunClient) -> None:
    run = run_client(RERANK)
    run.assert_posted("/v2/rerank")
    results = run.value["results"]
    assert sorted(r["index"] for r in results) == [0, 1], results
    assert all(0.0 <= r["score"] <= 1.0 for r in results), results
