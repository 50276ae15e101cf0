"""The playground on a server that requires keys: the key prompt, the key kept for the tab only, and the
gateway's refusals (403, 402, 429 with its Retry-After) shown as the server words them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from rerankd_support.harness import Server

from rerankd.gateway.store.limits import WINDOW_SECONDS
from tests.web.conftest import Visit
from tests.web.playground import Playground

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATIC_KEY = "sk-playground-test-0123456789"
ADMIN_KEY = "adm-playground-test-0123456789"
DOCUMENTS = ["the capital city of a country", "a river in the north"]
KEY_STORAGE = "rerankd.playground.key"


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> Server:
    # A database of its own: the keys made here must not close the session's other servers.
    database = tmp_path_factory.mktemp("web-keys") / "rerankd.db"
    return start_server(
        {
            "api_keys": [STATIC_KEY],
            "admin_keys": [ADMIN_KEY],
            "models": [
                {"name": "bm25", "kind": "bm25", "preload": True, "price": {"per_request": 1}},
                {"name": "bm25-other", "kind": "bm25", "preload": True},
            ],
        },
        env={"RERANKD_DATABASE_URL": f"sqlite:///{database}"},
    )


def managed_key(server: Server, **limits: Any) -> tuple[int, str]:
    """A new key's id and the key."""
    response = httpx.post(
        f"{server.url}/admin/keys",
        json={"name": "playground test", **limits},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"]), str(response.json()["key"])


def change_key(server: Server, key_id: int, **fields: Any) -> None:
    response = httpx.patch(
        f"{server.url}/admin/keys/{key_id}",
        json=fields,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def enter_key(playground: Playground, key: str) -> None:
    playground.page.get_by_label("API key").fill(key)
    playground.page.get_by_role("button", name="Use key").click()


def test_the_key_prompt(server: Server, visit: Callable[..., Visit]) -> None:
    playground = Playground(visit(server.url)).open()
    page = playground.page
    key_field = page.get_by_label("API key")
    expect(key_field).to_be_focused()  # the server refused /v1/models: the page asks for a key
    expect(page.locator("#model-list")).to_contain_text("The server needs an API key: ")
    missing = httpx.get(f"{server.url}/v1/models", timeout=30).json()["error"]["message"]
    expect(page.locator("#model-list")).to_contain_text(missing)

    enter_key(playground, "sk-wrong")
    wrong = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer sk-wrong"}, timeout=30)
    expect(page.locator("#model-list")).to_contain_text(wrong.json()["error"]["message"])

    key_field.press("Control+a")
    key_field.press_sequentially(STATIC_KEY)
    key_field.press("Enter")  # Enter in the key field sets the key; it does not rerank
    playground.model_box("bm25").wait_for()
    playground.fill("capital", DOCUMENTS, None)
    playground.choose("bm25-other")
    answer = playground.rerank(1)["bm25-other"]
    assert answer.status == 200
    assert playground.shown_indexes("bm25-other") == [0, 1]

    # kept for this tab only: in sessionStorage, not localStorage, and not in another tab's storage
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") == STATIC_KEY
    assert page.evaluate("JSON.stringify(localStorage)").find(STATIC_KEY) == -1
    other = Playground(visit(server.url)).open()
    expect(other.page.get_by_label("API key")).to_have_value("")

    # the code never shows the key: it reads RERANKD_API_KEY, and then it works
    page.get_by_role("button", name="View code").click()
    page.get_by_role("tab", name="Python (httpx)").click()
    code = page.locator("#code-block").inner_text()
    assert STATIC_KEY not in code and "RERANKD_API_KEY" in code
    printed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "RERANKD_API_KEY": STATIC_KEY},
    )
    assert [int(line.split()[0]) for line in printed.stdout.splitlines()] == [0, 1]


@pytest.mark.parametrize(
    ("limits", "model", "status", "kind"),
    [
        ({"models": ["bm25", "bm25-other"]}, "bm25", 403, "forbidden"),
        ({"budget": "0.5"}, "bm25", 402, "budget_exhausted"),
        ({"rpm": 1}, "bm25-other", 429, "rate_limited"),
    ],
    ids=["403-model-not-allowed", "402-budget", "429-rate-limit"],
)
def test_the_gateway_refusals_are_shown_as_the_server_words_them(
    server: Server, visit: Callable[..., Visit], limits: dict[str, Any], model: str, status: int, kind: str
) -> None:
    playground = Playground(visit(server.url)).open()
    key_id, key = managed_key(server, **limits)
    enter_key(playground, key)
    playground.fill("capital", DOCUMENTS, None)
    playground.choose(model)
    if status == 403:  # the page lists only the models a key may use: this one loses bm25 once listed
        change_key(server, key_id, models=["bm25-other"])
    if status == 429:  # the minute's one request; both calls in one window (windows are clock minutes)
        left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
        if left < 10:
            time.sleep(left + 0.2)
        assert playground.rerank(1)[model].status == 200

    answer = playground.rerank(1)[model]

    assert answer.status == status
    box = playground.column(model).get_by_role("alert")
    expect(box.locator(".error-status")).to_have_text(f"HTTP {status} · {kind}")
    expect(box.locator(".error-message")).to_have_text(answer.body["error"]["message"])
    if status == 429:
        retry_after = answer.headers["retry-after"]
        assert int(retry_after) >= 1
        expect(box.locator(".retry-after")).to_have_text(f"Retry after {retry_after} s.")
    else:
        expect(box.locator(".retry-after")).to_have_count(0)


def test_the_page_offers_only_the_models_of_the_key(server: Server, visit: Callable[..., Visit]) -> None:
    playground = Playground(visit(server.url)).open()
    enter_key(playground, managed_key(server, models=["bm25-other"])[1])
    playground.model_box("bm25-other").wait_for()
    expect(playground.page.locator("#model-list input")).to_have_count(1)
