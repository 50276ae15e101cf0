"""Browser fixtures: Debian's Chromium driven by Playwright, headless and offline, and pages that may
talk only to the server they were opened on.

Playwright never downloads a browser here: it launches the ``chromium`` package (``make install-test``
installs it, with ``fonts-noto-cjk`` for the Chinese page). Every request a page makes is recorded; one
to another origin is refused and fails the test, and so does an uncaught script error or a
Content-Security-Policy violation.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, sync_playwright

REPO = Path(__file__).resolve().parents[2]
# Screenshots of each run (git-ignored): the README's docs/playground.png is copied from here.
SCREENSHOTS = REPO / "test-output" / "web"
# Chromium's own calls home (updates, sync, field trials...) are switched off; Playwright adds more.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
]
TIMEOUT_MS = 20_000


def chromium_path() -> str | None:
    """Debian's Chromium (or RERANKD_CHROMIUM): the binary Playwright launches."""
    named = os.environ.get("RERANKD_CHROMIUM")
    if named:
        return named
    return shutil.which("chromium") or next(
        (path for path in ("/usr/lib/chromium/chromium",) if Path(path).is_file()), None
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.skip(
            "Debian's chromium is not installed (`make install-test` installs it: apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Visit:
    """A page of a fresh browser context bound to one server: what it requested and what went wrong."""

    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def open(self, path: str) -> Page:
        self.page.goto(self.origin + path)
        return self.page

    def paths(self) -> list[str]:
        return [urlsplit(url).path for url in self.requests]

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _same_origin(url: str, origin: str) -> bool:
    return url == origin or url.startswith(origin + "/")


@pytest.fixture
def visit(browser: Browser) -> Iterator[Callable[..., Visit]]:
    """``visit(server_url, locale="en-US")``: a page in a new context (its own storage) on that server."""
    contexts: list[tuple[BrowserContext, Visit]] = []

    def start(origin: str, locale: str = "en-US") -> Visit:
        context = browser.new_context(locale=locale, viewport={"width": 1360, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        seen = Visit(page, origin)

        def guard(route: Route) -> None:
            url = route.request.url
            if _same_origin(url, origin):
                route.continue_()
            else:
                seen.foreign.append(url)
                route.abort()

        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:
                seen.problems.append(message.text)

        context.route("**/*", guard)
        context.on("request", lambda request: seen.requests.append(request.url))
        page.on("console", on_console)
        page.on("pageerror", lambda error: seen.problems.append(f"uncaught: {error}"))
        contexts.append((context, seen))
        return seen

    yield start
    for context, _ in contexts:
        context.close()
    for _, seen in contexts:
        assert seen.requests, "the page made no request at all"
        assert not seen.foreign, f"requests to another origin than {seen.origin}: {seen.foreign}"
        assert all(_same_origin(url, seen.origin) for url in seen.requests), seen.requests
        assert not seen.problems, seen.problems
