"""The playground in Chromium against a real `rerankd serve`: the seed example, models side by side with
their comparison and the request as code, the best window highlighted, errors as the server words them,
and the Chinese page. Screenshots go to test-output/web/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import FilePayload, Page, expect
from rerankd_support.harness import Server

from tests.test_readme import READMES, example
from tests.web.conftest import Visit
from tests.web.playground import Playground

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SEED_REQUEST, _ = example(READMES[0])
WINDOW_MODEL = "minilm-short-window"  # the same MiniLM with 32-token windows: long documents get a span
FILLER = (
    "The committee met on a rainy Tuesday to discuss the budget of the regional library, the opening hours "
    "of the swimming pool and the repainting of the town hall's fence, which had been postponed twice. "
)
LONG_DOCUMENT = FILLER * 2 + "Washington, D.C. is the capital of the United States. " + FILLER


@pytest.fixture(scope="module")
def server(
    start_server: Callable[..., Server], minilm_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Server:
    missing = tmp_path_factory.mktemp("web") / "no-such-model"
    return start_server(
        {
            "models": [
                {"name": "bm25", "kind": "bm25", "preload": True},
                {
                    "name": "all-minilm-l6-v2",
                    "kind": "bi-encoder",
                    "source": str(minilm_path),
                    "preload": True,
                },
                {
                    "name": WINDOW_MODEL,
                    "kind": "bi-encoder",
                    "source": str(minilm_path),
                    "max_length": 32,
                    "preload": True,
                },
                {"name": "broken", "kind": "cross-encoder", "source": str(missing)},
            ]
        }
    )


@pytest.fixture
def playground(server: Server, visit: Callable[..., Visit]) -> Playground:
    return Playground(visit(server.url)).open()


def test_the_seed_example_ranks_washington_first(playground: Playground) -> None:
    page = playground.page
    page.get_by_role("button", name="Load the example").click()
    assert page.get_by_label("Query").input_value() == SEED_REQUEST["query"]
    assert page.get_by_label("Documents").input_value().split("\n") == SEED_REQUEST["documents"]
    assert page.get_by_label("Top N").input_value() == str(SEED_REQUEST["top_n"])
    playground.choose("all-minilm-l6-v2")

    answer = playground.rerank(1)["all-minilm-l6-v2"]

    assert answer.status == 200
    assert answer.request == {**SEED_REQUEST, "return_documents": True, "return_spans": True}
    results = answer.body["results"]
    assert (
        playground.shown_indexes("all-minilm-l6-v2") == [result["index"] for result in results] == [2, 0, 3]
    )
    column = playground.column("all-minilm-l6-v2")
    first = column.locator("li.result").first
    expect(first.locator(".doc")).to_have_text(SEED_REQUEST["documents"][2])
    expect(first.locator(".index")).to_have_text("#2")
    scores = column.locator(".score").all_inner_texts()
    assert scores == [f"{result['relevance_score']:.4f}" for result in results]
    usage = answer.body["usage"]
    expect(column.locator(".facts")).to_contain_text(
        f"{usage['total_tokens']} (query {usage['query_tokens']}, documents {usage['documents_tokens']})"
    )
    expect(column.locator(".facts")).to_contain_text(answer.headers["x-request-id"])
    expect(page.locator("#status")).to_contain_text("Ranked 5 documents")
    playground.visit.screenshot("playground-seed.png")


def test_two_models_side_by_side_with_their_agreement_and_the_request_as_code(playground: Playground) -> None:
    page = playground.page
    playground.fill(SEED_REQUEST["query"], SEED_REQUEST["documents"], 3)
    playground.choose("bm25", "all-minilm-l6-v2")

    answers = playground.rerank(2)

    ranked = {
        model: [result["index"] for result in answer.body["results"]] for model, answer in answers.items()
    }
    for model, indexes in ranked.items():
        assert playground.shown_indexes(model) == indexes
        expect(playground.column(model).locator(".facts")).to_contain_text(f"Answered by{model}")
    # the comparison, computed here the page's way: top-k overlap and Spearman over the shared documents
    a, b = ranked["bm25"], ranked["all-minilm-l6-v2"]
    shared = [index for index in a if index in b]
    rank_a = {index: position for position, index in enumerate(shared)}
    rank_b = {index: position for position, index in enumerate(i for i in b if i in shared)}
    n = len(shared)
    row = page.locator("#comparison tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".overlap")).to_have_text(f"{n} of the top 3")
    if n >= 2:
        rho = 1 - 6 * sum((rank_a[i] - rank_b[i]) ** 2 for i in shared) / (n * (n * n - 1))
        expect(row.locator(".correlation")).to_have_text(f"{rho:.2f} over {n} documents both ranked")
    playground.visit.screenshot("playground.png")

    page.get_by_role("button", name="View code").click()
    code = page.locator("#code-block")
    expect(code).to_contain_text(f"curl -s {playground.visit.origin}/v1/rerank")
    curl = code.inner_text()
    page.get_by_role("tab", name="Python (httpx)").click()
    expect(page.get_by_role("tab", name="Python (httpx)")).to_have_attribute("aria-selected", "true")
    python = code.inner_text()
    page.get_by_role("tab", name="Python (httpx)").press("ArrowRight")  # tabs follow the arrow keys
    expect(code).to_contain_text("cohere.ClientV2(")
    expect(code).to_contain_text('model="bm25"')
    page.get_by_role("tab", name="JavaScript (fetch)").click()
    expect(code).to_contain_text("JSON.stringify(")

    # the snippets really work: they get the answer the page showed for the first model
    printed = subprocess.run(
        [sys.executable, "-c", python], capture_output=True, text=True, timeout=60, check=True
    )
    assert [int(line.split()[0]) for line in printed.stdout.splitlines()] == ranked["bm25"]
    if shutil.which("curl"):
        answered = subprocess.run(
            ["bash", "-c", curl], capture_output=True, text=True, timeout=60, check=True
        )
        assert [result["index"] for result in json.loads(answered.stdout)["results"]] == ranked["bm25"]


def test_the_best_window_is_highlighted_and_long_documents_fold(playground: Playground) -> None:
    documents = ["Carson City is the capital city of the American state of Nevada.", LONG_DOCUMENT]
    playground.fill("What is the capital of the United States?", documents, None)
    playground.choose(WINDOW_MODEL)

    answer = playground.rerank(1)[WINDOW_MODEL]

    long_result = next(result for result in answer.body["results"] if result["index"] == 1)
    span = long_result["span"]
    assert 0 < span["start"] < span["end"] < len(LONG_DOCUMENT)
    item = playground.column(WINDOW_MODEL).locator('li.result[data-index="1"]')
    expect(item.locator("mark")).to_have_text(LONG_DOCUMENT[span["start"] : span["end"]])
    playground.visit.screenshot("playground-span.png")
    fold = item.get_by_role("button", name="Show all")
    expect(fold).to_have_attribute("aria-expanded", "false")
    assert len(item.locator(".doc").inner_text()) < len(LONG_DOCUMENT)
    fold.click()
    expect(item.get_by_role("button", name="Show less")).to_have_attribute("aria-expanded", "true")
    expect(item.locator(".doc")).to_have_text(LONG_DOCUMENT.strip())
    expect(item.locator("mark")).to_have_text(LONG_DOCUMENT[span["start"] : span["end"]])


def upload(page: Page, name: str, mime_type: str, content: bytes) -> None:
    page.locator("#file").set_input_files(FilePayload(name=name, mimeType=mime_type, buffer=content))


def test_documents_load_from_a_file_and_ctrl_enter_reranks(playground: Playground) -> None:
    page = playground.page
    playground.model_box("bm25").wait_for()
    page.get_by_role("button", name="Rerank").click()  # nothing typed yet: the page says what is missing
    expect(page.locator("#form-error")).to_have_text("Type a query.")
    expect(page.get_by_label("Query")).to_be_focused()
    lines = [json.dumps("the capital city"), json.dumps({"text": "a river\nin the north", "id": 7}), ""]
    upload(page, "docs.jsonl", "application/jsonl", "\n".join(lines).encode())
    expect(page.locator("#status")).to_have_text("Loaded 2 documents from docs.jsonl.")
    expect(page.get_by_label("Documents")).to_have_value("the capital city\na river in the north")
    upload(page, "bad.jsonl", "application/jsonl", b'"fine"\n{"title": 1}\n')
    expect(page.locator("#form-error")).to_have_text(
        "bad.jsonl, line 2: not a JSON string or an object with a text field."
    )
    upload(page, "docs.txt", "text/plain", b"a river\n\nthe capital city\n")
    expect(page.get_by_label("Documents")).to_have_value("a river\nthe capital city")
    page.get_by_label("Query").fill("capital")
    playground.choose("bm25")

    answer = playground.rerank(1, by_keyboard=True)["bm25"]

    assert answer.request["documents"] == ["a river", "the capital city"]
    assert playground.shown_indexes("bm25") == [1, 0]


def test_an_error_is_shown_as_the_server_words_it(playground: Playground) -> None:
    page = playground.page
    expect(playground.model_box("broken")).to_be_attached()
    expect(page.locator('.model-option[data-model="bm25"] .badge')).to_have_text("ready")
    playground.fill("capital", ["the capital city", "a river"], 2)
    playground.choose("bm25", "broken")

    answers = playground.rerank(2)

    broken = answers["broken"]
    assert broken.status == 503
    box = playground.column("broken").get_by_role("alert")
    expect(box.locator(".error-status")).to_have_text("HTTP 503 · model_unavailable")
    expect(box.locator(".error-message")).to_have_text(broken.body["error"]["message"])
    assert "no-such-model" in broken.body["error"]["message"]
    assert playground.shown_indexes("bm25") == [0, 1]  # the other model still answers
    expect(page.locator("#comparison")).to_be_hidden()
    # the model list now says why the model failed
    page.reload()
    expect(page.locator('.model-option[data-model="broken"] .badge')).to_have_text("failed")
    expect(page.locator('.model-option[data-model="broken"] .model-error')).to_contain_text("no-such-model")


def test_the_page_speaks_chinese(server: Server, visit: Callable[..., Visit]) -> None:
    playground = Playground(visit(server.url, locale="zh-CN")).open()
    page = playground.page
    expect(page.get_by_label("查询")).to_be_visible()  # the browser prefers Chinese
    expect(page.get_by_role("button", name="重排序")).to_be_visible()
    page.get_by_label("语言").select_option("en")
    expect(page.get_by_label("Query")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_label("Language").select_option("zh")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    documents = ["华盛顿特区是美国的首都。", "卡森城是美国内华达州的首府。", "资本主义是一种经济制度。"]
    playground.fill("美国的首都是哪里？", documents, 3)
    playground.choose("bm25")

    answer = playground.rerank(1)["bm25"]

    assert playground.shown_indexes("bm25")[0] == answer.body["results"][0]["index"] == 0
    facts = playground.column("bm25").locator(".facts")
    expect(facts).to_contain_text("延迟")
    expect(facts).to_contain_text("应答模型")
    expect(page.locator('.model-option[data-model="bm25"] .badge')).to_have_text("就绪")
    playground.visit.screenshot("playground-zh.png")
    page.reload()  # the choice is remembered
    expect(page.get_by_label("文档")).to_be_visible()
