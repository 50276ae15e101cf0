"""OpenTelemetry tracing: on when the ``otel`` extra is installed and the standard ``OTEL_*`` variables ask
for traces, off otherwise.

``configure()`` reads the environment once, at ``rerankd serve``'s start: ``OTEL_TRACES_EXPORTER`` names
the exporters (``otlp``, ``console``, or any installed exporter's entry point; ``none`` is off), and an
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` alone means ``otlp``. Everything
else — the endpoint, headers, protocol, sampler, ``OTEL_SERVICE_NAME``, resource attributes — is the SDK's
and the exporter's own reading of the same variables. ``OTEL_SDK_DISABLED=true`` keeps it off.

This module is the only one that imports ``opentelemetry``, and only once tracing is on: off, every function
here is one check of a module variable, and rerankd runs without the extra installed. The tracer provider is
rerankd's own, not OpenTelemetry's global one (tests install one with an in-memory exporter, :func:`use`).

What spans carry: names and numbers rerankd chose or counted, configured model names, never a key, a query,
a document or an error's message (which may quote them) — a failure is its code (``error.type``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Literal

__all__ = [
    "Attribute",
    "Parent",
    "Span",
    "bounded",
    "configure",
    "here",
    "note",
    "on",
    "outgoing",
    "record",
    "request",
    "span",
    "trace_id",
    "use",
]

log = logging.getLogger(__name__)

Attribute = str | bool | int | float
# Where a span goes in the trace, for a span made on another thread (an OpenTelemetry Context; opaque here).
Parent = object
Kind = Literal["internal", "server", "client"]

_tracer: Any = None  # an OpenTelemetry Tracer while tracing is on
_provider: Any = None

# The longest text a client chose that goes into a span (a path, a model name that is not configured).
MAX_CLIENT_TEXT = 128


def on() -> bool:
    return _tracer is not None


def use(provider: Any) -> None:
    """Trace into ``provider`` (an OpenTelemetry SDK TracerProvider), or stop tracing with None."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("rerankd") if provider is not None else None


def _exporter_names() -> list[str]:
    """The exporters the environment asks for: none unless it asks."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    listed = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if listed:
        names = [name.strip().lower() for name in listed.split(",") if name.strip()]
        return [name for name in names if name != "none"]
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return ["otlp"] if endpoint else []


# `otlp` by protocol: the entry points the OTLP exporter packages register.
_OTLP = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}


def _exporter(name: str) -> Any:
    from importlib.metadata import entry_points

    entry = name
    if name == "otlp":
        protocol = (
            os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        if protocol not in _OTLP:
            raise ValueError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} is not supported: use http/protobuf (the otel "
                "extra's) or grpc (with opentelemetry-exporter-otlp-proto-grpc installed)"
            )
        entry = _OTLP[protocol]
    found = list(entry_points(group="opentelemetry_traces_exporter", name=entry))
    if not found:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER names {name!r}, and no trace exporter {entry!r} is installed "
            "(`pip install 'rerankd[otel]'` has otlp over http/protobuf, and console)"
        )
    return found[0].load()()


def _resource(version: str) -> Any:
    from opentelemetry.sdk.resources import Resource

    found = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and the SDK's defaults
    named = not str(found.attributes.get("service.name", "")).startswith("unknown_service")
    ours = Resource(
        {"service.version": version} if named else {"service.name": "rerankd", "service.version": version}
    )
    return ours.merge(found) if named else found.merge(ours)


def configure(version: str) -> str | None:
    """Start tracing as the ``OTEL_*`` variables say; what it exports to (for the start-up log), or None
    when they do not ask for traces or tracing is on already. ValueError for an exporter or protocol that
    is not there."""
    names = _exporter_names()
    if not names or _tracer is not None:
        return None
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_* asks for traces (%s) but OpenTelemetry is not installed: tracing stays off; "
            "pip install 'rerankd[otel]' to trace",
            ", ".join(names),
        )
        return None
    provider = TracerProvider(resource=_resource(version))  # the sampler from OTEL_TRACES_SAMPLER
    for name in names:
        # Spans leave in batches on the SDK's thread; the provider flushes them at exit.
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    use(provider)
    return ", ".join(names)


class Span:
    """An open span, to add what is learnt while it runs; does nothing when tracing is off."""

    __slots__ = ("_span",)

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def set(self, name: str, value: Attribute | None) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(name, value)

    def rename(self, name: str) -> None:
        if self._span is not None:
            self._span.update_name(name)

    def fail(self, error: BaseException | str) -> None:
        if self._span is not None:
            _fail(self._span, error)


_NOWHERE = Span()


def _fail(span: Any, error: BaseException | str) -> None:
    """Mark a span failed by the error's code (never its message: it may quote a client's text)."""
    from opentelemetry.trace import Status, StatusCode

    if isinstance(error, str):
        kind = error
    elif isinstance(error, asyncio.CancelledError):
        kind = "cancelled"  # the client went away
    else:
        code = getattr(error, "code", None)
        kind = code if isinstance(code, str) else type(error).__qualname__
        status = getattr(error, "status", None)
        if isinstance(status, int):
            span.set_attribute("rerankd.status", status)
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))


class _Off:
    """What :func:`span` gives when tracing is off: nothing made, nothing recorded."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return _NOWHERE

    def __exit__(self, *exc: object) -> None:
        return None


