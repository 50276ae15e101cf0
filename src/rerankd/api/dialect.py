"""What a dialect is, and the one endpoint every dialect's rerank routes share.

A dialect module declares a :class:`Dialect`: its request model (which converts itself to the internal
:class:`~rerankd.types.RerankRequest`), its response model and ``render`` (which builds that model from
the internal response), its paths and its error shape. :func:`endpoint_for` turns the record into a
FastAPI endpoint; the response model documented in ``/openapi.json`` is the one the endpoint sends.

What the dialects share is here: :meth:`DialectRequest.internal` builds the internal request from the
fields every API has under some name, and :func:`ranked` renders the results in a dialect's own model.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from rerankd.api.bounds import MAX_MODEL_CHARS, check_model, check_no_nul
from rerankd.api.common import (
    caller,
    cancel_on_disconnect,
    default_model,
    log_unknown_fields,
    request_id,
    require_key,
    timing_headers,
)
from rerankd.errors import ERROR_SHAPES, ErrorShape, MalformedBody
from rerankd.serving.service import Delivery, RerankService
from rerankd.types import CallContext, RankedDocument, RerankRequest, RerankResponse, ScoreOptions

__all__ = [
    "SPAN_DESCRIPTION",
    "Dialect",
    "DialectRequest",
    "Endpoint",
    "ResultSpan",
    "TextDocument",
    "all_if_zero",
    "answer",
    "endpoint_for",
    "error_responses",
    "ranked",
    "route_options",
    "span_of",
    "text_of",
]

Endpoint = Callable[..., Awaitable[Any]]


class DialectRequest(BaseModel):
    """Fields every dialect accepts beyond its own: unknown fields are kept (and logged), not refused."""

    model_config = ConfigDict(extra="allow")

    instruction: str | None = Field(
        default=None,
        description="The task, for LLM rerankers such as Qwen3-Reranker; other models ignore it.",
    )
    raw_scores: bool = Field(default=False, description="Skip the sigmoid of one-label cross-encoders.")
    return_spans: bool = Field(
        default=False,
        description="Also return, per result, `span`: where in the document its best-scoring window lies "
        "and that window's score.",
    )

    def to_internal(self, default_model: str) -> RerankRequest:
        """The internal request; ``default_model`` answers requests that name no model."""
        raise NotImplementedError

    def internal(
        self,
        model: str,
        query: str | TextDocument,
        documents: Iterable[str | TextDocument],
        top: int | None,
        return_documents: bool,
        *,
        retries: int = 0,
        options: ScoreOptions | None = None,
    ) -> RerankRequest:
        """The internal request from the fields every dialect has under some name (texts or ``{text}``
        objects; a top count of 0 meaning all) and from this class's own fields, with ``options`` the
        dialect's own scoring options."""
        return RerankRequest(
            model=model,
            query=text_of(query),
            documents=tuple(text_of(document) for document in documents),
            top_n=all_if_zero(top),
            return_documents=return_documents,
            raw_scores=self.raw_scores,
            retries=retries,
            options=replace(
                options or ScoreOptions(), instruction=self.instruction, return_spans=self.return_spans
            ),
        )


class TextDocument(BaseModel):
    """A document given as an object: ``text`` is ranked, other fields are kept and echoed back."""

    model_config = ConfigDict(extra="allow")
    text: str


SPAN_DESCRIPTION = "With `return_spans`: where the document matched best (its best-scoring window)."


class ResultSpan(BaseModel):
    """Where a document matched best (with ``return_spans``): its best-scoring window."""

    start: int = Field(
        description="Offset of the window's first character in the document as sent, counted in Unicode "
        "code points (Python string indices; JavaScript strings count UTF-16 units)."
    )
    end: int = Field(description="Offset just past the window's last character (same units).")
    score: float = Field(
        description="The window's own score, on the scale of relevance_score (for a hybrid model, on the "
        "scale of the component model that has windows)."
    )


def span_of(item: RankedDocument) -> ResultSpan | None:
    """A result's span for the wire, None when not asked for (left out of the answer)."""
    span = item.span
    return None if span is None else ResultSpan(start=span.start, end=span.end, score=span.score)


def text_of(document: str | TextDocument) -> str:
    return document if isinstance(document, str) else document.text


def all_if_zero(top: int | None) -> int | None:
    """Clients send 0 or null for "all of them"; a negative count is left for the service to refuse."""
    return None if top == 0 else top


def _as_sent(text: str, index: int) -> Any:
    return text


Result = TypeVar("Result", bound=BaseModel)


def ranked(
    response: RerankResponse,
    result: type[Result],
    document: Callable[[str, int], Any] = _as_sent,
    *,
    score_field: str = "relevance_score",
    document_field: str = "document",
) -> list[Result]:
    """The results, best first, in a dialect's result model: the index, the score, the document when the
    caller asked for it back (as ``document`` makes it from the text and the index) and the span when
    asked. The model's field order, not this one, orders the JSON."""
    return [
        result.model_validate(
            {
                "index": item.index,
                score_field: item.relevance_score,
                document_field: None if item.document is None else document(item.document, item.index),
                "span": span_of(item),
            }
        )
        for item in response.results
    ]


