"""The access record of the HTTP request being served: one line per request in the JSON log.

The HTTP middleware opens a record for each request (:func:`recording`); the service fills in what only it
knows — who called (the key's label, never the key), the dialect, the model asked and the one that
answered, documents, tokens, cost, queue and compute seconds — into :func:`current`, and the middleware logs
it once the answer is sent. The record is a mutable object in a context variable, so the tasks a request
starts (disconnect watching, hybrid parts) fill in the same one. A leaf: it imports nothing of rerankd.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AccessRecord", "current", "recording"]


@dataclass
class AccessRecord:
    request_id: str
    method: str
    path: str  # without the query string, which may carry a key
    trace_id: str | None = None  # the OpenTelemetry trace of the request, when tracing is on
    status: int | None = None
    seconds: float | None = None
    key: str | None = None
    dialect: str | None = None
    model: str | None = None
    served_by: str | None = None
    documents: int | None = None
    tokens: int | None = None
    cost: str | None = None
    queue_seconds: float | None = None
    compute_seconds: float | None = None

    def fields(self) -> dict[str, Any]:
        """The fields that are known, for the log line."""
        return {name: value for name, value in asdict(self).items() if value is not None}


_CURRENT: ContextVar[AccessRecord | None] = ContextVar("rerankd_access", default=None)


def current() -> AccessRecord | None:
    """The record of the request this code serves, or None outside of an HTTP request."""
    return _CURRENT.get()


@contextmanager
def recording(record: AccessRecord) -> Iterator[AccessRecord]:
    token = _CURRENT.set(record)
    try:
        yield record
    finally:
        _CURRENT.reset(token)
