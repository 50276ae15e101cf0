"""/docs (Swagger UI) and /redoc (ReDoc) render in Chromium with nothing but this server's own assets,
link to the playground and back, and no page of rerankd's asks another origin for anything."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect
from rerankd_support.harness import Server

from tests.web.conftest import Visit

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server]) -> Server:
    return start_server({"models": [{"name": "bm25", "kind": "bm25", "preload": True}]})


def test_the_docs_pages_render_offline_and_link_the_playground(
    server: Server, visit: Callable[..., Visit]
) -> None:
    seen = visit(server.url)
    page = seen.open("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("rerankd")
    expect(page.locator(".swagger-ui .opblock-summary-path").first).to_be_visible()  # the routes rendered
    expect(page.locator('.swagger-ui .opblock-summary-path[data-path="/v1/rerank"]')).to_be_visible()

    page.get_by_role("link", name="ReDoc").click()
    expect(page).to_have_url(f"{server.url}/redoc")
    expect(page.locator("h1").first).to_contain_text("rerankd")
    expect(page.get_by_text("Rerank (seed format", exact=False).first).to_be_attached()

    page.get_by_role("navigation", name="rerankd").get_by_role("link", name="Playground").click()
    expect(page).to_have_url(f"{server.url}/playground")
    expect(page.locator('#model-list input[value="bm25"]')).to_be_checked()
    page.get_by_role("link", name="API docs").click()
    expect(page).to_have_url(f"{server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("rerankd")

    paths = seen.paths()
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/redoc.standalone.js", "/openapi.json"):
        assert asset in paths
    assert "/v1/models" in paths and "/playground/assets/playground.js" in paths
    # (the visit fixture asserts that every one of these requests went to this server)
