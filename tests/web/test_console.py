"""The console in Chromium against a real `rerankd serve`: an operator creates a key, its holder uses it in
the playground, and the call shows in the console's usage (totals, chart, tables, CSV) with the ledger's
tokens and cost; a budget edited down refuses the next call (402), a revoked key is refused (401); a key
holder sees only their own numbers and cannot open the keys tab; the numbers equal `rerankd usage` on SQLite
and PostgreSQL.
Screenshots of each tab in English and Chinese go to test-output/web/ (docs/console.png is a copy of one)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from rerankd_support.harness import Server

from tests.web.conftest import Visit
from tests.web.playground import Playground

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN_KEY = "adm-console-test-0123456789"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DOCUMENTS = ["the capital city of a country", "a river in the north", "capital letters in English"]
MODELS = [
    {"name": "bm25", "kind": "bm25", "preload": True, "price": {"per_request": "0.25"}},
    {"name": "bm25-tokens", "kind": "bm25", "preload": True, "price": {"per_million_tokens": "1000"}},
]


def start(start_server: Callable[..., Server], database_url: str) -> Server:
    return start_server(
        {"admin_keys": [ADMIN_KEY], "models": MODELS}, env={"RERANKD_DATABASE_URL": database_url}
    )


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # A database of its own: the keys made here must not close the session's other servers.
    return f"sqlite:///{tmp_path_factory.mktemp('web-console') / 'rerankd.db'}"


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server], database_url: str) -> Server:
    return start(start_server, database_url)


def api(server: Server, method: str, path: str, key: str = ADMIN_KEY, **options: Any) -> httpx.Response:
    return httpx.request(
        method, server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=30, **options
    )


def new_key(server: Server, name: str, **limits: Any) -> dict[str, Any]:
    response = api(server, "POST", "/admin/keys", json={"name": name, **limits})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def rerank(server: Server, key: str, model: str = "bm25") -> dict[str, Any]:
    body = {"model": model, "query": "capital", "documents": DOCUMENTS}
    response = api(server, "POST", "/v1/rerank", key=key, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def cli_usage(database_url: str, *arguments: str) -> dict[str, Any]:
    """`rerankd usage --json` on the server's database."""
    done = subprocess.run(
        [sys.executable, "-m", "rerankd", "usage", "--json", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "RERANKD_DATABASE_URL": database_url},
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def tomorrow() -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()


class Console:
    """The console page of one browser context."""

    def __init__(self, visit: Visit) -> None:
        self.visit = visit
        self.page: Page = visit.page

    def open(self) -> Console:
        self.visit.open("/console")
        return self

    def sign_in(self, key: str) -> None:
        self.page.locator("#console-key").fill(key)
        self.page.locator("#console-key").press("Enter")

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name, exact=True).click()

    def key_row(self, prefix: str) -> Any:
        return self.page.locator(f'#keys-table tr[data-prefix="{prefix}"]')

    def cell(self, prefix: str, column: str) -> Any:
        return self.key_row(prefix).locator(f'[data-column="{column}"]')

    def fact(self, list_id: str, name: str) -> str:
        return str(self.page.locator(f'#{list_id} [data-fact="{name}"] dd').inner_text())

    def shot(self, name: str) -> Path:
        path = self.visit.screenshot(name)
        print(f"screenshot: {path}")
        return path


def show_usage(console: Console, key: str = "") -> None:
    page = console.page
    console.tab("Usage")
    expect(page.locator("#u-key option")).not_to_have_count(1)  # the keys are listed
    page.locator("#u-key").select_option(key)
    page.locator("#usage-filters").get_by_role("button", name="Show").click()
    expect(page.locator("#usage-totals [data-fact=calls]")).to_be_visible()


