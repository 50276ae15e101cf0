"""OpenTelemetry spans of rerank calls, in-process with the SDK's in-memory exporter: the tree of one call on
a local model (a child of the caller's ``traceparent``, its trace id in the JSON access line), of an upstream
fallback (two attempts, the failed one an error, the trace sent on to the upstream), of a 402 (the admission
fails, no forward pass), and of a server with tracing off (nothing made, nothing sent on)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from rerankd import tracing
from rerankd.api.app import Traced, create_app
from rerankd.commands.cli import JsonFormatter
from rerankd.config import load_settings
from rerankd.gateway.money import to_nanos
from rerankd.gateway.store import Store
from rerankd.gateway.store import keys as key_store
from tests.upstream.fake import FakeUpstream

QUERY = "what is the capital of the united states"
DOCUMENTS = ["Carson City is the capital of Nevada.", "Washington is the capital of the United States."]
# A caller's W3C trace context: version, trace id, its span's id, sampled.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def memory() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider that keeps its spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    first, second = FakeUpstream("cohere"), FakeUpstream("cohere")
    yield first, second
    first.close()
    second.close()


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_bert: Path,
    memory: tuple[TracerProvider, InMemorySpanExporter],
    upstreams: tuple[FakeUpstream, FakeUpstream],
) -> Iterator[TestClient]:
    """A traced server: a priced local model and two upstreams, the second the first's fallback."""
    first, second = upstreams
    remote = {"kind": "upstream", "provider": "cohere", "timeout": 5, "max_retries": 0}
    config = {
        "log_format": "json",
        "models": [
            {
                "name": "tiny",
                "kind": "cross-encoder",
                "source": str(tiny_bert),
                "price": {"per_request": "0.01"},
            },
            {"name": "remote-a", **remote, "base_url": first.url, "fallbacks": ["remote-b"]},
            {"name": "remote-b", **remote, "base_url": second.url},
        ],
    }
    folder = tmp_path_factory.mktemp("traces")
    with pytest.MonkeyPatch.context() as patch:
        # A database of its own: the keys made here must not close the session's open servers.
        patch.setenv("RERANKD_DATABASE_URL", f"sqlite:///{folder / 'rerankd.db'}")
        settings = load_settings(write_config(folder, config))
    tracing.use(memory[0])  # on while the app is made: it traces its requests (when tracing is on)
    try:
        app = create_app(settings)
    finally:
        tracing.use(None)
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def team(traced: TestClient) -> str:
    """A managed key with a budget (once a key exists, every call needs one)."""
    _, plaintext = key_store.create_key(store_of(traced).engine, "team", budget_nanos=to_nanos(1))
    return plaintext


