"""Fixtures of the client tests: a real `rerankd serve` that every client is pointed at, the client
venvs (see venvs.py; built in parallel when the session needs them), and `run_client`, which runs a
small script in a group's venv and returns the JSON it emits.

A client script starts with a prelude that defines ``BASE_URL``, ``API_KEY``, ``QUERY``, ``DOCUMENTS``
and ``emit(value)``; it calls the real client and emits what the client returned, as plain JSON.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import textwrap
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from rerankd_support.harness import Server

from tests.clients.venvs import BUILD_TIMEOUT, GROUPS, VenvBuildError, ensure_venv

API_KEY = "sk-test"
MODEL = "all-minilm-l6-v2"
# Every model name the clients under test send; all of them are served by the bundled MiniLM.
ALIASES = (
    "rerank-english-v3.0",
    "rerank-multilingual-v3.0",
    "rerank-v3.5",
    "jina-reranker-v2-base-multilingual",
    "jina-reranker-v1-base-en",
    "rerank-2",
    "rerank-2-lite",
    "BAAI/bge-reranker-base",
    "BAAI/bge-reranker-v2-m3",
    "reranker",
)
QUERY = "What is the capital of the United States?"
DOCUMENTS = (
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. "
    "Its capital is Saipan.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of "
    "Columbia) is the capital of the United States. It is a federal district.",
    "Capitalization or capitalisation in English grammar is the use of a capital letter at the start of "
    "a word. English usage varies from capitalization in other languages.",
    "Capital punishment (the death penalty) has existed in the United States since beforethe United "
    "States was a country. As of 2017, capital punishment is legal in 30 of the 50 states.",
)
WASHINGTON = 2
# Seconds one client script may run (imports included).
CLIENT_TIMEOUT = 180.0
# For test modules that build venvs: the build may take BUILD_TIMEOUT inside the first test's setup.
CLIENT_TEST_TIMEOUT = int(BUILD_TIMEOUT + 2 * CLIENT_TIMEOUT)

# Proxies would send 127.0.0.1 traffic elsewhere; provider keys and URLs in the environment could
# override what a test passes explicitly.
_DROPPED_ENV = re.compile(
    r"^(https?_proxy|all_proxy|no_proxy|pythonpath|pythonhome|virtual_env|"
    r".*_api_key|.*_api_base|.*_base_url|hf_token|huggingface_hub_token|co_api_url)$",
    re.IGNORECASE,
)
_CLIENT_ENV = {
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "utf-8",
}
_RESULT_MARK = "@@rerankd-client-result@@"
_PRELUDE = f"""\
import json as _json
import os as _os

BASE_URL = _os.environ["RERANKD_BASE_URL"]
API_KEY = _os.environ["RERANKD_API_KEY"]
QUERY = _os.environ["RERANKD_QUERY"]
DOCUMENTS = _json.loads(_os.environ["RERANKD_DOCUMENTS"])


def emit(value):
    print({_RESULT_MARK!r} + _json.dumps(value), flush=True)


"""
_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "client_venv(group): the client venv group a test runs in")


def server_config(minilm_path: Path, **settings: Any) -> dict[str, Any]:
    """MiniLM under every name the clients send, with a key that every client must send."""
    model = {
        "name": MODEL,
        "kind": "bi-encoder",
        "source": str(minilm_path),
        "dtype": "fp32",  # scores are compared with the server's own at 1e-5, whatever the batches
        "preload": True,
        "aliases": list(ALIASES),
    }
    return {"api_keys": [API_KEY], "default_model": MODEL, "models": [model], **settings}


@pytest.fixture(scope="session")
def rerankd_server(start_server: Callable[..., Server], minilm_path: Path) -> Server:
    """The server all client tests share (default settings: bare /v1/rerank speaks the seed format)."""
    return start_server(server_config(minilm_path))


@pytest.fixture(scope="session")
def cohere_v1_server(start_server: Callable[..., Server], minilm_path: Path) -> Server:
    """A server with ``v1_dialect: cohere``: bare /v1/rerank answers in Cohere v1 format."""
    return start_server(server_config(minilm_path, v1_dialect="cohere"))


@dataclass(frozen=True)
class Reference:
    """The server's own ranking of ``DOCUMENTS`` (seed format), which every client must reproduce."""

    order: tuple[int, ...]
    scores: dict[int, float]


@pytest.fixture(scope="session")
def reference(rerankd_server: Server) -> Reference:
    response = httpx.post(
        f"{rerankd_server.url}/seed/v1/rerank",
        json={"model": MODEL, "query": QUERY, "documents": list(DOCUMENTS), "top_n": None},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )
    response.raise_for_status()
    results = response.json()["results"]
    return Reference(
        order=tuple(r["index"] for r in results),
        scores={r["index"]: r["relevance_score"] for r in results},
    )


