"""llama-index's Jina and TEI rerank postprocessors against a real server.

``JinaRerank(base_url=B)`` posts ``B/rerank``, so ``B`` is ``<server>/jina/v1``. The TEI postprocessor
posts ``<base_url>/rerank`` with ``texts`` (bare /rerank answers it in TEI format), sends ``auth_token``
as the whole Authorization header, and asserts one score per node.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rerankd_support.harness import Server

from tests.clients.conftest import CLIENT_TEST_TIMEOUT, ClientRun, Reference, assert_ranking

pytestmark = [pytest.mark.clients, pytest.mark.timeout(CLIENT_TEST_TIMEOUT), pytest.mark.client_venv("main")]

RunClient = Callable[..., ClientRun]

POSTPROCESS = """
import sys

from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

if sys.argv[1] == "jina":
    from llama_index.postprocessor.jinaai_rerank import JinaRerank

    postprocessor = JinaRerank(
        base_url=BASE_URL, api_key=API_KEY, model="jina-reranker-v2-base-multilingual", top_n=3
    )
else:
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    postprocessor = TextEmbeddingInference(base_url=BASE_URL, auth_token=f"Bearer {API_KEY}", top_n=3)

nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i)), score=0.0) for i, d in enumerate(DOCUMENTS)]
kept = postprocessor.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
emit({"results": [
    {"index": int(n.node.id_), "score": n.score, "document": n.node.get_content()} for n in kept
]})
"""


def test_llama_index_jina_rerank(run_client: RunClient, rerankd_server: Server, reference: Reference) -> None:
    run = run_client(POSTPROCESS, args=["jina"], base_url=f"{rerankd_server.url}/jina/v1")
    run.assert_posted("/jina/v1/rerank")
    assert_ranking(run.value["results"], reference)


def test_llama_index_tei_rerank(run_client: RunClient, reference: Reference) -> None:
    run = run_client(POSTPROCESS, args=["tei"])
    run.assert_posted("/rerank")
    assert_ranking(run.value["results"], reference)