_OFF = _Off()


class _Opened:
    """A span, current while the ``with`` block runs (its tasks and awaits see it as their parent); an
    exception leaving the block marks it failed."""

    __slots__ = ("_attributes", "_kind", "_name", "_parent", "_span", "_token")

    def __init__(
        self, name: str, attributes: Mapping[str, Attribute] | None, kind: Kind, parent: Any
    ) -> None:
        self._name, self._attributes, self._kind, self._parent = name, attributes, kind, parent
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Span:
        from opentelemetry import context, trace

        kind = {
            "internal": trace.SpanKind.INTERNAL,
            "server": trace.SpanKind.SERVER,
            "client": trace.SpanKind.CLIENT,
        }
        self._span = _tracer.start_span(
            self._name,
            context=self._parent,
            kind=kind[self._kind],
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token = context.attach(trace.set_span_in_context(self._span, self._parent))
        return Span(self._span)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        from opentelemetry import context

        if error is not None:
            _fail(self._span, error)
        context.detach(self._token)
        self._span.end()


def span(
    name: str, attributes: Mapping[str, Attribute] | None = None, *, kind: Kind = "internal"
) -> _Opened | _Off:
    """``with span("rerankd.admission", {...}) as s:`` — a child of the current span."""
    if _tracer is None:
        return _OFF
    return _Opened(name, attributes, kind, None)


def request(method: str, path: str, headers: Iterable[tuple[bytes, bytes]]) -> _Opened | _Off:
    """The span of one HTTP request (``{method}``, renamed with its route once known), a child of the
    caller's trace when its W3C ``traceparent`` header names one."""
    if _tracer is None:
        return _OFF
    from opentelemetry import propagate

    fields = {field.encode("latin-1") for field in propagate.get_global_textmap().fields}
    carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers if name in fields}
    attributes: dict[str, Attribute] = {"http.request.method": method, "url.path": bounded(path)}
    return _Opened(method, attributes, "server", propagate.extract(carrier))


def note(attributes: Mapping[str, Attribute | None]) -> None:
    """Add what is known (None: not known) to the current span: the request's, where the service notes
    the call."""
    if _tracer is None:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    for name, value in attributes.items():
        if value is not None:
            current.set_attribute(name, value)


def here() -> Parent | None:
    """The current span's place, to record a span as its child from another thread; None when off."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def record(
    name: str,
    began: float,
    ended: float,
    *,
    parent: Parent | None = None,
    attributes: Mapping[str, Attribute] | None = None,
    error: BaseException | str | None = None,
) -> None:
    """A span that already happened, from ``began`` to ``ended`` (``time.perf_counter()``), under ``parent``
    (from :func:`here`, on any thread) or the current span."""
    if _tracer is None:
        return
    # perf_counter readings as the nanoseconds since the epoch that spans are timed in: one offset for
    # both ends, so that the span lasts exactly what was measured.
    offset = time.time_ns() - time.perf_counter_ns()
    made = _tracer.start_span(
        name, context=parent, attributes=attributes, start_time=round(began * 1e9) + offset
    )
    if error is not None:
        _fail(made, error)
    made.end(end_time=round(ended * 1e9) + offset)


def trace_id() -> str | None:
    """The current trace's id (32 hex digits, as log lines and trace viewers show it); None when off."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    found = trace.get_current_span().get_span_context()
    return f"{found.trace_id:032x}" if found.is_valid else None


def outgoing() -> dict[str, str]:
    """Headers that carry the current trace to a service rerankd calls (W3C ``traceparent``); none when
    off."""
    if _tracer is None:
        return {}
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def bounded(text: str, limit: int = MAX_CLIENT_TEXT) -> str:
    """A client's text cut to ``limit`` characters: no span attribute grows with what a client sends."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
