"""The baseline rerankd is measured against: the rerank server a team writes in an afternoon.

A FastAPI app that loads ``sentence_transformers.CrossEncoder`` once and, for each ``POST /v1/rerank``,
scores the request's (query, document) pairs with one ``model.predict`` call inside a plain (sync)
handler, so FastAPI runs concurrent requests on its thread pool, each with its own forward pass. No
batching across requests, no queue, no admission control. The response has the same shape as rerankd's.

The only addition is ``in_flight`` in ``GET /health``: the benchmark uses it to wait until leftover
work has finished before it measures the next cell. It costs nothing on the request path.

Run: ``python -m rerankd_support.bench.naive_server --model-dir DIR --port 8001`` (binds 127.0.0.1), or
``python benchmarks/naive_server.py`` with the same options. :func:`count_usage` is also how the
benchmarks count a request's tokens when a response carries no usage.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

__all__ = ["count_usage", "create_app", "main"]


class RerankBody(BaseModel):
    model: str = ""
    query: str
    documents: list[str]
    top_n: int | None = None
    return_documents: bool = False


class InFlight:
    """How many requests are being scored right now (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __enter__(self) -> None:
        with self._lock:
            self.count += 1

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self.count -= 1


def count_usage(tokenizer: Any, query: str, documents: Sequence[str], max_length: int) -> dict[str, int]:
    """Tokens as rerankd reports them: the query once, plus each document as it fits beside the query."""
    query_tokens = len(tokenizer(query, add_special_tokens=False)["input_ids"])
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    encoded = tokenizer([query] * len(documents), list(documents), truncation=True, max_length=max_length)
    documents_tokens = sum(max(0, len(ids) - query_tokens - specials) for ids in encoded["input_ids"])
    return {
        "total_tokens": query_tokens + documents_tokens,
        "query_tokens": query_tokens,
        "documents_tokens": documents_tokens,
    }


def create_app(model_dir: str, max_length: int = 512, device: str = "cpu") -> FastAPI:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(model_dir, device=device, max_length=max_length)
    in_flight = InFlight()
    app = FastAPI(title="naive rerank server")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "in_flight": in_flight.count}

    @app.post("/v1/rerank")
    def rerank(body: RerankBody) -> dict[str, Any]:
        with in_flight:
            scores = np.asarray(model.predict([(body.query, doc) for doc in body.documents]), dtype=float)
            usage = count_usage(model.tokenizer, body.query, body.documents, max_length)
        order = np.argsort(-scores, kind="stable")
        if body.top_n:
            order = order[: body.top_n]
        results = []
        for index in order.tolist():
            result: dict[str, Any] = {"index": index, "relevance_score": float(scores[index])}
            if body.return_documents:
                result["document"] = body.documents[index]
            results.append(result)
        return {"model": body.model, "results": results, "usage": usage, "metadata": {}}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Naive CrossEncoder rerank server (benchmark baseline).")
    parser.add_argument("--model-dir", required=True, help="folder of a sentence-transformers CrossEncoder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda (CrossEncoder's default precision, fp32)"
    )
    args = parser.parse_args(argv)
    app = create_app(args.model_dir, args.max_length, args.device)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