@pytest.fixture
def spans(memory: tuple[TracerProvider, InMemorySpanExporter]) -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test, into memory."""
    provider, exporter = memory
    exporter.clear()
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)


def trace_of(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, dict[int, list[ReadableSpan]]]:
    """The one request span, and every span's children by the parent's span id."""
    finished = exporter.get_finished_spans()
    [root] = [span for span in finished if span.kind == SpanKind.SERVER]
    children: dict[int, list[ReadableSpan]] = {}
    for span in finished:
        assert span.context is not None and span.context.trace_id == root.context.trace_id
        if span.parent is not None:
            children.setdefault(span.parent.span_id, []).append(span)
    return root, children


def under(
    span: ReadableSpan, children: dict[int, list[ReadableSpan]], name: str | None = None
) -> list[ReadableSpan]:
    assert span.context is not None
    found = sorted(children.get(span.context.span_id, []), key=lambda s: s.start_time or 0)
    return [child for child in found if name is None or child.name == name]


def store_of(client: TestClient) -> Store:
    store: Store | None = client.app.state.service.meter.store  # type: ignore[attr-defined]
    assert store is not None
    return store


def texts_of(spans: Sequence[ReadableSpan]) -> str:
    """Everything the spans say, as one string: names and attribute values."""
    return " ".join(f"{span.name} {dict(span.attributes or {})}" for span in spans)


def test_one_call_on_a_local_model(
    traced: TestClient, team: str, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    plaintext = team
    body = {"model": "tiny", "query": QUERY, "documents": DOCUMENTS}
    headers = {"traceparent": TRACEPARENT, "Authorization": f"Bearer {plaintext}"}
    with caplog.at_level(logging.INFO, logger="rerankd.access"):
        response = traced.post("/v1/rerank", json=body, headers=headers)
    assert response.status_code == 200, response.text
    root, children = trace_of(spans)

    # The request's span continues the caller's trace, named by its route.
    assert root.context is not None and f"{root.context.trace_id:032x}" == TRACE_ID
    assert root.parent is not None and root.parent.is_remote and f"{root.parent.span_id:016x}" == CALLER_SPAN
    assert root.name == "POST /v1/rerank"
    attributes = dict(root.attributes or {})
    assert attributes["http.request.method"] == "POST" and attributes["http.route"] == "/v1/rerank"
    assert attributes["http.response.status_code"] == 200
    assert attributes["rerankd.request_id"] == response.headers["x-request-id"]
    assert (attributes["rerankd.model"], attributes["rerankd.served_by"]) == ("tiny", "tiny")
    assert attributes["rerankd.tokens"] == response.json()["usage"]["total_tokens"]
    assert attributes["rerankd.cost"] == "0.01" and attributes["rerankd.documents"] == 2
    assert attributes["rerankd.key"] == plaintext[:11]  # the key's prefix, never the key

    assert [span.name for span in under(root, children)] == ["rerankd.attempt", "rerankd.settlement"]
    [attempt] = under(root, children, "rerankd.attempt")
    assert dict(attempt.attributes or {}) == {"rerankd.model": "tiny", "rerankd.attempt": 1}
    steps = under(attempt, children)
    names = [span.name for span in steps]
    assert names[:3] == ["rerankd.tokenize", "rerankd.admission", "rerankd.queue"], names
    passes = under(attempt, children, "rerankd.forward")
    assert passes and names[3:] == ["rerankd.forward"] * len(passes)
    tokenize, admission, queue = steps[:3]
    assert tokenize.attributes is not None and tokenize.attributes["rerankd.inputs"] == 2
    assert admission.attributes is not None and admission.attributes["rerankd.held"] == "0.01"
    assert admission.attributes["rerankd.tokens"] == attributes["rerankd.tokens"]
    # The wait ends as the first pass starts (recorded on two threads: a little slack).
    assert queue.end_time is not None and passes[0].start_time is not None
    assert abs(queue.end_time - passes[0].start_time) < 20_000_000
    rows = 0
    for forward in passes:
        batch = {name: value for name, value in (forward.attributes or {}).items() if isinstance(value, int)}
        assert 0 < batch["rerankd.rows"] <= batch["rerankd.batch.rows"]
        assert batch["rerankd.batch.tokens"] > 0 and batch["rerankd.batch.requests"] == 1
        rows += batch["rerankd.rows"]
    assert rows == 2  # a cross-encoder's input per document
    [settlement] = under(root, children, "rerankd.settlement")
    assert dict(settlement.attributes or {}) == {"rerankd.status": 200, "rerankd.cost": "0.01"}
    finished = spans.get_finished_spans()
    assert all(span.status.status_code == StatusCode.UNSET for span in finished)
    # Nothing a client wrote goes into a span.
    said = texts_of(finished)
    assert QUERY not in said and not any(document in said for document in DOCUMENTS)
    assert plaintext not in said

    # The JSON access line names the trace.
    [line] = [record for record in caplog.records if record.name == "rerankd.access"]
    assert json.loads(JsonFormatter().format(line))["trace_id"] == TRACE_ID


def test_an_upstream_fallback(
    traced: TestClient, team: str, spans: InMemorySpanExporter, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    first, second = upstreams
    first.script(default="400")  # refused: not retried, the fallback answers
    second.script(default="ok")
    body = {"model": "remote-a", "query": QUERY, "documents": DOCUMENTS}
    response = traced.post("/v1/rerank", json=body, headers={"Authorization": f"Bearer {team}"})
    assert response.status_code == 200, response.text
    assert response.headers["x-rerankd-served-by"] == "remote-b"
    root, children = trace_of(spans)
    attributes = dict(root.attributes or {})
    assert (attributes["rerankd.model"], attributes["rerankd.served_by"]) == ("remote-a", "remote-b")

    failed, answered = under(root, children, "rerankd.attempt")
    assert dict(failed.attributes or {}) == {
        "rerankd.model": "remote-a",
        "rerankd.attempt": 1,
        "error.type": "upstream_error",
        "rerankd.status": 502,
    }
    assert failed.status.status_code == StatusCode.ERROR
    assert dict(answered.attributes or {}) == {"rerankd.model": "remote-b", "rerankd.attempt": 2}
    assert answered.status.status_code == StatusCode.UNSET
    for attempt, upstream, status in ((failed, first, 400), (answered, second, 200)):
        assert [span.name for span in under(attempt, children)] == ["rerankd.admission", "POST"]
        [admission] = under(attempt, children, "rerankd.admission")
        assert admission.attributes is not None and admission.attributes["rerankd.estimated"] is True
        [call] = under(attempt, children, "POST")
        sent = dict(call.attributes or {})
        assert call.kind == SpanKind.CLIENT
        assert sent["rerankd.upstream.provider"] == "cohere" and sent["http.response.status_code"] == status
        assert sent["url.full"] == upstream.url + "/v2/rerank" and sent["server.address"] == "127.0.0.1"
        assert (call.status.status_code == StatusCode.ERROR) == (status >= 400)
        # The upstream was sent the trace: its spans would be children of this call's.
        [received] = upstream.received
        assert call.context is not None
        _, trace_id, parent_id, _ = received.headers["traceparent"].split("-")
        assert (trace_id, parent_id) == (f"{call.context.trace_id:032x}", f"{call.context.span_id:016x}")
    assert not under(root, children, "rerankd.forward")


def test_a_402_fails_at_admission_before_any_forward_pass(
    traced: TestClient, spans: InMemorySpanExporter
) -> None:
    _, plaintext = key_store.create_key(store_of(traced).engine, "spent", budget_nanos=0)
    response = traced.post(
        "/v1/rerank",
        json={"model": "tiny", "query": QUERY, "documents": DOCUMENTS},
        headers={"Authorization": f"Bearer {plaintext}"},
    )
    assert response.status_code == 402, response.text
    root, children = trace_of(spans)
    attributes = dict(root.attributes or {})
    assert attributes["http.response.status_code"] == 402 and attributes["rerankd.key"] == plaintext[:11]
    assert root.status.status_code == StatusCode.UNSET  # a server span fails on 5xx only
    [attempt] = under(root, children, "rerankd.attempt")
    assert [span.name for span in under(attempt, children)] == ["rerankd.tokenize", "rerankd.admission"]
    [admission] = under(attempt, children, "rerankd.admission")
    assert admission.status.status_code == StatusCode.ERROR
    assert admission.attributes is not None
    assert (admission.attributes["error.type"], admission.attributes["rerankd.status"]) == (
        "budget_exhausted",
        402,
    )
    [settlement] = under(root, children, "rerankd.settlement")
    assert settlement.attributes is not None and settlement.attributes["rerankd.status"] == 402
    finished = spans.get_finished_spans()
    assert not [span for span in finished if span.name in ("rerankd.queue", "rerankd.forward")]
    assert plaintext not in texts_of(finished)  # the key's prefix names it, never the key


def test_tracing_off_makes_and_sends_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    assert not tracing.on()
    upstream = upstreams[1].script(default="ok")
    config = {
        "log_format": "json",
        "models": [
            {"name": "bm25", "kind": "bm25"},
            {"name": "remote", "kind": "upstream", "provider": "cohere", "base_url": upstream.url},
        ],
    }
    app = create_app(load_settings(write_config(tmp_path, config)))
    assert not any(middleware.cls is Traced for middleware in app.user_middleware)
    with TestClient(app) as client, caplog.at_level(logging.INFO, logger="rerankd.access"):
        for model in ("bm25", "remote"):
            body = {"model": model, "query": QUERY, "documents": DOCUMENTS}
            response = client.post("/v1/rerank", json=body, headers={"traceparent": TRACEPARENT})
            assert response.status_code == 200, response.text
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "rerankd.access"]
    assert len(lines) == 2 and not any("trace_id" in line for line in lines)
    [received] = upstream.received
    assert "traceparent" not in {name.lower() for name in received.headers}