def test_a_key_made_in_the_console_is_used_in_the_playground_and_its_call_shows(
    server: Server, database_url: str, visit: Callable[..., Visit]
) -> None:
    console = Console(visit(server.url)).open()
    page = console.page
    page.set_viewport_size({"width": 1280, "height": 800})
    console.sign_in(ADMIN_KEY)
    expect(page.locator("#who")).to_have_text("Signed in with an admin key.")
    expect(page.get_by_role("tab", name="Keys")).to_have_attribute("aria-selected", "true")

    page.get_by_role("button", name="New key").click()
    expect(page.get_by_label("Name")).to_be_focused()
    page.get_by_label("Name").fill("console-made")
    page.get_by_label("Budget").fill("5")
    page.get_by_label("Requests per minute").fill("100")
    page.get_by_role("button", name="Create").click()
    created = page.locator("#created")
    expect(created).to_be_visible()
    expect(created).to_contain_text("This is the only time the key is shown")
    expect(page.get_by_label("The new key")).to_be_focused()
    plaintext = page.get_by_label("The new key").input_value()
    assert plaintext.startswith("rk-")
    listed = {key["name"]: key for key in api(server, "GET", "/admin/keys").json()["data"]}
    prefix = listed["console-made"]["prefix"]
    assert plaintext.startswith(prefix) and listed["console-made"]["budget"] == "5"
    expect(console.cell(prefix, "last_used_at")).to_have_text("never")
    expect(created.get_by_role("button", name="Copy")).to_be_visible()
    # the key is in the page for this once, never in its address or in storage
    assert plaintext not in page.url
    assert (
        page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)").find(plaintext) == -1
    )
    assert page.evaluate("sessionStorage.getItem('rerankd.console.key')") == ADMIN_KEY
    page.get_by_role("button", name="Done").click()
    expect(created).to_be_hidden()

    # its holder uses it in the playground (another tab: its own storage)
    playground = Playground(visit(server.url)).open()
    playground.page.get_by_label("API key").fill(plaintext)
    playground.page.get_by_role("button", name="Use key").click()
    playground.fill("capital", DOCUMENTS, None)
    playground.choose("bm25-tokens")
    answer = playground.rerank(1)["bm25-tokens"]
    assert answer.status == 200
    tokens = answer.body["usage"]["total_tokens"]

    ledger = api(server, "GET", f"/admin/usage?key={prefix}&by=model").json()
    assert ledger["total"]["calls"] == 1 and ledger["total"]["total_tokens"] == tokens
    cost = ledger["total"]["cost"]
    assert cost == str(tokens * 1000 / 1_000_000).rstrip("0").rstrip(".")

    page.get_by_role("button", name="Refresh").first.click()
    expect(console.cell(prefix, "spent")).to_have_text(cost)
    expect(console.cell(prefix, "last_used_at")).not_to_have_text("never")
    expect(console.cell(prefix, "last_used_at")).to_contain_text(today())
    console.shot("console-keys.png")

    show_usage(console, str(listed["console-made"]["id"]))
    expect(page.locator("#usage-totals [data-fact=calls] dd")).to_have_text("1")
    expect(page.locator("#usage-totals [data-fact=tokens] dd")).to_have_text(f"{tokens:,}")
    expect(page.locator("#usage-totals [data-fact=cost] dd")).to_have_text(cost)
    row = page.locator('#usage-by-model tr[data-group="bm25-tokens"]')
    expect(row.locator("[data-column=total_tokens]")).to_have_text(f"{tokens:,}")
    expect(row.locator("[data-column=cost]")).to_have_text(cost)
    by_key = page.locator(f'#usage-by-key tr[data-group="console-made ({prefix})"]')
    expect(by_key.locator("[data-column=calls]")).to_have_text("1")
    bar = page.locator(f'#chart rect.day-bar[data-day="{today()}"]')
    expect(bar).to_have_attribute("data-value", "1")
    page.get_by_label("Per day", exact=True).select_option("tokens")
    expect(bar).to_have_attribute("data-value", str(tokens))
    page.get_by_label("Per day", exact=True).select_option("cost")
    expect(bar).to_have_attribute("data-value", cost)
    drawn = bar.bounding_box()  # the day with the most is drawn tall, not only in its attributes
    assert drawn is not None and drawn["height"] > 50

    # the CSV is the API's export for the same filters, byte for byte
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    saved = Path(download.value.path()).read_bytes().decode("utf-8")
    since = page.locator("#u-from").input_value()
    exported = api(
        server,
        "GET",
        f"/admin/usage?format=csv&since={since}&until={tomorrow()}&key={listed['console-made']['id']}",
    )
    assert saved == exported.text
    rows = list(csv.DictReader(io.StringIO(saved)))
    assert [(row["model"], row["total_tokens"], row["cost"]) for row in rows] == [
        ("bm25-tokens", str(tokens), cost)
    ]

    # the same numbers as `rerankd usage` for the same filters
    report = cli_usage(
        database_url, "--key", prefix, "--since", since, "--until", tomorrow(), "--by", "model"
    )
    assert report["total"]["calls"] == 1 and report["total"]["total_tokens"] == tokens
    assert str(report["total"]["cost"]) == cost
    console.shot("console-usage.png")

    console.tab("Models")
    model = page.locator('#models-table tr[data-model="bm25-tokens"]')
    expect(model.locator("[data-column=status]")).to_have_text("ready")
    expect(model.locator("[data-column=price]")).to_have_text("1,000 per million tokens")
    expect(model.locator("[data-column=recent_calls]")).not_to_have_text("0")
    expect(model.locator("[data-column=failure_rate]")).to_have_text("0.0%")
    expect(page.locator('#models-table tr[data-model="bm25"] [data-column=price]')).to_have_text(
        "0.25 per call"
    )
    console.shot("console-models.png")

    page.get_by_label("Language").select_option("zh")
    expect(page.get_by_role("tab", name="模型")).to_have_attribute("aria-selected", "true")
    expect(model.locator("[data-column=status]")).to_have_text("就绪")
    assert page.title() == "rerankd 控制台"
    console.shot("console-models-zh.png")
    page.get_by_role("tab", name="用量").click()
    expect(page.locator("#usage-totals [data-fact=cost] dt")).to_have_text("费用")
    console.shot("console-usage-zh.png")
    page.get_by_role("tab", name="密钥", exact=True).click()
    expect(console.cell(prefix, "state")).to_have_text("有效")
    console.shot("console-keys-zh.png")


