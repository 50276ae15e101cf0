"""The routes of the pages: ``/playground`` and ``/console`` (static files of this package) and the API
docs, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), whose scripts and styles come from the
``fastapi-offline`` package.

FastAPI's own docs pages load Swagger UI and ReDoc from a CDN and are blank on a machine without internet;
here every asset is served by rerankd itself. None of these routes needs a key: the pages hold no data,
and the API calls they make carry the key the user types in.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS", "PLAYGROUND_ASSETS", "STATIC", "include_pages"]

STATIC = Path(__file__).parent / "static"
PLAYGROUND_ASSETS = "/playground/assets"
DOCS_ASSETS = "/docs/assets"
_DOCS_STATIC = Path(fastapi_offline.__file__).parent / "static"

# The playground and the console need nothing from another origin; the browser then refuses any such request
# too.
_PLAYGROUND_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The docs pages need inline scripts and styles (FastAPI's page templates); everything they fetch stays here.
_DOCS_POLICY = "connect-src 'self'; img-src 'self' data:; font-src 'self' data:; frame-ancestors 'none'"
# ReDoc's sidebar shows its maker's logo from their CDN; given no source, the image hides itself (onError).
_REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
_NAV_STYLE = (
    "display:flex;gap:1.25rem;align-items:center;padding:.5rem 1.25rem;background:#1f2937;"
    "font:14px/1.4 system-ui,sans-serif"
)


def _nav(current: str) -> str:
    """The bar at the top of each docs page: links to the other pages."""
    items = []
    pages = (
        ("/playground", "Playground"),
        ("/console", "Console"),
        ("/docs", "Swagger UI"),
        ("/redoc", "ReDoc"),
    )
    for href, text in pages:
        if href == current:
            attributes = ' aria-current="page" style="color:#fff;font-weight:700"'
        else:
            attributes = ' style="color:#d1d5db"'
        items.append(f'<a href="{href}"{attributes}>{text}</a>')
    brand = '<strong style="color:#fff">rerankd</strong>'
    nav = f'<nav aria-label="rerankd" style="{_NAV_STYLE}">{brand}{"".join(items)}</nav>'
    return "<style>body{margin:0}</style>" + nav  # Swagger UI's page keeps the browser's body margin


def _with_nav(page: HTMLResponse, current: str) -> HTMLResponse:
    html = bytes(page.body).decode("utf-8").replace("<body>", "<body>\n" + _nav(current), 1)
    html = html.replace("<html>", '<html lang="en">', 1)
    return HTMLResponse(html, headers={"Content-Security-Policy": _DOCS_POLICY})


@lru_cache(maxsize=1)
def _redoc_script() -> bytes:
    return (_DOCS_STATIC / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO, b'""')


def include_pages(app: FastAPI) -> None:
    """Add the playground, the console and the offline docs pages to ``app`` (created with
    ``docs_url=None`` and ``redoc_url=None``, so FastAPI's CDN pages are not there)."""
    title = app.title

    async def playground() -> FileResponse:
        return FileResponse(
            STATIC / "playground.html",
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": _PLAYGROUND_POLICY, "Cache-Control": "no-cache"},
        )

    async def console() -> FileResponse:
        return FileResponse(
            STATIC / "console.html",
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": _PLAYGROUND_POLICY, "Cache-Control": "no-cache"},
        )

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} — API docs",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{PLAYGROUND_ASSETS}/favicon.svg",
            # Swagger UI would otherwise send the schema to an online validator.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _with_nav(page, "/docs")

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} — ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{PLAYGROUND_ASSETS}/favicon.svg",
            with_google_fonts=False,
        )
        return _with_nav(page, "/redoc")

    async def redoc_script() -> Response:
        return Response(
            _redoc_script(), media_type="text/javascript", headers={"Cache-Control": "max-age=3600"}
        )

    app.add_api_route("/playground", playground, methods=["GET"], include_in_schema=False)
    app.add_api_route("/console", console, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    # Before the mount of the other assets, so that this route answers for the script.
    app.add_api_route(
        f"{DOCS_ASSETS}/redoc.standalone.js", redoc_script, methods=["GET"], include_in_schema=False
    )
    app.mount(PLAYGROUND_ASSETS, StaticFiles(directory=STATIC), name="playground-assets")
    app.mount(DOCS_ASSETS, StaticFiles(directory=_DOCS_STATIC), name="docs-assets")
