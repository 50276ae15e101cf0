"""``rerankd.tracing``: on only when the OTEL_* variables ask, off without the SDK (saying how to get it),
spans made on another thread in the right trace, failures named by their code and never their message; and a
real ``rerankd serve`` exporting its spans over OTLP/HTTP to a collector."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from rerankd_support.harness import Server

from rerankd import tracing
from rerankd.errors import PaymentRequired

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No OTEL_* variable but those a test sets; tracing off again afterwards."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    tracing.use(None)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    yield exporter
    tracing.use(None)
    provider.shutdown()


@pytest.mark.parametrize(
    ("variables", "exporters"),
    [
        ({}, None),
        ({"OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, "otlp, console"),
    ],
)
def test_on_only_when_the_environment_asks(
    environment: pytest.MonkeyPatch, variables: dict[str, str], exporters: str | None
) -> None:
    for name, value in variables.items():
        environment.setenv(name, value)
    assert tracing.configure("0.0.test") == exporters
    assert tracing.on() == (exporters is not None)


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "no trace exporter 'zipkin' is installed"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "'otlp_proto_grpc'"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "is not supported"),
    ],
)
def test_an_exporter_that_is_not_there_is_an_error(
    environment: pytest.MonkeyPatch, variables: dict[str, str], said: str
) -> None:
    for name, value in variables.items():
        environment.setenv(name, value)
    with pytest.raises(ValueError, match=said):
        tracing.configure("0.0.test")
    assert not tracing.on()


def test_without_the_sdk_tracing_stays_off_and_says_how_to_install_it(
    environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    environment.setenv("OTEL_TRACES_EXPORTER", "console")
    environment.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # `import` raises ImportError
    with caplog.at_level(logging.WARNING, logger="rerankd.tracing"):
        assert tracing.configure("0.0.test") is None
    assert not tracing.on()
    assert "pip install 'rerankd[otel]'" in caplog.text


def test_off_everything_is_a_no_op() -> None:
    assert not tracing.on()
    with tracing.span("rerankd.attempt", {"rerankd.attempt": 1}) as span:
        span.set("rerankd.model", "m")
        span.fail("x")
    tracing.record("rerankd.forward", time.perf_counter(), time.perf_counter(), parent=tracing.here())
    tracing.note({"rerankd.model": "m"})
    assert (tracing.here(), tracing.trace_id(), tracing.outgoing()) == (None, None, {})


def test_a_span_recorded_on_another_thread_joins_its_request(spans: InMemorySpanExporter) -> None:
    with tracing.span("request", kind="server"):
        parent = tracing.here()
        began = time.perf_counter()
        ended = began + 0.25
        worker = threading.Thread(
            target=tracing.record,
            args=("rerankd.forward", began, ended),
            kwargs={"parent": parent, "attributes": {"rerankd.batch.rows": 3}},
        )
        worker.start()
        worker.join()
        trace_id = tracing.trace_id()
    forward, request = spans.get_finished_spans()
    assert forward.parent is not None and request.context is not None and forward.context is not None
    assert forward.parent.span_id == request.context.span_id
    assert f"{forward.context.trace_id:032x}" == trace_id
    assert forward.start_time is not None and forward.end_time is not None
    assert abs(forward.end_time - forward.start_time - 250_000_000) < 10  # the times given (float ns)
    assert abs(forward.start_time - time.time_ns()) < 60 * 10**9  # on the epoch's clock


def test_a_failure_is_its_code_never_its_message(spans: InMemorySpanExporter) -> None:
    secret = "key rk-abcdefghijklmnopqrstuvwxyz asked about 'the private query'"
    with pytest.raises(PaymentRequired), tracing.span("rerankd.admission"):
        raise PaymentRequired(secret)
    [span] = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR and span.status.description == "budget_exhausted"
    assert dict(span.attributes or {}) == {"error.type": "budget_exhausted", "rerankd.status": 402}
    assert not span.events  # no exception event: its message would quote the client


def test_client_text_is_bounded() -> None:
    assert tracing.bounded("short") == "short"
    long = tracing.bounded("m" * 10_000)
    assert len(long) == tracing.MAX_CLIENT_TEXT and long.endswith("…")


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector: keeps what it is sent."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def exported_spans(received: list[tuple[str, bytes]]) -> Iterator[tuple[dict[str, Any], Any]]:
    """Every span a collector was sent, with its resource's attributes."""
    for path, body in received:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    yield resource, span


def test_serve_exports_its_spans_over_otlp(start_server: Callable[..., Server], tmp_path: Path) -> None:
    received: list[tuple[str, bytes]] = []
    collector = ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Collector", (_Collector,), {"received": received})
    )
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # spans leave within 0.1 s, not the default 5 s
        "NO_PROXY": "127.0.0.1",
    }
    try:
        config = {"log_format": "json", "models": [{"name": "bm25", "kind": "bm25"}]}
        server = start_server(config, env=env)
        trace_id = "0af7651916cd43dd8448eb211c80319c"
        body = {"model": "bm25", "query": "boundary layer", "documents": ["the boundary layer", "a wing"]}
        headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
        answer = httpx.post(server.url + "/v1/rerank", json=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30
        names: set[str] = set()
        while time.monotonic() < deadline and not {"POST /v1/rerank", "rerankd.settlement"} <= names:
            time.sleep(0.1)
            names = {span.name for _, span in exported_spans(received) if span.trace_id.hex() == trace_id}
        assert {"POST /v1/rerank", "rerankd.attempt", "rerankd.forward", "rerankd.settlement"} <= names
        resource, _ = next(exported_spans(received))
        assert resource["service.name"] == "rerankd"
        access = [json.loads(line) for line in server.log().splitlines() if '"rerankd.access"' in line]
        [line] = [line for line in access if line["path"] == "/v1/rerank"]
        assert line["trace_id"] == trace_id
    finally:
        collector.shutdown()
        collector.server_close()
