"""End-to-end HTTP benchmark: rerankd against a naive CrossEncoder server, on Cranfield rerank requests.

One command generates the models, starts both servers on 127.0.0.1, drives closed-loop load and writes
the tables::

    python benchmarks/bench_server.py --out benchmarks/results --duration 15

For each model x docs-per-request x concurrency x server ("cell"), ``concurrency`` clients each send a
request, wait for the answer and send the next, for ``--duration`` seconds; then no new requests are
sent and the ones in flight get ``--drain`` more seconds to finish. Requests still running after that
are cancelled ("cut"): their elapsed time is a lower bound on their latency, so they stay in the latency
percentiles, and a percentile they may have pulled down is printed as ``>=X``. Throughput is what
finished divided by the time until the last answer (or until the drain ran out). Each server answers
``--warmup-requests`` unmeasured requests after it starts, and between cells the benchmark waits until
the server has no leftover work (or restarts it), so one cell's backlog never slows the next.

Models are random-weight copies of real architectures (``rerankd.synthetic.make_cross_encoder``):
the scores are meaningless, the cost of computing them is real. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cranfield
import httpx
import yaml
from naive_server import count_usage

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE = REPO / ".cache" / "bench-models"
SERVERS = ("rerankd", "naive")
ARCHS = ("minilm-l6", "bert-base")
# Servers never reach for the network: the models are local folders.
SERVER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
HOST = "127.0.0.1"
START_TIMEOUT_S = 300.0
TRANSPORT_ERROR_PAUSE_S = 0.2
MAX_RETRY_AFTER_S = 1.0  # a 429's Retry-After is honoured up to this, so a client never idles a whole cell


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _csv(kind: type) -> Any:
    def parse(text: str) -> list[Any]:
        return [kind(part.strip()) for part in text.split(",") if part.strip()]

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark rerankd against a naive CrossEncoder server over HTTP on 127.0.0.1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="where results go")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of sending per cell")
    parser.add_argument(
        "--drain",
        type=float,
        help="seconds in flight requests get to finish after that [default: duration/2]",
    )
    parser.add_argument(
        "--warmup-requests", type=int, default=1, help="unmeasured requests after each server (re)start"
    )
    parser.add_argument(
        "--bert-base-duration",
        type=float,
        default=30.0,
        help="--duration for bert-base cells (never less than --duration): one 20-document request takes "
        "BERT-base 10-30s on a 2-core CPU, so a short window would finish almost nothing",
    )
    parser.add_argument(
        "--bert-base-max-concurrency",
        type=int,
        default=8,
        help="skip bert-base cells above this concurrency (0: no cap); on a small CPU they only queue",
    )
    parser.add_argument("--models", type=_csv(str), default=list(ARCHS), help=f"subset of {','.join(ARCHS)}")
    parser.add_argument("--servers", type=_csv(str), default=list(SERVERS), help="rerankd,naive or one")
    parser.add_argument("--concurrency", type=_csv(int), default=[1, 8, 32], help="clients per cell")
    parser.add_argument("--docs", type=_csv(int), default=[20], help="documents per request, e.g. 20,50,100")
    add_server_arguments(parser)
    cranfield.add_argument(parser)
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the servers and models under test, shared with bench_perf.py."""
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="generated models (reused)")
    parser.add_argument("--seed", type=int, default=0, help="model weights and request sampling")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per (query, document) pair")
    parser.add_argument(
        "--max-batch-tokens", type=int, help="rerankd's max_batch_tokens [default: rerankd's, 4096 on CPU]"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu, or cuda / cuda:N: every server runs its model there (rerankd in bf16 with dtype auto, the "
        "naive server in CrossEncoder's fp32; bench_perf.py: Infinity in its auto half precision, and the "
        "peak is the GPU's) [default: cpu]",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for leftover work before a restart",
    )
    parser.add_argument(
        "--rerankd",
        default=f"{sys.executable} -m rerankd",
        help="command that runs rerankd (the benchmark appends `serve --config ...`)",
    )


def check_device(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.device != "cpu":
        import torch

        if not args.device.startswith("cuda") or not torch.cuda.is_available():
            parser.error(f"--device {args.device}: use cpu, or cuda[:N] where torch sees a CUDA device")


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_device(parser, args)
    if unknown := sorted(set(args.models) - set(ARCHS)):
        parser.error(f"unknown --models {unknown}; choose from {list(ARCHS)}")
    if unknown := sorted(set(args.servers) - set(SERVERS)):
        parser.error(f"unknown --servers {unknown}; choose from {list(SERVERS)}")
    if args.duration <= 0 or (args.drain is not None and args.drain < 0) or args.warmup_requests < 0:
        parser.error("--duration must be > 0, --drain and --warmup-requests >= 0")
    if not args.concurrency or min(args.concurrency) < 1 or not args.docs or min(args.docs) < 1:
        parser.error("--concurrency and --docs need positive integers")


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


def ensure_model(arch: str, cache: Path, seed: int) -> Path:
    """The generated cross-encoder folder for ``arch``, built once and reused from ``cache``."""
    target = cache / f"{arch}-seed{seed}"
    if (target / ".complete").is_file():
        return target
    from rerankd.synthetic import bundled_minilm_path, make_cross_encoder

    print(f"generating {arch} cross-encoder in {target} ...", flush=True)
    # Build beside the target and rename, so an interrupted run never leaves a half-written model.
    staging = cache / f".{arch}-seed{seed}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    make_cross_encoder(staging, arch=arch, tokenizer_from=bundled_minilm_path(), seed=seed)  # type: ignore[arg-type]
    (staging / ".complete").write_text("ok\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


# --------------------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server subprocess on 127.0.0.1; ``start`` and ``restart`` pick a fresh free port."""

    kind: str  # "rerankd" | "naive" | a peer of bench_perf.py, e.g. "infinity-torch"
    model: str
    command: list[str]  # without the port, which is appended as ``--port P``
    log_path: Path
    warmup: list[bytes] = field(default_factory=list)  # request bodies sent, unmeasured, after each start
    env: dict[str, str] = field(default_factory=dict)  # added to the environment (after SERVER_ENV)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Server:
        self.port = free_port()
        log = self.log_path.open("ab")
        log.write(f"\n=== start {dt.datetime.now().isoformat()} port {self.port}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [*self.command, "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **SERVER_ENV, **self.env},
            # Its own process group, so stopping it also stops any workers it forked, and Ctrl-C in the
            # benchmark's terminal does not reach it before the benchmark's own clean-up does.
            start_new_session=True,
        )
        log.close()
        self._wait_healthy()
        self._warm_up()
        return self

    def _warm_up(self) -> None:
        # The first forward passes pay for lazy initialisation and memory growth; keep that out of cells.
        for body in self.warmup:
            httpx.post(
                f"{self.url}/v1/rerank",
                content=body,
                headers={"content-type": "application/json"},
                timeout=START_TIMEOUT_S,
            )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited at start-up; see {self.log_path}")
            if self._healthy():
                return
            time.sleep(0.5)
        raise TimeoutError(
            f"{self.kind} server not healthy after {START_TIMEOUT_S:.0f}s; see {self.log_path}"
        )

    def _healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        body = _json_or_empty(response)
        # rerankd answers /health while models load; it is ready once every configured model is.
        return body.get("models_ready", 0) >= body.get("models_configured", 0)

    def stop(self, grace: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            # A graceful shutdown waits for running handlers, which can take minutes mid-backlog.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def restart(self) -> None:
        # Restarts happen because the server is stuck with abandoned work: no point waiting for it.
        self.stop(grace=1.0)
        self.restarts += 1
        self.start()


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def rerankd_server(args: argparse.Namespace, model: str, model_dir: Path, workdir: Path) -> Server:
    config: dict[str, Any] = {
        "api_keys": [],
        "models": [
            {
                "name": model,
                "kind": "cross-encoder",
                "source": str(model_dir),
                "max_length": args.max_length,
                "device": args.device,
                "preload": True,
            }
        ],
    }
    if args.max_batch_tokens:
        config["max_batch_tokens"] = args.max_batch_tokens
    config_path = workdir / f"rerankd-{model}.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    command = [*args.rerankd.split(), "serve", "--config", str(config_path), "--host", HOST]
    command += ["--log-level", "warning"]
    return Server("rerankd", model, command, workdir / f"rerankd-{model}.log")


def naive_server(args: argparse.Namespace, model: str, model_dir: Path, workdir: Path) -> Server:
    command = [sys.executable, str(BENCH_DIR / "naive_server.py"), "--model-dir", str(model_dir)]
    command += ["--host", HOST, "--max-length", str(args.max_length)]
    command += ["--device", args.device]
    return Server("naive", model, command, workdir / f"naive-{model}.log")


STARTERS = {"rerankd": rerankd_server, "naive": naive_server}


def settle(server: Server, timeout: float) -> None:
    """Wait until ``server`` has finished the work cancelled clients left behind; restart it if it won't."""
    deadline = time.monotonic() + timeout
    if server.kind == "naive":
        # Its handlers cannot be cancelled, so they run to the end; /health counts them.
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if _json_or_empty(httpx.get(f"{server.url}/health", timeout=2.0)).get("in_flight") == 0:
                    return
            time.sleep(0.25)
    else:
        # rerankd drops the work of disconnected clients; a one-pair probe queues behind anything left.
        probe = {"model": server.model, "query": "probe", "documents": ["probe"], "return_documents": False}
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(f"{server.url}/v1/rerank", json=probe, timeout=timeout).status_code == 200:
                return
    print(f"  {server.kind} still busy after {timeout:.0f}s: restarting it", flush=True)
    server.restart()


# --------------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------------


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
            usage = _json_or_empty(response).get("usage") or {}
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


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _ms(value: float | None, lower_bound: bool) -> str:
    if value is None:
        return "-"
    return f"{'>=' if lower_bound else ''}{value:,.0f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


# (header, right-aligned?) for each column.
RESULT_COLUMNS = [
    ("model", False),
    ("docs", True),
    ("conc", True),
    ("server", False),
    ("requests", True),
    ("time s", True),
    ("pairs/s", True),
    ("tokens/s", True),
    ("p50 ms", True),
    ("p99 ms", True),
    ("errors", True),
    ("429", True),
    ("cut", True),
]
RATIO_COLUMNS = [
    ("model", False),
    ("docs", True),
    ("conc", True),
    ("pairs/s rerankd/naive (higher: better)", True),
    ("p99 rerankd/naive (lower: better)", True),
]


def _markdown_table(columns: list[tuple[str, bool]], rows: list[list[str]]) -> str:
    header = [name for name, _ in columns]
    align = ["---:" if right else "---" for _, right in columns]
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, align, *rows])


def results_table(cells: list[Cell]) -> str:
    rows = [
        [
            *(c.model, str(c.docs), str(c.concurrency), c.server, str(c.requests), f"{c.elapsed_s:.0f}"),
            *(f"{c.pairs_per_s:,.1f}", f"{c.tokens_per_s:,.0f}"),
            *(_ms(c.p50_ms, c.p50_lower_bound), _ms(c.p99_ms, c.p99_lower_bound)),
            *(str(c.errors), str(c.rejected_429), str(c.cut)),
        ]
        for c in cells
    ]
    return _markdown_table(RESULT_COLUMNS, rows)


def ratio_table(cells: list[Cell]) -> str:
    by_key = {(c.model, c.docs, c.concurrency, c.server): c for c in cells}
    rows = []
    for (model, docs, conc, server), ours in by_key.items():
        theirs = by_key.get((model, docs, conc, "naive"))
        if server != "rerankd" or theirs is None:
            continue
        p99 = _ratio(ours.p99_ms, theirs.p99_ms)
        if p99 != "-" and (ours.p99_lower_bound or theirs.p99_lower_bound):
            p99 = f"~{p99}"  # at least one side is a lower bound
        rows.append([model, str(docs), str(conc), _ratio(ours.pairs_per_s, theirs.pairs_per_s), p99])
    return _markdown_table(RATIO_COLUMNS, rows) if rows else ""


def environment() -> dict[str, Any]:
    import importlib.metadata as metadata

    versions = {}
    for package in ("rerankd", "torch", "transformers", "sentence-transformers", "tokenizers", "httpx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def _loads(values: list[float] | None) -> str:
    return "/".join(f"{value:.1f}" for value in values) if values else "?"


def render_markdown(cells: list[Cell], meta: dict[str, Any]) -> str:
    env, args = meta["environment"], meta["args"]
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    bert_base = ""
    if "bert-base" in args["models"]:
        bert_base = f" (bert-base: {max(args['duration'], args['bert_base_duration']):g}s)"
    parts = [
        "# rerankd vs naive CrossEncoder server",
        "",
        f"{env['date']}; {env['cpus']} CPUs, {env['platform']}; {versions}.",
        f"Cranfield requests (title + abstract); closed loop: {args['duration']:g}s of sending per cell"
        f"{bert_base}, then stragglers get the drain time; max_length {args['max_length']}; "
        "random-weight models of the real architectures.",
        f"Whole run {meta.get('wall_s', 0) / 60:.1f} min; load average (1, 5, 15 min) before "
        f"{_loads(env['load_average'])}, after {_loads(meta.get('load_average_after'))}.",
        "",
        results_table(cells),
    ]
    ratios = ratio_table(cells)
    if ratios:
        parts += ["", ratios]
    parts += [
        "",
        "`>=`: a lower bound (requests still running when the window closed may be slower); "
        "`~`: a ratio involving one. Columns are explained in benchmarks/README.md.",
    ]
    return "\n".join(parts) + "\n"


def write_results(out: Path, cells: list[Cell], meta: dict[str, Any]) -> str:
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(cells, meta)
    (out / "results.md").write_text(markdown, encoding="utf-8")
    raw = {"meta": meta, "cells": [asdict(cell) for cell in cells]}
    (out / "results.json").write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    return markdown


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def cell_duration(args: argparse.Namespace, model: str) -> float:
    return max(args.duration, args.bert_base_duration) if model == "bert-base" else args.duration


def cell_drain(args: argparse.Namespace, model: str) -> float:
    return args.drain if args.drain is not None else cell_duration(args, model) / 2


def cell_grid(args: argparse.Namespace, model: str) -> list[tuple[int, int]]:
    """The (docs, concurrency) pairs measured for ``model``."""
    cap = args.bert_base_max_concurrency if model == "bert-base" else 0
    return [(d, c) for d, c in itertools.product(args.docs, args.concurrency) if not cap or c <= cap]


def run_cell(
    server: Server, payloads: list[Payload], docs: int, concurrency: int, args: argparse.Namespace
) -> Cell:
    duration, drain = cell_duration(args, server.model), cell_drain(args, server.model)
    cell = Cell(server.model, server.kind, docs, concurrency, duration, drain)
    samples, start, finish = asyncio.run(drive(server.url, payloads, concurrency, duration, drain))
    summarize(cell, samples, start, finish)
    p50, p99 = _ms(cell.p50_ms, cell.p50_lower_bound), _ms(cell.p99_ms, cell.p99_lower_bound)
    print(
        f"  {cell.model} docs={docs} conc={concurrency} {cell.server}: {cell.requests} req in "
        f"{cell.elapsed_s:.0f}s, {cell.pairs_per_s:.1f} pairs/s, p50 {p50} ms, p99 {p99} ms, "
        f"errors {cell.errors}, 429 {cell.rejected_429}, cut {cell.cut}",
        flush=True,
    )
    before = server.restarts
    settle(server, args.settle_timeout)
    cell.restarts_after = server.restarts - before
    return cell


def run_model(
    args: argparse.Namespace, model: str, data: cranfield.Cranfield, workdir: Path, cells: list[Cell]
) -> None:
    grid = cell_grid(args, model)
    if len(grid) < len(args.docs) * len(args.concurrency):
        cap = args.bert_base_max_concurrency
        print(f"{model}: concurrency above {cap} skipped (see --bert-base-max-concurrency)")
    if not grid:
        return
    model_dir = ensure_model(model, args.cache, args.seed)
    payloads = {docs: build_payloads(model, model_dir, docs, data, args) for docs in args.docs}
    warmup = [payload.body for payload in payloads[args.docs[0]][: args.warmup_requests]]
    servers: dict[str, Server] = {}
    try:
        for kind in args.servers:
            print(f"starting {kind} with {model} ...", flush=True)
            # Registered before it starts, so the clean-up below also stops one that fails to come up.
            servers[kind] = STARTERS[kind](args, model, model_dir, workdir)
            servers[kind].warmup = warmup
            servers[kind].start()
        # Servers alternate within each (docs, concurrency) so slow drift on the machine hits both alike.
        for docs, concurrency in grid:
            for server in servers.values():
                cells.append(run_cell(server, payloads[docs], docs, concurrency, args))
    finally:
        for server in servers.values():
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = cranfield.load(args.cranfield)
    grids = {model: cell_grid(args, model) for model in args.models}
    n_cells = sum(len(grid) for grid in grids.values()) * len(args.servers)
    at_most = sum(
        len(grid) * len(args.servers) * (cell_duration(args, model) + cell_drain(args, model))
        for model, grid in grids.items()
    )
    print(
        f"{n_cells} cells, at most {at_most / 60:.1f} min of load, plus model generation, server start-up "
        "and restarts",
        flush=True,
    )
    workdir = args.out / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    cells: list[Cell] = []
    meta = {
        "environment": environment(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    began = time.monotonic()
    try:
        for model in args.models:
            run_model(args, model, data, workdir, cells)
    finally:
        # Whatever was measured before an error or Ctrl-C is still written out.
        meta["wall_s"] = round(time.monotonic() - began, 1)
        meta["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        if cells:
            markdown = write_results(args.out, cells, meta)
            print()
            print(markdown)
            print(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
