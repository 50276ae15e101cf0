"""Prometheus metrics, in a registry per app (no process-global state), served at ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rerankd.types import BatchStats, Timings

__all__ = ["Metrics"]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rerankd_requests", "Rerank requests by model and HTTP status.", ["model", "status"], registry=r
        )
        self.attempts = Counter(
            "rerankd_attempts",
            "Scoring attempts by model and outcome (ok or an error code).",
            ["model", "outcome"],
            registry=r,
        )
        self.documents = Counter("rerankd_documents", "Documents scored.", ["model"], registry=r)
        self.tokens = Counter("rerankd_tokens", "Tokens scored (usage).", ["model"], registry=r)
        self.cost = Counter(
            "rerankd_cost",
            "What calls were charged, in the operator's currency, by the model that answered.",
            ["model"],
            registry=r,
        )
        self.queue = Gauge(
            "rerankd_queue_inputs",
            "Inputs admitted and not yet computed, per local model (at the scrape).",
            ["model"],
            registry=r,
        )
        self.latency = Histogram(
            "rerankd_request_seconds",
            "Time in the service per request.",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.stage = Histogram(
            "rerankd_stage_seconds",
            "Per-request time by stage (tokenization, queue, inference).",
            ["model", "stage"],
            buckets=_LATENCY,
            registry=r,
        )
        self.batch_rows = Histogram(
            "rerankd_batch_rows", "Inputs per forward pass.", ["model"], buckets=_ROWS, registry=r
        )
        self.batch_requests = Histogram(
            "rerankd_batch_requests",
            "Distinct requests per forward pass.",
            ["model"],
            buckets=_ROWS,
            registry=r,
        )
        self.forward_tokens = Counter(
            "rerankd_forward_tokens", "Tokens computed by forward passes.", ["model", "kind"], registry=r
        )
        self.forward_seconds = Histogram(
            "rerankd_forward_seconds",
            "Duration of one forward pass.",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.models_ready = Gauge("rerankd_models_ready", "Models loaded and ready.", registry=r)
        self.cache_hits = Counter(
            "rerankd_cache_hits",
            "Inputs served from the model's output cache (cache_mb).",
            ["model"],
            registry=r,
        )
        self.cache_misses = Counter(
            "rerankd_cache_misses",
            "Inputs looked up in the output cache and computed.",
            ["model"],
            registry=r,
        )
        self.cache_bytes = Gauge(
            "rerankd_cache_bytes", "Memory held by the model's output cache.", ["model"], registry=r
        )

    def batch_observer(self, model: str) -> Callable[[BatchStats], None]:
        rows = self.batch_rows.labels(model)
        requests = self.batch_requests.labels(model)
        real = self.forward_tokens.labels(model, "real")
        padded = self.forward_tokens.labels(model, "padded")
        seconds = self.forward_seconds.labels(model)

        def observe(stats: BatchStats) -> None:
            rows.observe(stats.rows)
            requests.observe(stats.requests)
            real.inc(stats.real_tokens)
            padded.inc(stats.padded_tokens)
            seconds.observe(stats.seconds)

        return observe

    def cache_observer(self, model: str) -> Callable[[int, int, int], None]:
        """Counts of a model's output cache: ``observe(hits, misses, bytes_now)``."""
        hits = self.cache_hits.labels(model)
        misses = self.cache_misses.labels(model)
        size = self.cache_bytes.labels(model)

        def observe(new_hits: int, new_misses: int, held_bytes: int) -> None:
            hits.inc(new_hits)
            misses.inc(new_misses)
            size.set(held_bytes)

        return observe

    def observe_request(self, model: str, status: int, seconds: float, timings: Timings | None) -> None:
        self.requests.labels(model, str(status)).inc()
        self.latency.labels(model).observe(seconds)
        if timings is not None:
            self.stage.labels(model, "tokenization").observe(timings.tokenization)
            self.stage.labels(model, "queue").observe(timings.queue)
            self.stage.labels(model, "inference").observe(timings.inference)

    def render(self) -> bytes:
        return generate_latest(self.registry)
