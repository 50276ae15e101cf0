"""Closed-loop HTTP load and its statistics: the cell machinery of the server benchmarks.

:func:`drive` runs ``concurrency`` clients against ``/v1/rerank`` for ``duration`` seconds, each sending
a request, waiting for the answer and sending the next, then gives requests in flight ``drain`` more
seconds and cancels ("cuts") the rest; every request becomes a :class:`Sample`. :func:`summarize` turns
the samples into a :class:`Cell`: throughput, nearest-rank latency percentiles in which a cut request's
elapsed time is a lower bound (flagged), errors, 429s and cuts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from rerankd_support import cranfield
from rerankd_support.bench.naive_server import count_usage
from rerankd_support.harness import json_or_empty

__all__ = ["Cell", "Payload", "Sample", "build_payloads", "drive", "percentile", "summarize"]

TRANSPORT_ERROR_PAUSE_S = 0.2
MAX_RETRY_AFTER_S = 1.0  # a 429's Retry-After is honoured up to this, so a client never idles a whole cell


@dataclass(frozen=True)
class Payload:
    body: bytes
    pairs: int
    tokens: int  # counted with the model's tokenizer, used when a response carries no usage


@dataclass
class Sample:
    start: float
    end: float | None = None
    status: int = 0  # HTTP status; -1: transport error (connection refused, reset, timeout)
    pairs: int = 0
    tokens: int = 0
    queue_ms: float | None = None
    inference_ms: float | None = None
    payload: int = -1  # index of the payload sent, so callers can join per-payload statistics


def build_payloads(
    model: str, model_dir: Path, n_docs: int, data: cranfield.Cranfield, args: argparse.Namespace
) -> list[Payload]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    bodies = cranfield.make_requests(n_docs, len(data.qrels), args.seed, data=data, model=model)
    payloads = []
    for body in bodies:
        usage = count_usage(tokenizer, body["query"], body["documents"], args.max_length)
        encoded = json.dumps(body).encode()
        payloads.append(Payload(encoded, len(body["documents"]), usage["total_tokens"]))
    return payloads


async def _client(
    client: httpx.AsyncClient,
    url: str,
    payloads: list[Payload],
    turn: Iterator[int],
    stop_at: float,
    samples: list[Sample],
) -> None:
    while time.perf_counter() < stop_at:
        index = next(turn) % len(payloads)
        payload = payloads[index]
        sample = Sample(start=time.perf_counter(), pairs=payload.pairs, payload=index)
        # Recorded before the await, so a request the window cuts off is still seen.
        samples.append(sample)
        try:
            response = await client.post(
                url, content=payload.body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError:
            sample.end, sample.status = time.perf_counter(), -1
            await asyncio.sleep(TRANSPORT_ERROR_PAUSE_S)  # a dead server must not turn this into a busy loop
            continue
        sample.end, sample.status = time.perf_counter(), response.status_code
        if response.status_code == 200:
            usage = json_or_empty(response).get("usage") or {}
            sample.tokens = int(usage.get("total_tokens") or payload.tokens)
            sample.queue_ms = _header_ms(response, "x-queue-time")
            sample.inference_ms = _header_ms(response, "x-inference-time")
        elif response.status_code == 429:
            await asyncio.sleep(
                min(_retry_after(response), MAX_RETRY_AFTER_S, max(0.0, stop_at - time.perf_counter()))
            )


def _header_ms(response: httpx.Response, name: str) -> float | None:
    with contextlib.suppress(TypeError, ValueError):
        return float(response.headers.get(name))
    return None


def _retry_after(response: httpx.Response) -> float:
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, float(response.headers.get("retry-after")))
    return MAX_RETRY_AFTER_S


async def drive(
    url: str, payloads: list[Payload], concurrency: int, duration: float, drain: float
) -> tuple[list[Sample], float, float]:
    """Closed-loop load for ``duration`` s, then up to ``drain`` s for stragglers; stragglers left are cut.

    Returns the samples, the start, and the end of the cell: the last answer, or the drain deadline
    when requests were cut (in perf_counter seconds).
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # No client timeout: the drain deadline cancels whatever is still in flight.
    async with httpx.AsyncClient(limits=limits, timeout=None) as client:
        samples: list[Sample] = []
        turn = itertools.count()
        start = time.perf_counter()
        stop_sending, deadline = start + duration, start + duration + drain
        endpoint = f"{url}/v1/rerank"
        tasks = [
            asyncio.create_task(_client(client, endpoint, payloads, turn, stop_sending, samples))
            for _ in range(concurrency)
        ]
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()))
        # Cancelling closes the connections, which tells a server that the request was abandoned.
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ends = [sample.end for sample in samples if sample.end is not None]
    finish = deadline if pending else max(ends, default=time.perf_counter())
    return samples, start, finish


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    model: str
    server: str
    docs: int
    concurrency: int
    duration_s: float
    drain_s: float
    elapsed_s: float = 0.0
    requests: int = 0
    pairs_per_s: float = 0.0
    tokens_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    p50_lower_bound: bool = False
    p99_lower_bound: bool = False
    errors: int = 0
    rejected_429: int = 0
    cut: int = 0
    mean_queue_ms: float | None = None
    mean_inference_ms: float | None = None
    restarts_after: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def summarize(cell: Cell, samples: list[Sample], start: float, finish: float) -> Cell:
    ok = [s for s in samples if s.end is not None and s.status == 200]
    cut = [s for s in samples if s.end is None]
    cell.elapsed_s = finish - start
    cell.requests = len(ok)
    cell.pairs_per_s = sum(s.pairs for s in ok) / cell.elapsed_s
    cell.tokens_per_s = sum(s.tokens for s in ok) / cell.elapsed_s
    cell.errors = sum(s.end is not None and s.status not in (200, 429) for s in samples)
    cell.rejected_429 = sum(s.status == 429 for s in samples)
    cell.cut = len(cut)
    cell.latencies_ms = [((s.end or 0.0) - s.start) * 1000 for s in ok]
    censored = [(finish - s.start) * 1000 for s in cut]
    cell.p50_ms, cell.p50_lower_bound = percentile(cell.latencies_ms, censored, 0.50)
    cell.p99_ms, cell.p99_lower_bound = percentile(cell.latencies_ms, censored, 0.99)
    cell.mean_queue_ms = _mean([s.queue_ms for s in ok if s.queue_ms is not None])
    cell.mean_inference_ms = _mean([s.inference_ms for s in ok if s.inference_ms is not None])
    return cell


def percentile(exact: list[float], censored: list[float], q: float) -> tuple[float | None, bool]:
    """Nearest-rank percentile over finished latencies and cut requests' elapsed times.

    A cut request's true latency is at least its elapsed time. If one of those lower bounds is at or
    below the result, the true percentile may be higher, and the flag says the value is a lower bound.
    """
    values = sorted(exact + censored)
    if not values:
        return None, False
    rank = max(0, min(len(values) - 1, math.ceil(q * len(values)) - 1))
    value = values[rank]
    return value, any(bound <= value for bound in censored)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
