"""``Reranker``: rerankd as a Python library, on the same service, pool and scheduler as the server.

A :class:`Reranker` owns what one ``create_app`` owns minus HTTP and the gateway: a
:class:`~rerankd.serving.runtime.Runtime` (model pool and service, built the one way), so a call from
Python gets the same batching (documents of concurrent calls packed into shared forward passes),
retries, fallbacks and scores as a call over HTTP. The scorers bind their futures to one event loop, so
the pool lives on a private loop in a daemon thread; :meth:`Reranker.rerank` blocks on it and
:meth:`Reranker.arerank` awaits it from any other loop. Closing (or leaving the ``with`` block) stops
the models' worker threads and the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import ValidationError

from rerankd.config import ConfigError, Settings, load_settings
from rerankd.errors import InvalidRequest, settings_problems
from rerankd.serving.runtime import Runtime
from rerankd.types import Attempt, RankedDocument, RerankRequest, ScoreOptions, Usage

__all__ = ["Document", "Ranking", "Reranker"]

T = TypeVar("T")

# A document as the HTTP API takes it: its text, or an object with a ``text`` field.
Document = str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Ranking:
    """The answer to one rerank call: results best first, and the tokens scored."""

    model: str  # the model that answered: the one asked for, or a fallback
    results: tuple[RankedDocument, ...]  # index (in the documents given), relevance_score, document
    usage: Usage
    attempts: tuple[Attempt, ...] = ()


def _text(document: Document, position: int) -> str:
    if isinstance(document, str):
        return document
    if isinstance(document, Mapping) and isinstance(document.get("text"), str):
        return str(document["text"])
    raise InvalidRequest(
        f"document {position} is a {type(document).__name__}; give a string or a mapping with a `text` string"
    )


class Reranker:
    """Rerank documents in this process with the models of a config.

    >>> with Reranker.from_model("bm25") as reranker:
    ...     ranking = reranker.rerank("capital of France", ["Paris is...", "Berlin is..."], top_n=1)
    """

    def __init__(self, settings: Settings, *, model: str | None = None) -> None:
        if not settings.models:
            raise ConfigError("no models configured; give at least one entry under `models:`")
        self.settings = settings
        runtime = Runtime.build(settings, metered=False, tracebacks=False)
        self.metrics = runtime.metrics
        self._pool = runtime.pool
        self._service = runtime.service
        self.model = self._pool.entry(model or settings.default_model or settings.models[0].name).spec.name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rerankd-reranker", daemon=True)
        self._thread.start()
        self._closed = False

    @classmethod
    def from_config(
        cls, path: str | Path | None = None, *, model: str | None = None, **settings: Any
    ) -> Reranker:
        """The models of a YAML config file (None: the built-in config); ``settings`` override its
        server settings (``max_batch_tokens=...``), as CLI flags would."""
        return cls(load_settings(path, **settings), model=model)

    @classmethod
    def from_model(
        cls, kind: str, source: str | None = None, *, name: str | None = None, **options: Any
    ) -> Reranker:
        """One model, given by its settings as in a ``models:`` entry (``dtype``, ``max_length``...).

        Options that are server settings (``max_batch_tokens``, ``max_documents``...) go to the server's
        settings; the rest to the model's."""
        server = {key: options.pop(key) for key in list(options) if key in Settings.model_fields}
        entry: dict[str, Any] = {"name": name or kind, "kind": kind, **options}
        if source is not None:
            entry["source"] = source
        try:
            settings = Settings(**{"models": [entry], **server})
        except ValidationError as exc:
            raise ConfigError(f"invalid settings: {settings_problems(exc)}") from None
        return cls(settings)

    # -- calls -------------------------------------------------------------------------------

    def request(
        self,
        query: str,
        documents: Sequence[Document],
        *,
        model: str | None = None,
        top_n: int | None = None,
        return_documents: bool = True,
        instruction: str | None = None,
        raw_scores: bool = False,
        retries: int = 0,
    ) -> RerankRequest:
        """The internal request of a call (validated by the service when it runs)."""
        if isinstance(documents, str):
            raise InvalidRequest("`documents` is a string; give a list of documents")
        return RerankRequest(
            model=model or self.model,
            query=query,
            documents=tuple(_text(document, i) for i, document in enumerate(documents)),
            top_n=top_n or None,  # 0 means all, as in the HTTP API
            return_documents=return_documents,
            raw_scores=raw_scores,
            retries=retries,
            options=ScoreOptions(instruction=instruction),
        )

    async def _rerank(self, request: RerankRequest) -> Ranking:
        response = await self._service.rerank(request)
        return Ranking(response.model, response.results, response.usage, response.attempts)

    def rerank(
        self,
        query: str,
        documents: Sequence[Document],
        *,
        model: str | None = None,
        top_n: int | None = None,
        return_documents: bool = True,
        instruction: str | None = None,
        raw_scores: bool = False,
        retries: int = 0,
    ) -> Ranking:
        """Rank ``documents`` by relevance to ``query``, best first (``top_n`` None or 0: all).

        Raises the errors of ``rerankd.errors`` (InvalidRequest, ModelNotFound, ModelUnavailable...)."""
        request = self.request(
            query,
            documents,
            model=model,
            top_n=top_n,
            return_documents=return_documents,
            instruction=instruction,
            raw_scores=raw_scores,
            retries=retries,
        )
        return self._wait(self._submit(self._rerank(request)))

    async def arerank(
        self,
        query: str,
        documents: Sequence[Document],
        *,
        model: str | None = None,
        top_n: int | None = None,
        return_documents: bool = True,
        instruction: str | None = None,
        raw_scores: bool = False,
        retries: int = 0,
    ) -> Ranking:
        """:meth:`rerank` for async code: concurrent calls share forward passes, as on the server."""
        request = self.request(
            query,
            documents,
            model=model,
            top_n=top_n,
            return_documents=return_documents,
            instruction=instruction,
            raw_scores=raw_scores,
            retries=retries,
        )
        return await self.arerank_request(request)

    async def arerank_request(self, request: RerankRequest) -> Ranking:
        """An internal request (see :meth:`request`), awaited from the caller's loop."""
        return await asyncio.wrap_future(self._submit(self._rerank(request)))

    def load(self, *models: str) -> None:
        """Load models now rather than on the first call (default: this reranker's model)."""
        for name in models or (self.model,):
            self._wait(self._submit(self._pool.scorer(name)))

    # -- life cycle --------------------------------------------------------------------------

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        if self._closed:
            coroutine.close()
            raise RuntimeError("this Reranker is closed; create a new one")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _wait(self, future: Future[T]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a Reranker cannot be called from its own callbacks; await arerank instead")
        return future.result()

    def close(self) -> None:
        """Stop the models' worker threads and the loop; idempotent."""
        if self._closed:
            return
        asyncio.run_coroutine_threadsafe(self._pool.close(), self._loop).result()
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> Reranker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Reranker:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)
