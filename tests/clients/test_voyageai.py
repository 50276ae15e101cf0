"""The ``voyageai`` SDK against a real server: ``Client(base_url=<server>/voyage/v1)`` posts
``/voyage/v1/rerank`` (``top_k`` null = all, ``truncation`` true) and reads ``data[]``. It never asks
for the documents back: it fills each result's ``document`` from its own list, by ``index``.
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

import voyageai

top_k = None if sys.argv[1] == "none" else int(sys.argv[1])
client = voyageai.Client(api_key=API_KEY, base_url=BASE_URL, max_retries=0)
response = client.rerank(query=QUERY, documents=DOCUMENTS, model="rerank-2", top_k=top_k)
results = [{"index": r.index, "score": r.relevance_score, "document": r.document} for r in response.results]
emit({"results": results, "total_tokens": response.total_tokens})
"""


@pytest.mark.parametrize(("top_k", "count"), [("3", 3), ("none", 5)])
def test_voyageai_rerank(
    run_client: RunClient, rerankd_server: Server, reference: Reference, top_k: str, count: int
) -> None:
    run = run_client(RERANK, args=[top_k], base_url=f"{rerankd_server.url}/voyage/v1")
    run.assert_posted("/voyage/v1/rerank")
    assert_ranking(run.value["results"], reference, count=count)
    assert run.value["total_tokens"] > 0
