"""The READMEs' example answer is what the server really sends for their example request."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rerankd.api.app import create_app
from rerankd.config import load_settings

REPO = Path(__file__).resolve().parents[1]
READMES = [REPO / "README.md", REPO / "README.zh-CN.md"]
# The example's scores are fp32; `dtype: auto` computes in bf16 on CPUs that have it natively.
SCORE_TOLERANCE = 5e-3


def example(readme: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first curl body of the README and the JSON answer shown after it."""
    text = readme.read_text(encoding="utf-8")
    request = re.search(r"-d '(\{.*?\})'", text, re.DOTALL)
    assert request is not None, f"{readme.name} has no curl example"
    answer = re.search(r"```json\n(.*?)```", text[request.end() :], re.DOTALL)
    assert answer is not None, f"{readme.name} shows no answer after its curl example"
    return json.loads(request.group(1)), json.loads(answer.group(1))


def assert_same(shown: Any, sent: Any, where: str = "answer") -> None:
    if isinstance(shown, dict):
        assert isinstance(sent, dict) and set(shown) == set(sent), (
            f"{where}: {sorted(shown)} vs {sorted(sent)}"
        )
        for key in shown:
            assert_same(shown[key], sent[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(sent, list) and len(shown) == len(sent), where
        for index, (a, b) in enumerate(zip(shown, sent, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(shown, float):
        assert sent == pytest.approx(shown, abs=SCORE_TOLERANCE), where
    else:
        assert shown == sent, where


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(load_settings(None))) as test_client:  # the built-in config, as in the README
        yield test_client


@pytest.mark.slow
@pytest.mark.parametrize("readme", READMES, ids=lambda path: path.name)
def test_the_readme_answer_is_a_real_answer(client: TestClient, readme: Path) -> None:
    request, shown = example(readme)
    response = client.post("/v1/rerank", json=request)
    assert response.status_code == 200, response.text
    assert_same(shown, response.json())
