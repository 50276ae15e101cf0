"""Driving the playground page: choose models, fill the form, press Rerank, and read back both what the
page shows and the answers it got from the server (to compare the two)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Locator, Page, Response, expect

from tests.web.conftest import Visit


@dataclass
class Answer:
    """One /v1/rerank call the page made: what it sent and what the server answered."""

    request: dict[str, Any]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class Playground:
    def __init__(self, visit: Visit) -> None:
        self.visit = visit
        self.page: Page = visit.page
        self._responses: list[Response] = []
        self.page.on("response", self._record)

    def _record(self, response: Response) -> None:
        if response.url.endswith("/v1/rerank"):
            self._responses.append(response)

    def open(self) -> Playground:
        self.visit.open("/playground")
        return self

    def model_box(self, name: str) -> Locator:
        return self.page.locator(f'#model-list input[value="{name}"]')

    def choose(self, *names: str) -> None:
        self.model_box(names[0]).wait_for()
        for box in self.page.locator("#model-list input:checked").all():
            box.uncheck()
        for name in names:
            self.model_box(name).check()

    def fill(self, query: str, documents: list[str], top_n: int | None) -> None:
        self.page.locator("#query").fill(query)
        self.page.locator("#documents").fill("\n".join(documents))
        self.page.locator("#top-n").fill("" if top_n is None else str(top_n))

    def rerank(self, expected: int, by_keyboard: bool = False) -> dict[str, Answer]:
        """Press Rerank (or Ctrl+Enter in the query), wait for ``expected`` columns; the answers by model."""
        self._responses.clear()
        if by_keyboard:
            self.page.locator("#query").press("Control+Enter")
        else:
            self.page.locator("#rerank").click()
        expect(self.page.locator("#columns article.column")).to_have_count(expected)
        expect(self.page.locator("#rerank")).to_be_enabled()
        answers = {}
        for response in self._responses:
            request = response.request.post_data_json
            assert isinstance(request, dict)
            answers[request["model"]] = Answer(request, response.status, response.json(), response.headers)
        assert len(answers) == expected, answers
        return answers

    def column(self, model: str) -> Locator:
        return self.page.locator(f'#columns article.column[data-model="{model}"]')

    def shown_indexes(self, model: str) -> list[int]:
        values = (
            self.column(model).locator("li.result").evaluate_all("items => items.map(i => i.dataset.index)")
        )
        return [int(value) for value in values]
