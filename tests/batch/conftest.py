"""Configs for the batch tests: bm25 (exact, quick) and a tiny generated cross-encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


def write_config(path: Path, models: list[dict[str, Any]], **settings: Any) -> Path:
    path.write_text(yaml.safe_dump({"database_url": "none", "models": models, **settings}), encoding="utf-8")
    return path


@pytest.fixture
def bm25_config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "bm25.yaml", [{"name": "bm25", "kind": "bm25"}])


@pytest.fixture
def tiny_config(tmp_path: Path, tiny_bert: Path) -> Path:
    model = {"name": "tiny", "kind": "cross-encoder", "source": str(tiny_bert), "dtype": "fp32"}
    return write_config(tmp_path / "tiny.yaml", [model])