def assert_ranking(
    results: list[dict[str, Any]],
    reference: Reference,
    *,
    count: int = 3,
    documents: bool = True,
    document_list: tuple[str, ...] = DOCUMENTS,
) -> None:
    """``results`` (``[{index, score, document?}]``, best first) rank like the server ranks.

    Washington first, valid distinct indices, scores in 0..1 and equal to the server's, and each
    document (where ``documents``) the text of the one at ``index``.
    """
    assert len(results) == count, results
    indices = [r["index"] for r in results]
    assert indices[0] == WASHINGTON, results
    assert len(set(indices)) == len(indices), results
    assert all(isinstance(i, int) and 0 <= i < len(document_list) for i in indices), results
    assert indices == list(reference.order[:count]), (indices, reference.order)
    scores = [r["score"] for r in results]
    assert all(0.0 <= s <= 1.0 for s in scores), scores
    assert scores == sorted(scores, reverse=True), scores
    for r in results:
        assert r["score"] == pytest.approx(reference.scores[r["index"]], rel=1e-5, abs=1e-6), r
    if documents:
        for r in results:
            assert r.get("document") == document_list[r["index"]], r


class ClientVenvs:
    """Builds the venvs the selected tests need, in parallel; `python` waits for one group's."""

    def __init__(self, groups: set[str]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(groups)), thread_name_prefix="client-venv")
        self._builds: dict[str, Future[Path]] = {}
        for name in sorted(groups, key=lambda g: g != "main"):  # the longest build first
            self._start(name)

    def _start(self, name: str) -> Future[Path]:
        if name not in self._builds:
            self._builds[name] = self._pool.submit(ensure_venv, name)
        return self._builds[name]

    def python(self, group: str) -> Path:
        if group not in GROUPS:
            raise KeyError(f"unknown client venv group {group!r}; see tests/clients/venvs.py")
        build = self._start(group)
        error = build.exception()
        if isinstance(error, VenvBuildError):
            pytest.fail(str(error), pytrace=False)
        return build.result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture(scope="session")
def client_venvs(request: pytest.FixtureRequest) -> Iterator[ClientVenvs]:
    needed = {
        str(marker.args[0]) for item in request.session.items for marker in item.iter_markers("client_venv")
    }
    venvs = ClientVenvs(needed)
    yield venvs
    venvs.close()


@dataclass
class ClientRun:
    """What a client script emitted, and the requests the server logged while it ran."""

    value: Any
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    access_logged: bool = True

    def assert_posted(self, path: str) -> None:
        """The client posted to ``path`` (checked only where the server writes an access log)."""
        if not self.access_logged:
            return
        posted = [p for method, p, _ in self.requests if method == "POST"]
        assert path in posted, f"expected a POST to {path}; the server logged {self.requests}"


_script_numbers = itertools.count()


@pytest.fixture
def run_client(
    request: pytest.FixtureRequest,
    client_venvs: ClientVenvs,
    rerankd_server: Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., ClientRun]:
    """``run_client(script, args=..., base_url=..., server=...)``: run ``script`` in the test's venv group.

    The group is the test's ``client_venv`` marker. Fails the test (with the script's output and the
    server's last log lines) when the script exits non-zero, times out or emits nothing.
    """
    marker = request.node.get_closest_marker("client_venv")
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses run_client without a client_venv marker")
    group = str(marker.args[0])
    scripts = tmp_path_factory.mktemp("client-scripts", numbered=True)

    def run(
        script: str,
        *,
        args: Sequence[str] = (),
        base_url: str | None = None,
        server: Server | None = None,
        timeout: float = CLIENT_TIMEOUT,
    ) -> ClientRun:
        python = client_venvs.python(group)
        target = server or rerankd_server
        path = scripts / f"client_{next(_script_numbers)}.py"
        path.write_text(_PRELUDE + textwrap.dedent(script), encoding="utf-8")
        env = {key: value for key, value in os.environ.items() if not _DROPPED_ENV.match(key)}
        env.update(_CLIENT_ENV)
        env.update(
            RERANKD_BASE_URL=base_url or target.url,
            RERANKD_API_KEY=API_KEY,
            RERANKD_QUERY=QUERY,
            RERANKD_DOCUMENTS=json.dumps(list(DOCUMENTS)),
        )
        log_start = len(target.log())
        try:
            done = subprocess.run(
                [str(python), str(path), *args],
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=env,
                cwd=scripts,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"the {group} client script ran over {timeout:.0f}s:\n{_outputs(exc)}", pytrace=False)
        server_log = target.log()[log_start:]
        if done.returncode != 0:
            pytest.fail(
                f"the {group} client script exited {done.returncode}:\n{_outputs(done)}\n"
                f"--- server log ---\n{_last_lines(server_log)}",
                pytrace=False,
            )
        emitted = [line for line in done.stdout.splitlines() if line.startswith(_RESULT_MARK)]
        if not emitted:
            pytest.fail(f"the {group} client script emitted no result:\n{_outputs(done)}", pytrace=False)
        requests = [(m["method"], m["path"], int(m["status"])) for m in _ACCESS_LINE.finditer(server_log)]
        return ClientRun(
            value=json.loads(emitted[-1][len(_RESULT_MARK) :]),
            requests=requests,
            access_logged=bool(_ACCESS_LINE.search(target.log())),
        )

    return run


def _outputs(done: subprocess.CompletedProcess[str] | subprocess.TimeoutExpired) -> str:
    def text(value: str | bytes | None) -> str:
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value or ""

    return (
        f"--- stdout ---\n{_last_lines(text(done.stdout))}\n--- stderr ---\n{_last_lines(text(done.stderr))}"
    )


def _last_lines(text: str, count: int = 40) -> str:
    return "\n".join(text.splitlines()[-count:])
