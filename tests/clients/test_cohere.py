"""The Cohere SDK against a real server: 7.x ``ClientV2`` and ``Client``, 5.x (5.21, beside
langchain-cohere) and the 5.0-5.6 line that posts ``<base_url>/rerank``.

``ClientV2`` posts ``<base_url>/v2/rerank`` (Cohere v2 on the bare path). ``Client`` posts
``<base_url>/v1/rerank``: the bare /v1/rerank speaks the seed format unless ``v1_dialect: cohere``, so
a v1 client is given ``<server>/cohere`` as base URL (or the server that setting).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rerankd_support.harness import Server

from tests.clients.conftest import CLIENT_TEST_TIMEOUT, ClientRun, Reference, assert_ranking

pytestmark = [pytest.mark.clients, pytest.mark.timeout(CLIENT_TEST_TIMEOUT)]

RunClient = Callable[..., ClientRun]

CLIENT_V2 = """
import cohere

client = cohere.ClientV2(base_url=BASE_URL, api_key=API_KEY)
response = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=3)
emit({"results": [{"index": r.index, "score": r.relevance_score} for r in response.results]})
"""

# `document.text` is what the v1 SDKs type and users read. An error inside the SDK is emitted (not
# raised), so that a failing test shows the SDK's own error.
CLIENT_V1 = """
import cohere

client = cohere.Client(base_url=BASE_URL, api_key=API_KEY)
try:
    response = client.rerank(
        model="rerank-english-v3.0", query=QUERY, documents=DOCUMENTS, top_n=3, return_documents=True
    )
    results = [
        {"index": r.index, "score": r.relevance_score, "document": r.document.text} for r in response.results
    ]
except Exception as exc:
    emit({"error": f"{type(exc).__name__}: {exc}"})
else:
    emit({"results": results})
"""


# cohere 7 (the "main" venv) and cohere 5.21 post the same paths.
BOTH_MAJORS = [
    pytest.param(marks=pytest.mark.client_venv("main"), id="cohere7"),
    pytest.param(marks=pytest.mark.client_venv("cohere5"), id="cohere5"),
]


@pytest.mark.parametrize((), BOTH_MAJORS)
def test_client_v2(run_client: RunClient, reference: Reference) -> None:
    run = run_client(CLIENT_V2)
    run.assert_posted("/v2/rerank")
    assert_ranking(run.value["results"], reference, documents=False)


@pytest.mark.parametrize((), BOTH_MAJORS)
def test_client_v1_on_cohere_prefix(
    run_client: RunClient, rerankd_server: Server, reference: Reference
) -> None:
    run = run_client(CLIENT_V1, base_url=f"{rerankd_server.url}/cohere")
    run.assert_posted("/cohere/v1/rerank")
    assert "error" not in run.value, run.value["error"]
    assert_ranking(run.value["results"], reference)


@pytest.mark.client_venv("main")
def test_cohere7_client_v1_with_v1_dialect_cohere(
    run_client: RunClient, cohere_v1_server: Server, reference: Reference
) -> None:
    run = run_client(CLIENT_V1, server=cohere_v1_server)
    run.assert_posted("/v1/rerank")
    assert "error" not in run.value, run.value["error"]
    assert_ranking(run.value["results"], reference)


@pytest.mark.client_venv("main")
def test_cohere7_client_v1_on_bare_v1_default_settings(run_client: RunClient, reference: Reference) -> None:
    run = run_client(CLIENT_V1)
    assert "error" not in run.value, run.value["error"]
    assert_ranking(run.value["results"], reference)


@pytest.mark.client_venv("cohere5_legacy")
def test_cohere5_legacy_client_on_cohere_v1_prefix(
    run_client: RunClient, rerankd_server: Server, reference: Reference
) -> None:
    # cohere 5.0-5.6 post <base_url>/rerank; their default base URL ends in /v1.
    run = run_client(CLIENT_V1, base_url=f"{rerankd_server.url}/cohere/v1")
    run.assert_posted("/cohere/v1/rerank")
    assert "error" not in run.value, run.value["error"]
    assert_ranking(run.value["results"], reference)


@pytest.mark.client_venv("cohere5_legacy")
def test_cohere5_legacy_client_with_v1_dialect_cohere(
    run_client: RunClient, cohere_v1_server: Server, reference: Reference
) -> None:
    run = run_client(CLIENT_V1, server=cohere_v1_server, base_url=f"{cohere_v1_server.url}/v1")
    run.assert_posted("/v1/rerank")
    assert "error" not in run.value, run.value["error"]
    assert_ranking(run.value["results"], reference)


@pytest.mark.client_venv("cohere5_legacy")
def test_cohere5_legacy_client_on_bare_v1_default_settings(
    run_client: RunClient, rerankd_server: Server, reference: Reference
) -> None:
    run = run_client(CLIENT_V1, base_url=f"{rerankd_server.url}/v1")
    assert "error" not in run.value, run.value["error"]
    assert_ranking(run.value["results"], reference)