def test_a_budget_edited_down_refuses_the_next_call_and_a_revoked_key_is_refused(
    server: Server, visit: Callable[..., Visit]
) -> None:
    created = new_key(server, "to-be-limited", budget="10")
    prefix, plaintext = created["prefix"], created["key"]
    rerank(server, plaintext)  # 0.25 of 10

    console = Console(visit(server.url)).open()
    page = console.page
    console.sign_in(ADMIN_KEY)
    expect(console.cell(prefix, "spent")).to_have_text("0.25")
    expect(console.cell(prefix, "remaining")).to_have_text("9.75")

    # the server's words for a wrong value, then a budget below the next call's price
    console.key_row(prefix).get_by_role("button", name="Edit").click()
    expect(page.get_by_label("Name")).to_have_value("to-be-limited")
    page.get_by_label("Budget").fill("-1")
    page.get_by_role("button", name="Save").click()
    refused = api(server, "PATCH", f"/admin/keys/{created['id']}", json={"budget": "-1"})
    assert refused.status_code == 422
    expect(page.locator("#key-form-error")).to_contain_text(refused.json()["error"]["message"])
    expect(page.locator("#key-form-error")).to_contain_text("HTTP 422")
    page.get_by_label("Budget").fill("0.4")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#key-form")).to_be_hidden()
    expect(console.cell(prefix, "budget")).to_have_text("0.4")
    expect(console.cell(prefix, "remaining")).to_have_text("0.15")
    assert api(server, "GET", f"/admin/keys/{prefix}").json()["budget"] == "0.4"

    playground = Playground(visit(server.url)).open()
    playground.page.get_by_label("API key").fill(plaintext)
    playground.page.get_by_role("button", name="Use key").click()
    playground.fill("capital", DOCUMENTS, None)
    playground.choose("bm25")
    answer = playground.rerank(1)["bm25"]
    assert answer.status == 402
    expect(playground.column("bm25").locator(".error-status")).to_have_text("HTTP 402 · budget_exhausted")

    # disabled, enabled, then revoked for good: the row has no actions left but its spend
    console.key_row(prefix).get_by_role("button", name="Disable").click()
    expect(console.cell(prefix, "state")).to_have_text("disabled")
    console.key_row(prefix).get_by_role("button", name="Enable").click()
    expect(console.cell(prefix, "state")).to_have_text("active")
    page.once("dialog", lambda dialog: dialog.accept())
    console.key_row(prefix).get_by_role("button", name="Revoke").click()
    expect(console.cell(prefix, "state")).to_have_text("revoked")
    expect(page.locator("#notice")).to_have_text(f"{prefix} is revoked.")
    expect(console.key_row(prefix).get_by_role("button")).to_have_count(0)
    page.get_by_label("State").select_option("revoked")
    expect(console.key_row(prefix)).to_be_visible()
    expect(page.locator("#keys-table tbody tr")).to_have_count(
        sum(key["state"] == "revoked" for key in api(server, "GET", "/admin/keys").json()["data"])
    )

    answer = playground.rerank(1)["bm25"]
    assert answer.status == 401
    expect(playground.column("bm25").locator(".error-message")).to_have_text(answer.body["error"]["message"])