Body = TypeVar("Body", bound=DialectRequest)


@dataclass(frozen=True, slots=True)
class Dialect(Generic[Body]):
    """One rerank API as clients speak it."""

    name: str  # in logs, and the value of the `v1_dialect` setting
    request: type[Body]
    response: type[BaseModel]
    render: Callable[[RerankResponse, Body], BaseModel]
    paths: tuple[str, ...]  # the prefixed paths that always speak this dialect
    summary: str
    tag: str
    errors: ErrorShape = "openai"
    # Headers beyond the timing ones (e.g. TEI's usage headers).
    headers: Callable[[RerankResponse, Body], dict[str, str]] | None = None


# Documented on every rerank route of every dialect, in the dialect's error shape.
_ERRORS: dict[int, str] = {
    400: "The body is not JSON, a string holds a NUL character, or `model` is over "
    f"{MAX_MODEL_CHARS} characters or holds a control character",
    401: "Missing or wrong API key",
    404: "Unknown model (the message lists the available ones)",
    413: "Too many documents, or the body is too large",
    415: "Content-Type is not JSON",
    422: "Invalid input (the message names the field)",
    429: "The model is overloaded; Retry-After says when to come back",
    503: "The model cannot be loaded (the message says how to fix it), or scoring failed",
}


def error_responses(*shapes: ErrorShape) -> dict[int | str, dict[str, Any]]:
    """The documented errors of a route whose errors come in one of these shapes."""
    models = [ERROR_SHAPES[shape][0] for shape in dict.fromkeys(shapes)]
    if len(models) == 1:
        return {status: {"model": models[0], "description": text} for status, text in _ERRORS.items()}
    # Routes that answer in several dialects (bare /rerank, sniffed /v1/rerank); every shape is
    # documented by the dialects' own routes, so the components hold it.
    schema = {"oneOf": [{"$ref": f"#/components/schemas/{model.__name__}"} for model in models]}
    content = {"application/json": {"schema": schema}}
    return {status: {"description": text, "content": content} for status, text in _ERRORS.items()}


def route_options(dialect: Dialect[Any], summary: str | None = None) -> dict[str, Any]:
    """``add_api_route`` options of a rerank route: auth, documented response and errors, tag."""
    return {
        "response_model": dialect.response,
        "dependencies": [Depends(require_key)],
        "summary": summary or dialect.summary,
        "responses": error_responses(dialect.errors),
        "tags": [dialect.tag],
    }


async def answer(dialect: Dialect[Body], body: Body, request: Request) -> Response:
    """Run one rerank call: the internal request, cancellation on disconnect, the rendered answer."""
    began = time.perf_counter()
    request.state.dialect = dialect
    # Bounded strings first: nothing below (logs, metrics, admission, the ledger) sees an unbounded one.
    check_no_nul(body.model_dump())
    internal = body.to_internal(default_model(request))
    check_model(internal.model)
    log_unknown_fields(request, dialect.name, body)
    service: RerankService = request.app.state.service
    context = CallContext(caller(request), request_id(request), request.url.path, dialect.name)
    _check_encodable(body.model_dump(), "")  # echoed fields too: an answer that cannot be sent is a 400 now

    def render(response: RerankResponse) -> bytes:
        # Optional fields left out (None) are omitted; values inside echoed documents are sent as given.
        content = dialect.render(response, body).model_dump(mode="json", exclude_none=True)
        return bytes(JSONResponse(content).body)

    # The body is rendered before the call is charged: only an answer that can be sent is paid for.
    delivery: Delivery = await cancel_on_disconnect(request, service.serve(internal, context, render))
    response = delivery.response
    headers = timing_headers(response.timings, began)
    headers["x-rerankd-served-by"] = response.model
    headers.update(response.headers)
    if dialect.headers is not None:
        headers.update(dialect.headers(response, body))
    return Response(delivery.body, media_type="application/json", headers=headers)


def _check_encodable(value: Any, path: str) -> None:
    """Every string of the body is text UTF-8 can carry: a lone surrogate (JSON's "\\ud800") is a 400 naming
    its field, before the call is admitted."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedBody(
                f"`{path or 'body'}` holds a lone surrogate at character {exc.start}, which is not text: "
                "send valid Unicode (JSON escapes \\ud800-\\udfff only in pairs)"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_encodable(str(key), path or "body")
            _check_encodable(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_encodable(item, f"{path}[{index}]")


def endpoint_for(dialect: Dialect[Any]) -> Endpoint:
    """A FastAPI endpoint whose body is the dialect's request model."""

    async def endpoint(request: Request, body: Any) -> Response:
        return await answer(dialect, body, request)

    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=dialect.request),
        ]
    )
    endpoint.__name__ = "rerank_" + dialect.name.replace("-", "_")
    return endpoint
