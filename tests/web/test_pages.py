"""The pages over HTTP, without a browser: what /playground, /docs and /redoc send and that every asset
they name is served by rerankd itself (tests/web/test_browser_*.py load them in Chromium)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rerankd.api.app import create_app
from rerankd.config import load_settings
from rerankd.web.pages import STATIC

# src="..." and href="..." in a page (links to other pages included: all must be local)
_URLS = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
_IMPORTS = re.compile(r"""^import .* from "([^"]+)";$""", re.MULTILINE)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = load_settings(None, models=[{"name": "bm25", "kind": "bm25"}], database_url="none")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def local_urls(html: str) -> list[str]:
    urls = [url for url in _URLS.findall(html) if not url.startswith("#")]
    assert urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not on this server"
    return urls


def test_the_playground_is_served_with_a_policy_that_keeps_it_on_this_origin(client: TestClient) -> None:
    response = client.get("/playground")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    for url in local_urls(response.text):
        if url.startswith("/playground/assets/"):
            asset = client.get(url)
            assert asset.status_code == 200, url
    assert "/docs" in local_urls(response.text)


def test_the_console_is_served_like_the_playground_and_the_pages_link_each_other(client: TestClient) -> None:
    response = client.get("/console")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert policy == client.get("/playground").headers["content-security-policy"]
    for url in local_urls(response.text):
        if url.startswith("/playground/assets/"):
            assert client.get(url).status_code == 200, url
    assert {"/playground", "/docs"} <= set(local_urls(response.text))
    assert "/console" in local_urls(client.get("/playground").text)
    for page in ("/docs", "/redoc"):
        assert 'href="/console"' in client.get(page).text


def test_every_script_module_the_playground_imports_is_served(client: TestClient) -> None:
    modules = sorted(path.name for path in STATIC.glob("*.js"))
    assert "playground.js" in modules
    for name in modules:
        response = client.get(f"/playground/assets/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
        for imported in _IMPORTS.findall(response.text):
            assert imported.startswith("./") and (STATIC / imported[2:]).is_file(), (
                f"{name} imports {imported}"
            )


@pytest.mark.parametrize(
    ("path", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
def test_the_docs_pages_load_their_assets_from_this_server(client: TestClient, path: str, asset: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert "cdn" not in response.text.lower() and "googleapis" not in response.text
    urls = local_urls(response.text)
    assert f"/docs/assets/{asset}" in urls
    assert "/playground" in urls  # the bar that links the pages
    for url in urls:
        if url.startswith("/docs/assets/"):
            served = client.get(url)
            assert served.status_code == 200 and len(served.content) > 10_000, url


def test_the_served_redoc_script_names_no_other_origin_for_its_logo(client: TestClient) -> None:
    script = client.get("/docs/assets/redoc.standalone.js")
    assert script.status_code == 200 and len(script.content) > 500_000
    assert "cdn.redoc.ly" not in script.text


def test_the_pages_are_not_in_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/playground", "/docs", "/redoc"} & set(paths)


def test_a_missing_asset_is_a_json_404(client: TestClient) -> None:
    response = client.get("/playground/assets/nothing.js")
    assert response.status_code == 404
    assert "no route GET /playground/assets/nothing.js" in response.json()["error"]["message"]