def test_the_keys_table_filters_sorts_and_releases_held_money(
    server: Server, visit: Callable[..., Visit]
) -> None:
    for name, budget in (("sort-b", "3"), ("sort-a", "7"), ("sort-c", None)):
        new_key(server, name, **({"budget": budget} if budget else {}))
    console = Console(visit(server.url)).open()
    page = console.page
    console.sign_in(ADMIN_KEY)
    page.get_by_label("Filter").fill("sort-")
    names = page.locator("#keys-table tbody th[data-column=name]")
    expect(names).to_have_text(["sort-b", "sort-a", "sort-c"])
    expect(page.locator("#keys-count")).to_contain_text("3 of")
    page.get_by_role("button", name="Budget", exact=True).click()
    expect(page.locator("#keys-table th[data-column=budget]")).to_have_attribute("aria-sort", "ascending")
    expect(names).to_have_text(["sort-b", "sort-a", "sort-c"])  # unlimited last
    page.keyboard.press("Enter")  # the sort button keeps the focus: again, the other way
    expect(page.locator("#keys-table th[data-column=budget]")).to_have_attribute("aria-sort", "descending")
    expect(names).to_have_text(["sort-a", "sort-b", "sort-c"])
    page.get_by_role("button", name="Name", exact=True).click()
    expect(names).to_have_text(["sort-a", "sort-b", "sort-c"])

    # nothing held: no release button; the API's release is there for a key with holds (tests/api)
    expect(
        console.key_row(new_key(server, "sort-d")["prefix"]).get_by_role("button", name="Release held")
    ).to_have_count(0)


def test_a_key_holder_sees_only_their_own_and_cannot_open_the_keys_tab(
    server: Server, visit: Callable[..., Visit]
) -> None:
    mine = new_key(server, "holder-mine", budget="2", models=["bm25"], rpm=30)
    other = new_key(server, "holder-other", budget="99")
    rerank(server, mine["key"])
    rerank(server, other["key"])
    rerank(server, other["key"])
    own = api(server, "GET", "/v1/usage", key=mine["key"]).json()

    console = Console(visit(server.url)).open()
    page = console.page
    page.locator("#console-key").press_sequentially(mine["key"])
    page.keyboard.press("Enter")  # signed in by keyboard
    expect(page.locator("#who")).to_have_text(f"Signed in as holder-mine ({mine['prefix']}).")
    expect(page.get_by_role("tab", name="My key")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#mine-key [data-fact=remaining] dd")).to_have_text(own["remaining"])
    assert console.fact("mine-key", "budget") == "2"
    assert console.fact("mine-key", "spent") == "0.25"
    assert console.fact("mine-key", "models") == "bm25"
    assert console.fact("mine-key", "rpm") == "30"
    assert console.fact("mine-totals", "calls") == "1"
    assert console.fact("mine-totals", "cost") == own["total"]["cost"] == "0.25"
    text = page.locator("main").inner_text()
    assert "holder-other" not in text and other["prefix"] not in text
    console.shot("console-mine.png")

    # the keys tab, by keyboard: the API refuses the key and the page says so, in the server's words
    page.get_by_role("tab", name="My key").focus()
    page.keyboard.press("Home")
    expect(page.get_by_role("tab", name="Keys")).to_be_focused()
    refusal = api(server, "GET", "/admin/keys", key=mine["key"])
    assert refusal.status_code == 401
    box = page.locator("#panel-keys .refused")
    expect(box).to_contain_text(refusal.json()["error"]["message"])
    expect(box).to_contain_text("HTTP 401")
    expect(box).to_contain_text("This tab needs an admin key")
    expect(page.locator("#keys-table tbody tr")).to_have_count(0)
    page.keyboard.press("ArrowRight")
    expect(page.locator("#panel-usage .refused")).to_contain_text("This tab needs an admin key")
    assert other["prefix"] not in page.locator("main").inner_text()

    page.get_by_label("Language").select_option("zh")
    expect(box).to_be_hidden()  # the usage tab is open
    page.get_by_role("tab", name="我的密钥").click()
    expect(page.locator("#mine-key [data-fact=remaining] dt")).to_have_text("可用余额")
    console.shot("console-mine-zh.png")
    page.get_by_role("tab", name="密钥", exact=True).click()
    expect(box).to_contain_text("此页需要管理员密钥")
    console.shot("console-refused-zh.png")

    # the page on a phone: nothing wider than the screen but the tables, which scroll in their box
    page.get_by_role("tab", name="我的密钥").click()
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    console.shot("console-mine-phone-zh.png")

    page.get_by_role("button", name="退出").click()
    expect(page.get_by_role("tablist")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('rerankd.console.key')") is None


def test_a_wrong_key_is_refused_in_the_servers_words(server: Server, visit: Callable[..., Visit]) -> None:
    console = Console(visit(server.url)).open()
    console.sign_in("rk-not-a-key")
    message = api(server, "GET", "/v1/usage", key="rk-not-a-key").json()["error"]["message"]
    expect(console.page.locator("#who")).to_contain_text(message)
    expect(console.page.get_by_role("tablist")).to_be_hidden()


def test_the_keys_tab_on_a_phone(server: Server, visit: Callable[..., Visit]) -> None:
    console = Console(visit(server.url)).open()
    page = console.page
    page.set_viewport_size({"width": 390, "height": 844})
    console.sign_in(ADMIN_KEY)
    expect(page.locator("#keys-table tbody tr").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    console.shot("console-keys-phone.png")


def test_the_usage_numbers_on_postgresql(
    start_server: Callable[..., Server], postgres_url: str, visit: Callable[..., Visit]
) -> None:
    server = start(start_server, postgres_url)
    try:
        first, second = new_key(server, "pg-one"), new_key(server, "pg-two")
        answers = [
            rerank(server, first["key"], "bm25-tokens"),
            rerank(server, second["key"]),
            rerank(server, second["key"]),
        ]
        tokens = sum(answer["usage"]["total_tokens"] for answer in answers)
        console = Console(visit(server.url)).open()
        page = console.page
        console.sign_in(ADMIN_KEY)
        show_usage(console)
        report = cli_usage(
            postgres_url, "--since", page.locator("#u-from").input_value(), "--until", tomorrow()
        )
        ledger = api(server, "GET", "/admin/usage?since=30d").json()["total"]
        assert report["total"]["calls"] == ledger["calls"] == 3
        assert report["total"]["total_tokens"] == ledger["total_tokens"] == tokens
        assert str(report["total"]["cost"]) == ledger["cost"]
        expect(page.locator("#usage-totals [data-fact=calls] dd")).to_have_text("3")
        expect(page.locator("#usage-totals [data-fact=tokens] dd")).to_have_text(f"{tokens:,}")
        expect(page.locator("#usage-totals [data-fact=cost] dd")).to_have_text(ledger["cost"])
        expect(
            page.locator(f'#usage-by-key tr[data-group="pg-two ({second["prefix"]})"] [data-column=calls]')
        ).to_have_text("2")
        expect(page.locator(f'#chart rect.day-bar[data-day="{today()}"]')).to_have_attribute(
            "data-value", "3"
        )
    finally:
        server.stop()
