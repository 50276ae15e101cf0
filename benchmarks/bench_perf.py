"""Performance report: rerankd against the naive server and Infinity, as a fraction of the machine's limit.

One command measures everything and writes ``results.md``, ``results.json`` and the plots into ``--out``::

    .venv/bin/python benchmarks/bench_perf.py --out benchmarks/results/perf

In one run it

1. measures this machine's matmul peak with torch, fp32 and bf16 (the limit the results are a
   fraction of);
2. generates the random-weight cross-encoders (``bench_server.ensure_model``), builds the Infinity
   environment if it is missing (``infinity-requirements.txt``, once) and exports the ONNX copy that
   Infinity's optimum engine needs (``infinity_onnx.py``);
3. starts rerankd, the naive FastAPI + CrossEncoder server and Infinity (torch and optimum engines) on
   127.0.0.1 and drives closed-loop HTTP load built from Cranfield at each documents-per-request x
   concurrency, alternating servers per cell (the cell machinery is ``bench_server.py``'s);
4. sweeps documents per request (10 -> 1000) and document length (64 -> 512 tokens) at concurrency 1
   (rerankd by default, ``--scaling-servers`` for more);
5. reports pairs/s, real and padded tokens/s, padding waste, p50/p99 latency, achieved GFLOP/s and its
   share of the measured fp32 peak, each server's peak RSS, and rerankd's ratios to each peer.

Everything is bounded in time (per-cell windows and a whole-run ``--budget-min``); servers are always
stopped, also on errors and Ctrl-C, and whatever was measured until then is still written.
See benchmarks/README.md for the columns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bench_server as bs
import cranfield
import httpx
import numpy as np
import yaml

REPO = bs.REPO
BENCH_DIR = bs.BENCH_DIR
SERVERS = ("rerankd", "naive", "infinity-torch", "infinity-optimum")
OURS = SERVERS[:1]
PEERS = SERVERS[1:]
SERVER_ALIASES = {"infinity": ("infinity-torch", "infinity-optimum")}
ARCHS = (*bs.ARCHS, "xlm-roberta-large")  # the last for GPUs (bge-reranker-v2-m3 class): --models
INFINITY_VENV = REPO / ".cache" / "bench-venvs" / "infinity"
INFINITY_REQUIREMENTS = BENCH_DIR / "infinity-requirements.txt"
INFINITY_HF_HOME = REPO / ".cache" / "bench-hf"  # Infinity writes its caches here, not in ~/.cache
TORCH_PIN = "torch==2.13.0"  # installed first: an unpinned torch pulls gigabytes of CUDA packages
VENV_BUILD_TIMEOUT_S = 1800.0
ONNX_EXPORT_TIMEOUT_S = 900.0
NAIVE_BATCH_SIZE = 32  # CrossEncoder.predict's default
INFINITY_BATCH_SIZE = 32  # Infinity's default --batch-size, passed explicitly
PEAK_SECONDS_PER_CASE = 1.5

DEFAULTS = {
    # option: (full run, --quick)
    "models": (list(bs.ARCHS), ["minilm-l6"]),
    "docs": ([20, 50, 100], [20]),
    "concurrency": ([1, 8, 32], [1, 8]),
    "duration": (20.0, 10.0),
    "bert_base_duration": (45.0, 20.0),
    "scaling_docs": ([10, 30, 100, 300, 1000], [10, 100]),
    "scaling_lengths": ([64, 128, 256, 512], [64, 256]),
    "scaling_duration": (5.0, 3.0),
}


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    def full(name: str) -> str:
        value = DEFAULTS[name][0]
        return ",".join(map(str, value)) if isinstance(value, list) else f"{value:g}"

    def quick(name: str) -> str:
        value = DEFAULTS[name][1]
        return ",".join(map(str, value)) if isinstance(value, list) else f"{value:g}"

    def default(name: str) -> str:
        return f"[default: {full(name)}; --quick: {quick(name)}]"

    parser = argparse.ArgumentParser(
        description="rerankd vs naive server vs Infinity over HTTP on 127.0.0.1, against the machine's "
        "matmul peak; writes results.md, results.json and plots.",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "perf", help="where results go")
    parser.add_argument("--quick", action="store_true", help="smoke run: small grid, short windows")
    parser.add_argument(
        "--servers",
        type=bs._csv(str),
        default=list(SERVERS),
        help=f"subset of {','.join(SERVERS)} ('infinity' = both engines) [default: all]",
    )
    parser.add_argument(
        "--models", type=bs._csv(str), help=f"subset of {','.join(ARCHS)} {default('models')}"
    )
    parser.add_argument("--docs", type=bs._csv(int), help=f"documents per request {default('docs')}")
    parser.add_argument("--concurrency", type=bs._csv(int), help=f"clients per cell {default('concurrency')}")
    parser.add_argument("--duration", type=float, help=f"seconds of sending per cell {default('duration')}")
    parser.add_argument(
        "--drain",
        type=float,
        help="seconds stragglers get after that [default: duration/2 x max(1, docs/20), so that a request "
        "sent at the end of the window can finish at concurrency 1]",
    )
    parser.add_argument(
        "--bert-base-duration",
        type=float,
        help=f"--duration of bert-base cells (a 20-doc request takes ~5 s) {default('bert_base_duration')}",
    )
    parser.add_argument(
        "--bert-base-max-concurrency",
        type=int,
        default=8,
        help="skip bert-base cells above this concurrency (0: no cap) [default: 8]",
    )
    parser.add_argument(
        "--bert-base-docs",
        type=bs._csv(int),
        default=[20],
        help="bert-base cells only at these --docs values (empty: all) [default: 20]",
    )
    parser.add_argument(
        "--scaling-model", default="minilm-l6", help="model of the scaling sweeps [default: minilm-l6]"
    )
    parser.add_argument(
        "--scaling-servers",
        type=bs._csv(str),
        default=["rerankd"],
        help="servers swept (empty string: no sweeps) [default: rerankd]",
    )
    parser.add_argument(
        "--scaling-docs", type=bs._csv(int), help=f"documents per request swept {default('scaling_docs')}"
    )
    parser.add_argument(
        "--scaling-lengths",
        type=bs._csv(int),
        help=f"document lengths (tokens) swept {default('scaling_lengths')}",
    )
    parser.add_argument(
        "--scaling-length-docs", type=int, default=20, help="documents per request of the length sweep [20]"
    )
    parser.add_argument(
        "--scaling-duration",
        type=float,
        help=f"seconds of sending per sweep point (one request at least) {default('scaling_duration')}",
    )
    parser.add_argument(
        "--scaling-drain",
        type=float,
        default=120.0,
        help="seconds a sweep point's last request may take beyond that [default: 120]",
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=60.0,
        help="cells not started after this many minutes of measuring are skipped [default: 60]",
    )
    parser.add_argument("--warmup-requests", type=int, default=1, help="unmeasured requests after each start")
    bs.add_server_arguments(parser)
    parser.add_argument("--infinity-venv", type=Path, default=INFINITY_VENV, help="Infinity's environment")
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="never build the Infinity environment; skip Infinity if absent",
    )
    cranfield.add_argument(parser)
    args = parser.parse_args(argv)
    for name, (full_value, quick_value) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick_value if args.quick else full_value)
    args.servers = _expand(args.servers)
    args.scaling_servers = _expand(args.scaling_servers)
    _check_args(parser, args)
    return args


def _expand(servers: list[str]) -> list[str]:
    expanded: list[str] = []
    for name in servers:
        for one in SERVER_ALIASES.get(name, (name,)):
            if one not in expanded:
                expanded.append(one)
    return expanded


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if unknown := sorted(set(args.models) - set(ARCHS)):
        parser.error(f"unknown --models {unknown}; choose from {list(ARCHS)}")
    bs.check_device(parser, args)
    if unknown := sorted(set(args.servers + args.scaling_servers) - set(SERVERS)):
        parser.error(f"unknown servers {unknown}; choose from {list(SERVERS)} or 'infinity'")
    if args.duration <= 0 or args.scaling_duration <= 0 or (args.drain is not None and args.drain < 0):
        parser.error("durations must be > 0 and --drain >= 0")
    numbers = args.docs + args.concurrency + args.scaling_docs + args.scaling_lengths
    if not args.docs or not args.concurrency or min(numbers, default=1) < 1:
        parser.error("--docs, --concurrency and the sweeps need positive integers")


# --------------------------------------------------------------------------------------------------
# The machine's limit: matmul peak
# --------------------------------------------------------------------------------------------------


def cpu_description() -> dict[str, Any]:
    flags: set[str] = set()
    name = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name" and not name:
                name = value.strip()
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"model": name or "unknown CPU", "flags": {flag: flag in flags for flag in wanted}}


def measure_peak(seconds: float = PEAK_SECONDS_PER_CASE, device: str = "cpu") -> dict[str, Any]:
    """Best GFLOP/s of a few torch matmuls per dtype (square matmul and a BERT-shaped linear layer).

    ``reference`` names the dtype rerankd computes in with ``dtype: auto`` on this device (bf16 on a GPU
    or a CPU with native bf16, else fp32): the results are a share of that peak."""
    import torch

    if device.startswith("cuda"):
        return _measure_cuda_peak(device, seconds)

    def best_gflops(run: Callable[[], Any], flops: float) -> float:
        run()  # first call: allocation, kernel selection
        best, spent, reps = math.inf, 0.0, 0
        while reps < 3 or (spent < seconds and reps < 50):
            began = time.perf_counter()
            run()
            took = time.perf_counter() - began
            best, spent, reps = min(best, took), spent + took, reps + 1
        return flops / best / 1e9

    torch.manual_seed(0)
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    result["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    # bf16 runs 10-100x slower on a CPU without native bf16, so its shapes are smaller.
    shapes = {torch.float32: (2048, 4096), torch.bfloat16: (512, 1024)}
    with torch.inference_mode():
        for dtype, (square, rows) in shapes.items():
            a, b = torch.randn(square, square, dtype=dtype), torch.randn(square, square, dtype=dtype)
            x, w = torch.randn(rows, 768, dtype=dtype), torch.randn(3072, 768, dtype=dtype)
            cases = {
                f"matmul {square}x{square}x{square}": best_gflops(
                    lambda a=a, b=b: torch.matmul(a, b), 2.0 * square**3
                ),
                f"linear {rows}x768 -> 3072": best_gflops(
                    lambda x=x, w=w: torch.nn.functional.linear(x, w), 2.0 * rows * 768 * 3072
                ),
            }
            key = "fp32" if dtype == torch.float32 else "bf16"
            result[key] = {"gflops": max(cases.values()), "cases": cases}
    flags = cpu_description()["flags"]
    result["reference"] = "bf16" if flags.get("avx512_bf16") or flags.get("amx_bf16") else "fp32"
    return result


def _measure_cuda_peak(device: str, seconds: float) -> dict[str, Any]:
    """The same on a GPU: large square matmuls per dtype, timed with CUDA events after warm-up."""
    import torch

    target = torch.device(device)
    result: dict[str, Any] = {"threads": None, "torch": torch.__version__, "device": device}
    result["cpu_capability"] = torch.cuda.get_device_name(target)
    size = 8192
    with torch.inference_mode():
        for key, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            a = torch.randn(size, size, dtype=dtype, device=target)
            b = torch.randn(size, size, dtype=dtype, device=target)
            torch.matmul(a, b)
            torch.cuda.synchronize(target)
            best, spent, reps = math.inf, 0.0, 0
            while reps < 5 or (spent < seconds and reps < 100):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                torch.matmul(a, b)
                end.record()
                torch.cuda.synchronize(target)
                took = start.elapsed_time(end) / 1000
                best, spent, reps = min(best, took), spent + took, reps + 1
            gflops = 2.0 * size**3 / best / 1e9
            result[key] = {"gflops": gflops, "cases": {f"matmul {size}x{size}x{size}": gflops}}
    result["reference"] = "bf16"
    return result


def reference_peak(peak: dict[str, Any]) -> tuple[str, float | None]:
    """The dtype whose peak results are a share of, and that peak in GFLOP/s."""
    reference = peak.get("reference", "fp32")
    return reference, peak.get(reference, {}).get("gflops")


# --------------------------------------------------------------------------------------------------
# FLOPs of the architecture
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arch:
    layers: int
    hidden: int
    intermediate: int

    @classmethod
    def from_folder(cls, model_dir: Path) -> Arch:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        return cls(config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"])

    @property
    def linear_flops_per_token(self) -> float:
        """Q, K, V and output projections (4 H x H) plus the feed-forward (2 H x I); a multiply-add is 2."""
        h, i = self.hidden, self.intermediate
        return 2.0 * self.layers * (4 * h * h + 2 * h * i)

    def pair_flops(self, length: int) -> float:
        """One sequence of ``length`` tokens: the linear layers, attention's L^2 part (Q K^T and the
        weighted sum of V, 2 L^2 H each per layer) and the pooler + one-logit classifier on [CLS]."""
        h = self.hidden
        attention = 4.0 * self.layers * length * length * h
        head = 2.0 * h * h + 2.0 * h
        return length * self.linear_flops_per_token + attention + head


# --------------------------------------------------------------------------------------------------
# Requests and what each one costs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayloadStats:
    forward_tokens: int  # sum of the (query, document) pair lengths: special tokens in, truncated, no padding
    flops: float  # useful FLOPs: Arch.pair_flops over those lengths
    naive_padded: int  # tokens CrossEncoder.predict computes for it, padding included


@dataclass
class Workload:
    payloads: list[bs.Payload]
    stats: list[PayloadStats]

    @property
    def mean_pair_tokens(self) -> float:
        pairs = sum(p.pairs for p in self.payloads)
        return sum(s.forward_tokens for s in self.stats) / max(1, pairs)


def naive_padded_tokens(query: str, documents: Sequence[str], lengths: Sequence[int]) -> int:
    """Padded tokens of ``CrossEncoder.predict``: it sorts pairs by character length (longest first) and
    pads each batch of 32 to its longest member (sentence-transformers 3-6)."""
    order = np.argsort([-(len(query) + len(doc)) for doc in documents])
    total = 0
    for start in range(0, len(order), NAIVE_BATCH_SIZE):
        batch = [lengths[i] for i in order[start : start + NAIVE_BATCH_SIZE]]
        total += len(batch) * max(batch)
    return total


def make_workload(bodies: list[dict[str, Any]], tokenizer: Any, arch: Arch, max_length: int) -> Workload:
    payloads, stats = [], []
    for body in bodies:
        query, documents = body["query"], body["documents"]
        encoded = tokenizer([query] * len(documents), documents, truncation=True, max_length=max_length)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        payloads.append(bs.Payload(json.dumps(body).encode(), len(documents), sum(lengths)))
        stats.append(
            PayloadStats(
                forward_tokens=sum(lengths),
                flops=sum(arch.pair_flops(length) for length in lengths),
                naive_padded=naive_padded_tokens(query, documents, lengths),
            )
        )
    return Workload(payloads, stats)


def cranfield_workload(
    model: str, n_docs: int, data: cranfield.Cranfield, tokenizer: Any, arch: Arch, args: argparse.Namespace
) -> Workload:
    # Enough distinct requests that a cell never repeats one back to back; fewer for huge ones.
    count = len(data.qrels) if n_docs <= 100 else 8
    bodies = cranfield.make_requests(n_docs, count, args.seed, data=data, model=model)
    return make_workload(bodies, tokenizer, arch, args.max_length)


def fixed_length_workload(
    model: str,
    doc_tokens: int,
    data: cranfield.Cranfield,
    tokenizer: Any,
    arch: Arch,
    args: argparse.Namespace,
    stream: list[int],
) -> Workload:
    """Requests of ``--scaling-length-docs`` documents of ``doc_tokens`` tokens each, cut from the
    Cranfield abstracts run together, with Cranfield queries."""
    rng = random.Random(args.seed + doc_tokens)
    queries = sorted(q for q in data.qrels if q in data.queries)
    bodies = []
    for request in range(8):
        documents = []
        for _ in range(args.scaling_length_docs):
            start = rng.randrange(0, len(stream) - doc_tokens)
            documents.append(tokenizer.decode(stream[start : start + doc_tokens], skip_special_tokens=True))
        query = data.queries[queries[(request * 37) % len(queries)]]
        bodies.append(
            {
                "model": model,
                "query": query,
                "documents": documents,
                "top_n": len(documents),
                "return_documents": False,
            }
        )
    return make_workload(bodies, tokenizer, arch, args.max_length)


def token_stream(data: cranfield.Cranfield, tokenizer: Any) -> list[int]:
    texts = [data.documents[doc] for doc in sorted(data.documents)]
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
        stream.extend(ids)
    return stream


# --------------------------------------------------------------------------------------------------
# Infinity: environment, ONNX copy, server
# --------------------------------------------------------------------------------------------------


@dataclass
class InfinityEnv:
    venv: Path
    python: Path | None = None
    version: str | None = None
    build_s: float | None = None  # this run's build time; None when an existing environment was reused
    error: str | None = None


def _requirements_digest() -> str:
    text = f"{TORCH_PIN}\n{INFINITY_REQUIREMENTS.read_text(encoding='utf-8')}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_infinity(venv: Path, build: bool, log_path: Path) -> InfinityEnv:
    """The Infinity environment, built (torch first, then the pinned requirements) when missing or stale."""
    env = InfinityEnv(venv)
    marker, python = venv / ".bench-complete", venv / "bin" / "python"
    digest = _requirements_digest()
    if not (marker.is_file() and marker.read_text(encoding="utf-8").strip() == digest):
        if not build:
            env.error = f"no Infinity environment in {venv} and --no-build given"
            return env
        print(f"building the Infinity environment in {venv} (once, a few minutes) ...", flush=True)
        began = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [*pip, TORCH_PIN],
            [*pip, "-r", str(INFINITY_REQUIREMENTS)],
        ]
        with log_path.open("ab") as log:
            for step in steps:
                log.write(f"\n=== {' '.join(step)}\n".encode())
                log.flush()
                try:
                    done = subprocess.run(
                        step, stdout=log, stderr=subprocess.STDOUT, timeout=VENV_BUILD_TIMEOUT_S
                    )
                except subprocess.TimeoutExpired:
                    env.error = f"building the Infinity environment timed out at: {' '.join(step[-2:])}"
                    return env
                if done.returncode != 0:
                    env.error = f"`{' '.join(step[-2:])}` failed (exit {done.returncode}); see {log_path}"
                    return env
        marker.write_text(digest + "\n", encoding="utf-8")
        env.build_s = round(time.monotonic() - began, 1)
        print(f"  built in {env.build_s:.0f}s", flush=True)
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('infinity_emb'))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        env.error = f"infinity_emb not importable in {venv}: {probe.stderr.strip()[-300:]}"
        return env
    env.python, env.version = python, probe.stdout.strip()
    return env


def ensure_onnx(env: InfinityEnv, model_dir: Path, log_path: Path) -> Path:
    """``<model>-onnx/``: the same weights and tokenizer as ONNX, for Infinity's optimum engine (reused).

    Infinity also writes its ORT-optimised ``model_optimized.onnx`` into this folder on first start.
    """
    target = model_dir.with_name(f"{model_dir.name}-onnx")
    if (target / "model.onnx").is_file():
        return target
    assert env.python is not None
    print(f"exporting {model_dir.name} to ONNX for Infinity's optimum engine ...", flush=True)
    command = [str(env.python), str(BENCH_DIR / "infinity_onnx.py"), str(model_dir), str(target)]
    with log_path.open("ab") as log:
        log.write(f"\n=== {' '.join(command)}\n".encode())
        log.flush()
        done = subprocess.run(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=ONNX_EXPORT_TIMEOUT_S,
            env={**os.environ, **bs.SERVER_ENV, "HF_HOME": str(INFINITY_HF_HOME)},
        )
    if done.returncode != 0 or not (target / "model.onnx").is_file():
        raise RuntimeError(f"ONNX export failed (exit {done.returncode}); see {log_path}")
    return target


def infinity_server(
    env: InfinityEnv, engine: str, model: str, model_dir: Path, workdir: Path, device: str = "cpu"
) -> bs.Server:
    assert env.python is not None
    command = [str(env.python.parent / "infinity_emb"), "v2", "--model-id", str(model_dir)]
    # fp32 on CPUs (what Infinity's engines run there), its automatic half precision on a GPU.
    dtype = "float32" if device == "cpu" else "auto"
    command += ["--served-model-name", model, "--engine", engine, "--device", device, "--dtype", dtype]
    command += ["--batch-size", str(INFINITY_BATCH_SIZE), "--no-vector-disk-cache", "--no-model-warmup"]
    # /v1 prefix: the rerank route becomes /v1/rerank like the others'; /health stays unprefixed.
    command += ["--url-prefix", "/v1", "--host", bs.HOST, "--log-level", "warning"]
    kind = f"infinity-{engine}"
    server = bs.Server(kind, model, command, workdir / f"{kind}-{model}.log")
    server.env = {
        "HF_HOME": str(INFINITY_HF_HOME),
        "DO_NOT_TRACK": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
    }
    return server


def settle_infinity(server: bs.Server, timeout: float) -> None:
    """Wait until Infinity's queue for the model is empty (it keeps computing abandoned requests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            stats = httpx.get(f"{server.url}/v1/models", timeout=2.0).json()["data"][0]["stats"]
            if stats["queue_absolute"] == 0 and stats["results_pending"] == 0:
                return
        time.sleep(0.25)
    print(f"  {server.kind} still busy after {timeout:.0f}s: restarting it", flush=True)
    server.restart()


# --------------------------------------------------------------------------------------------------
# rerankd and naive servers
# --------------------------------------------------------------------------------------------------


def rerankd_server(args: argparse.Namespace, model: str, model_dir: Path, workdir: Path) -> bs.Server:
    server = bs.rerankd_server(args, model, model_dir, workdir)
    config_path = workdir / f"rerankd-{model}.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    # A 1000-document request takes MiniLM-L6 about a minute here: past rerankd's default deadline.
    config["request_timeout"] = 600.0
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return server


def forward_tokens(server: bs.Server) -> dict[str, float] | None:
    """rerankd's ``rerankd_forward_tokens_total`` by kind (real, padded), summed over models."""
    try:
        text = httpx.get(f"{server.url}/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return None
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("rerankd_forward_tokens_total{"):
            continue
        labels, _, value = line.rpartition(" ")
        for kind in ("real", "padded"):
            if f'kind="{kind}"' in labels:
                totals[kind] = totals.get(kind, 0.0) + float(value)
    return totals


def tree_peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a process plus its descendants, in MiB, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text(encoding="utf-8")
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier.extend(children)
    total_kib, found = 0, False
    for member in tree:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{member}/status").read_text(encoding="utf-8").splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
                    found = True
    return total_kib / 1024 if found else None


# --------------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------------


@dataclass
class PerfCell(bs.Cell):
    phase: str = "grid"  # grid | docs-sweep | length-sweep
    doc_tokens: int | None = None  # length sweep: tokens per document
    mean_pair_tokens: float = 0.0
    real_tokens_per_s: float = 0.0
    padded_tokens_per_s: float | None = None  # None: not knowable for this server
    padding_waste: float | None = None  # share of computed tokens that were padding
    server_real_tokens_per_s: float | None = None  # rerankd: from its own counter, cut requests included
    gflops: float = 0.0
    peak_fraction: float | None = None
    peak_rss_mib: float | None = None


@dataclass
class Run:
    args: argparse.Namespace
    peak: dict[str, Any]
    deadline: float
    cells: list[PerfCell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: int = 0

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline


def measure_cell(
    run: Run,
    server: bs.Server,
    work: Workload,
    *,
    docs: int,
    concurrency: int,
    duration: float,
    drain: float,
    phase: str = "grid",
    doc_tokens: int | None = None,
) -> PerfCell | None:
    if run.out_of_time():
        run.skipped += 1
        return None
    cell = PerfCell(server.model, server.kind, docs, concurrency, duration, drain, phase=phase)
    cell.doc_tokens, cell.mean_pair_tokens = doc_tokens, round(work.mean_pair_tokens, 1)
    before = forward_tokens(server) if server.kind in OURS else None
    samples, start, finish = asyncio.run(bs.drive(server.url, work.payloads, concurrency, duration, drain))
    after = forward_tokens(server) if server.kind in OURS else None
    cell.peak_rss_mib = tree_peak_rss_mib(server.proc.pid) if server.proc else None
    bs.summarize(cell, samples, start, finish)
    answered = [work.stats[s.payload] for s in samples if s.end is not None and s.status == 200]
    elapsed = cell.elapsed_s
    cell.real_tokens_per_s = sum(s.forward_tokens for s in answered) / elapsed
    cell.gflops = sum(s.flops for s in answered) / elapsed / 1e9
    _, peak = reference_peak(run.peak)
    cell.peak_fraction = cell.gflops / peak if peak else None
    if before is not None and after is not None:
        real = after.get("real", 0.0) - before.get("real", 0.0)
        padded = after.get("padded", 0.0) - before.get("padded", 0.0)
        cell.server_real_tokens_per_s = real / elapsed
        cell.padded_tokens_per_s = padded / elapsed
        cell.padding_waste = 1 - real / padded if padded else None
    elif server.kind == "naive":
        padded = sum(s.naive_padded for s in answered)
        cell.padded_tokens_per_s = padded / elapsed
        real = sum(s.forward_tokens for s in answered)
        cell.padding_waste = 1 - real / padded if padded else None
    p50, p99 = bs._ms(cell.p50_ms, cell.p50_lower_bound), bs._ms(cell.p99_ms, cell.p99_lower_bound)
    what = f"len={doc_tokens}" if doc_tokens else f"docs={docs}"
    print(
        f"  [{phase}] {cell.model} {what} conc={concurrency} {cell.server}: {cell.requests} req, "
        f"{cell.pairs_per_s:.1f} pairs/s, {cell.gflops:.1f} GFLOP/s, p50 {p50} ms, p99 {p99} ms, "
        f"errors {cell.errors}, 429 {cell.rejected_429}, cut {cell.cut}",
        flush=True,
    )
    before_restarts = server.restarts
    if server.kind.startswith("infinity"):
        settle_infinity(server, run.args.settle_timeout)
    else:
        bs.settle(server, run.args.settle_timeout)
    cell.restarts_after = server.restarts - before_restarts
    run.cells.append(cell)
    return cell


def grid_for(args: argparse.Namespace, model: str) -> list[tuple[int, int]]:
    docs = args.docs
    if model == "bert-base" and args.bert_base_docs:
        docs = [d for d in docs if d in args.bert_base_docs]
    cap = args.bert_base_max_concurrency if model == "bert-base" else 0
    return [(d, c) for d in docs for c in args.concurrency if not cap or c <= cap]


def cell_window(args: argparse.Namespace, model: str, docs: int) -> tuple[float, float]:
    """Seconds of sending and of drain for one grid cell; the drain grows with the request's size."""
    duration = max(args.duration, args.bert_base_duration) if model == "bert-base" else args.duration
    return duration, args.drain if args.drain is not None else duration / 2 * max(1.0, docs / 20)


def start_servers(
    run: Run,
    kinds: Iterable[str],
    model: str,
    model_dir: Path,
    workdir: Path,
    infinity: InfinityEnv | None,
    warmup: list[bytes],
    servers: dict[str, bs.Server],
) -> None:
    """Start each server; one that cannot start is noted and left out, the others go on."""
    for kind in kinds:
        print(f"starting {kind} with {model} ...", flush=True)
        try:
            if kind in OURS:
                server = rerankd_server(run.args, model, model_dir, workdir)
            elif kind == "naive":
                server = bs.naive_server(run.args, model, model_dir, workdir)
            else:
                if infinity is None or infinity.error:
                    run.notes.append(f"{kind}: not run: {infinity.error if infinity else 'no environment'}")
                    continue
                engine = kind.removeprefix("infinity-")
                folder = model_dir
                if engine == "optimum":
                    folder = ensure_onnx(infinity, model_dir, workdir / "infinity-onnx-export.log")
                server = infinity_server(infinity, engine, model, folder, workdir, run.args.device)
            server.warmup = warmup
            # Registered before it starts, so the clean-up also stops one that fails to come up.
            servers[kind] = server
            began = time.monotonic()
            server.start()
            print(f"  ready in {time.monotonic() - began:.0f}s", flush=True)
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError, httpx.HTTPError) as error:
            run.notes.append(f"{kind} with {model}: could not start: {error}")
            print(f"  {kind} failed: {error}", flush=True)
            if kind in servers:
                servers.pop(kind).stop(grace=1.0)


def run_model(
    run: Run, model: str, data: cranfield.Cranfield, workdir: Path, infinity: InfinityEnv | None
) -> None:
    from transformers import AutoTokenizer

    args = run.args
    grid = grid_for(args, model)
    sweep = model == args.scaling_model and bool(args.scaling_servers)
    if not grid and not sweep:
        return
    model_dir = bs.ensure_model(model, args.cache, args.seed)
    arch = Arch.from_folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    grid_work = {
        d: cranfield_workload(model, d, data, tokenizer, arch, args) for d in sorted({d for d, _ in grid})
    }
    first = (
        grid_work[min(grid_work)] if grid_work else cranfield_workload(model, 10, data, tokenizer, arch, args)
    )
    warmup = [payload.body for payload in first.payloads[: args.warmup_requests]]
    kinds = list(args.servers) if grid else []
    kinds += [kind for kind in (args.scaling_servers if sweep else []) if kind not in kinds]
    servers: dict[str, bs.Server] = {}
    try:
        start_servers(run, kinds, model, model_dir, workdir, infinity, warmup, servers)
        grid_servers = [servers[k] for k in args.servers if k in servers]
        for docs, concurrency in grid:
            duration, drain = cell_window(args, model, docs)
            # Servers alternate within each cell so that drift on the machine hits them all alike.
            for server in grid_servers:
                measure_cell(
                    run,
                    server,
                    grid_work[docs],
                    docs=docs,
                    concurrency=concurrency,
                    duration=duration,
                    drain=drain,
                )
        if sweep:
            sweepers = [servers[k] for k in args.scaling_servers if k in servers]
            run_sweeps(run, model, sweepers, data, tokenizer, arch)
    finally:
        for server in servers.values():
            server.stop()


def run_sweeps(
    run: Run,
    model: str,
    servers: list[bs.Server],
    data: cranfield.Cranfield,
    tokenizer: Any,
    arch: Arch,
) -> None:
    args = run.args
    duration, drain = args.scaling_duration, args.scaling_drain
    print(f"sweeping documents per request {args.scaling_docs} ...", flush=True)
    for docs in args.scaling_docs:
        work = cranfield_workload(model, docs, data, tokenizer, arch, args)
        for server in servers:
            measure_cell(
                run,
                server,
                work,
                docs=docs,
                concurrency=1,
                duration=duration,
                drain=drain,
                phase="docs-sweep",
            )
    print(f"sweeping document length {args.scaling_lengths} tokens ...", flush=True)
    stream = token_stream(data, tokenizer)
    for length in args.scaling_lengths:
        work = fixed_length_workload(model, length, data, tokenizer, arch, args, stream)
        for server in servers:
            measure_cell(
                run,
                server,
                work,
                docs=args.scaling_length_docs,
                concurrency=1,
                duration=duration,
                drain=drain,
                phase="length-sweep",
                doc_tokens=length,
            )


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


GRID_COLUMNS = [
    ("model", False), ("docs", True), ("conc", True), ("server", False), ("req", True),
    ("pairs/s", True), ("real tok/s", True), ("padded tok/s", True), ("padding", True),
    ("p50 ms", True), ("p99 ms", True), ("GFLOP/s", True), ("% peak", True),
    ("peak RSS MiB", True), ("err", True), ("429", True), ("cut", True),
]  # fmt: skip
SWEEP_COLUMNS = [
    ("model", False), ("server", False), ("docs", True), ("doc tokens", True), ("pair tokens", True),
    ("req", True), ("p50 ms", True), ("p99 ms", True), ("pairs/s", True), ("real tok/s", True),
    ("padding", True), ("GFLOP/s", True), ("% peak", True), ("cut", True),
]  # fmt: skip


def grid_table(cells: list[PerfCell]) -> str:
    rows = [
        [
            c.model, str(c.docs), str(c.concurrency), c.server, str(c.requests),
            _num(c.pairs_per_s, 1), _num(c.real_tokens_per_s), _num(c.padded_tokens_per_s),
            _pct(c.padding_waste), bs._ms(c.p50_ms, c.p50_lower_bound), bs._ms(c.p99_ms, c.p99_lower_bound),
            _num(c.gflops, 1), _pct(c.peak_fraction), _num(c.peak_rss_mib), str(c.errors),
            str(c.rejected_429), str(c.cut),
        ]
        for c in cells
    ]  # fmt: skip
    return bs._markdown_table(GRID_COLUMNS, rows)


def sweep_table(cells: list[PerfCell]) -> str:
    rows = [
        [
            c.model, c.server, str(c.docs), str(c.doc_tokens) if c.doc_tokens else "Cranfield",
            _num(c.mean_pair_tokens), str(c.requests), bs._ms(c.p50_ms, c.p50_lower_bound),
            bs._ms(c.p99_ms, c.p99_lower_bound), _num(c.pairs_per_s, 1), _num(c.real_tokens_per_s),
            _pct(c.padding_waste), _num(c.gflops, 1), _pct(c.peak_fraction), str(c.cut),
        ]
        for c in cells
    ]  # fmt: skip
    return bs._markdown_table(SWEEP_COLUMNS, rows)


def ratio_table(cells: list[PerfCell]) -> str:
    by_key = {(c.model, c.docs, c.concurrency, c.server): c for c in cells}
    peers = [peer for peer in PEERS if any(c.server == peer for c in cells)]
    if not peers or not any(c.server in OURS for c in cells):
        return ""
    columns = [("model", False), ("docs", True), ("conc", True), ("server", False)]
    for peer in peers:
        columns += [(f"pairs/s ÷ {peer}", True), (f"p99 ÷ {peer}", True)]
    rows = []
    for (model, docs, conc, server), ours in by_key.items():
        if server not in OURS:
            continue
        row = [model, str(docs), str(conc), server]
        for peer in peers:
            theirs = by_key.get((model, docs, conc, peer))
            if theirs is None:
                row += ["-", "-"]
                continue
            p99 = bs._ratio(ours.p99_ms, theirs.p99_ms)
            if p99 != "-" and (ours.p99_lower_bound or theirs.p99_lower_bound):
                p99 = f"~{p99}"
            row += [bs._ratio(ours.pairs_per_s, theirs.pairs_per_s), p99]
        rows.append(row)
    return bs._markdown_table(columns, rows)


def rss_table(cells: list[PerfCell]) -> str:
    peaks: dict[tuple[str, str], float] = {}
    for c in cells:
        if c.peak_rss_mib is not None:
            key = (c.model, c.server)
            peaks[key] = max(peaks.get(key, 0.0), c.peak_rss_mib)
    rows = [[model, server, f"{mib:,.0f}"] for (model, server), mib in peaks.items()]
    return bs._markdown_table([("model", False), ("server", False), ("peak RSS MiB", True)], rows)


def peak_lines(peak: dict[str, Any], cpu: dict[str, Any]) -> list[str]:
    flags = cpu["flags"]
    native_bf16 = flags.get("avx512_bf16") or flags.get("amx_bf16")
    listed = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in flags.items())
    if peak.get("device"):
        lines = [f"- GPU: {peak['cpu_capability']} ({peak['device']}), torch {peak.get('torch')}."]
    else:
        lines = [
            f"- CPU: {cpu['model']}; {listed}; torch {peak.get('torch')} ({peak.get('cpu_capability')} "
            f"kernels), {peak.get('threads')} threads.",
        ]
    reference, _ = reference_peak(peak)
    lines.append(f"- Percentages are of the {reference} matmul peak: the precision rerankd computes in here.")
    for dtype in ("fp32", "bf16", "fp16"):
        if dtype in peak:
            cases = ", ".join(f"{name} {value:,.1f}" for name, value in peak[dtype]["cases"].items())
            lines.append(f"- {dtype} matmul peak: **{peak[dtype]['gflops']:,.1f} GFLOP/s** ({cases}).")
    if not peak.get("device") and not native_bf16 and "bf16" in peak and "fp32" in peak:
        slower = peak["fp32"]["gflops"] / max(peak["bf16"]["gflops"], 1e-9)
        lines.append(
            f"- bf16 is not native on this CPU (no AVX512-BF16 / AMX): it is emulated and {slower:.0f}x "
            "slower than fp32, so every server runs fp32 and percentages are of the fp32 peak."
        )
    return lines


def render_markdown(run: Run, meta: dict[str, Any]) -> str:
    env = meta["environment"]
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    grid = [c for c in run.cells if c.phase == "grid"]
    sweeps = [c for c in run.cells if c.phase != "grid"]
    parts = [
        "# rerankd performance: vs naive server and Infinity, as a fraction of the machine's limit",
        "",
        f"{env['date']}; {env['cpus']} CPUs, {env['platform']}; {versions}.",
        f"Whole run {meta.get('wall_s', 0) / 60:.1f} min; load average (1, 5, 15 min) before "
        f"{bs._loads(env['load_average'])}, after {bs._loads(meta.get('load_average_after'))}.",
        "",
        "## The limit",
        "",
        *peak_lines(run.peak, meta["cpu"]),
    ]
    for model, info in meta["models"].items():
        parts.append(
            f"- {model}: {info['layers']} layers, hidden {info['hidden']}, FFN {info['intermediate']}: "
            f"{info['linear_mflops_per_token']:.1f} MFLOP per token plus 4·L·{info['layers']}·"
            f"{info['hidden']} per token for attention over L tokens."
        )
    infinity = meta.get("infinity")
    if infinity:
        if infinity.get("error"):
            parts.append(f"- Infinity: not run: {infinity['error']}.")
        else:
            built = f"built in {infinity['build_s']:.0f}s this run" if infinity.get("build_s") else "reused"
            parts.append(
                f"- Infinity {infinity['version']} ({infinity['venv']}, {built}): engines torch "
                "(BetterTransformer) and optimum (ONNX Runtime, graph-optimised), batch size "
                f"{INFINITY_BATCH_SIZE}, fp32, no result cache."
            )
    args = meta["args"]
    bert = ""
    if "bert-base" in args["models"]:
        bert = f" (bert-base: {max(args['duration'], args['bert_base_duration']):g}s)"
    parts += [
        "",
        "## Servers under load",
        "",
        f"Cranfield requests; closed loop, {args['duration']:g}s of sending per cell{bert}, then the "
        f"drain; max_length {args['max_length']}; random-weight models of the real architectures.",
        "",
        grid_table(grid) if grid else "(no cells measured)",
    ]
    ratios = ratio_table(grid)
    if ratios:
        legend = "rerankd ÷ peer, same model, docs and concurrency (pairs/s: higher is better for rerankd"
        parts += ["", f"{legend}; p99: lower is better):", "", ratios]
    if run.cells:
        parts += [
            "",
            "Peak RSS of each server process (VmHWM, whole process tree):",
            "",
            rss_table(run.cells),
        ]
    if (run.args.out / "grid.png").is_file():
        parts += ["", "![throughput, p99 latency and share of the peak by concurrency](grid.png)"]
    if sweeps:
        parts += [
            "",
            "## Scaling (concurrency 1)",
            "",
            "Documents per request on Cranfield documents, then documents cut to a fixed number of "
            "tokens (pair tokens: the mean (query, document) input, special tokens included, capped at "
            "max_length).",
            "",
            sweep_table(sweeps),
        ]
        if (run.args.out / "scaling.png").is_file():
            parts += [
                "",
                "![latency and throughput vs documents per request and document length](scaling.png)",
            ]
    notes = list(run.notes)
    if run.skipped:
        notes.append(f"{run.skipped} cells skipped: the --budget-min of {args['budget_min']:g} min ran out.")
    if notes:
        parts += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    parts += [
        "",
        "`>=`: a lower bound (requests still running when the window closed may be slower); `~`: a ratio "
        "involving one; `n/a`: not knowable for that server. Columns: benchmarks/README.md.",
    ]
    return "\n".join(parts) + "\n"


def plot(run: Run) -> list[str]:
    """grid.png and scaling.png in --out; returns a note when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["plots skipped: matplotlib is not installed (pip install -e '.[bench]')"]
    out = run.args.out
    grid = [c for c in run.cells if c.phase == "grid"]
    panels = sorted({(c.model, c.docs) for c in grid}, key=lambda key: (ARCHS.index(key[0]), key[1]))
    if panels:
        fig, axes = plt.subplots(3, len(panels), figsize=(4.2 * len(panels), 10), squeeze=False)
        for column, (model, docs) in enumerate(panels):
            for server in SERVERS:
                mine = sorted(
                    (c for c in grid if (c.model, c.docs, c.server) == (model, docs, server)),
                    key=lambda c: c.concurrency,
                )
                if not mine:
                    continue
                conc = [c.concurrency for c in mine]
                axes[0][column].plot(conc, [c.pairs_per_s for c in mine], marker="o", label=server)
                p99 = [c.p99_ms / 1000 if c.p99_ms else math.nan for c in mine]
                axes[1][column].plot(conc, p99, marker="o", label=server)
                share = [100 * (c.peak_fraction or 0.0) for c in mine]
                axes[2][column].plot(conc, share, marker="o", label=server)
            axes[0][column].set_title(f"{model}, {docs} docs/request")
            axes[0][column].set_ylabel("pairs/s")
            axes[1][column].set_ylabel("p99 latency s")
            axes[1][column].set_yscale("log")
            axes[2][column].set_ylabel(f"useful GFLOP/s, % of {reference_peak(run.peak)[0]} matmul peak")
            ticks = sorted({c.concurrency for c in grid if (c.model, c.docs) == (model, docs)})
            for row in (0, 1, 2):
                axes[row][column].set_xscale("log", base=2)
                _plain_ticks(axes[row][column], ticks)
                axes[row][column].set_xlabel("concurrent clients")
                axes[row][column].grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "grid.png", dpi=110)
        plt.close(fig)
    sweeps = [c for c in run.cells if c.phase != "grid"]
    if sweeps:
        fig, axes = plt.subplots(2, 2, figsize=(10, 8), squeeze=False)
        for server in SERVERS:
            by_docs = sorted((c for c in sweeps if c.phase == "docs-sweep" and c.server == server),
                             key=lambda c: c.docs)  # fmt: skip
            by_len = sorted((c for c in sweeps if c.phase == "length-sweep" and c.server == server),
                            key=lambda c: c.doc_tokens or 0)  # fmt: skip
            if by_docs:
                x = [c.docs for c in by_docs]
                axes[0][0].plot(x, [(c.p50_ms or math.nan) / 1000 for c in by_docs], marker="o", label=server)
                axes[0][1].plot(x, [c.pairs_per_s for c in by_docs], marker="o", label=server)
            if by_len:
                x = [c.doc_tokens or 0 for c in by_len]
                axes[1][0].plot(x, [(c.p50_ms or math.nan) / 1000 for c in by_len], marker="o", label=server)
                axes[1][1].plot(x, [c.gflops for c in by_len], marker="o", label=f"{server} GFLOP/s")
        reference, peak = reference_peak(run.peak)
        if peak:
            axes[1][1].axhline(peak, color="grey", linestyle="--", label=f"{reference} matmul peak")
        titles = [
            ("p50 latency s vs documents per request", "documents per request", "log"),
            ("pairs/s vs documents per request", "documents per request", "linear"),
            (
                f"p50 latency s vs document tokens ({run.args.scaling_length_docs} docs)",
                "document tokens",
                "log",
            ),
            ("useful GFLOP/s vs document tokens", "document tokens", "linear"),
        ]
        doc_ticks = sorted({c.docs for c in sweeps if c.phase == "docs-sweep"})
        length_ticks = sorted({c.doc_tokens or 0 for c in sweeps if c.phase == "length-sweep"})
        for ax, (title, xlabel, yscale) in zip(axes.flat, titles, strict=True):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(xlabel)
            ax.set_xscale("log", base=2 if "tokens" in xlabel else 10)
            _plain_ticks(ax, length_ticks if "tokens" in xlabel else doc_ticks)
            ax.set_yscale(yscale)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "scaling.png", dpi=110)
        plt.close(fig)
    return []


def _plain_ticks(ax: Any, values: list[int]) -> None:
    """The measured x values as plain numbers on a log axis."""
    from matplotlib.ticker import NullFormatter, NullLocator

    if values:
        ax.set_xticks(values, [str(value) for value in values])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())


def write_results(run: Run, meta: dict[str, Any]) -> str:
    out = run.args.out
    out.mkdir(parents=True, exist_ok=True)
    run.notes += plot(run)
    markdown = render_markdown(run, meta)
    (out / "results.md").write_text(markdown, encoding="utf-8")
    raw = {"meta": meta, "notes": run.notes, "skipped": run.skipped, "cells": [asdict(c) for c in run.cells]}
    (out / "results.json").write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    return markdown


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def plan_minutes(args: argparse.Namespace) -> float:
    total = 0.0
    for model in args.models:
        for docs, _ in grid_for(args, model):
            total += len(args.servers) * sum(cell_window(args, model, docs))
    if args.scaling_model in args.models and args.scaling_servers:
        points = len(args.scaling_docs) + len(args.scaling_lengths)
        total += points * len(args.scaling_servers) * args.scaling_duration
    return total / 60


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = cranfield.load(args.cranfield)
    workdir = args.out / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"at most {plan_minutes(args):.1f} min of load (sweeps: plus their longest requests) and start-ups;"
        f" cells not started within {args.budget_min:g} min are skipped",
        flush=True,
    )
    meta: dict[str, Any] = {
        "environment": bs.environment(),
        "cpu": cpu_description(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "models": {},
    }
    print("measuring the matmul peak ...", flush=True)
    peak = measure_peak(device=args.device)
    meta["peak"] = peak
    print(
        f"  fp32 {peak['fp32']['gflops']:.1f} GFLOP/s, bf16 {peak['bf16']['gflops']:.1f} GFLOP/s "
        f"(results are a share of the {peak['reference']} peak)",
        flush=True,
    )
    infinity: InfinityEnv | None = None
    if any(kind.startswith("infinity") for kind in args.servers + args.scaling_servers):
        infinity = ensure_infinity(args.infinity_venv, not args.no_build, workdir / "infinity-venv.log")
        meta["infinity"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(infinity).items()}
        if infinity.error:
            print(f"Infinity unavailable: {infinity.error}", flush=True)
    began = time.monotonic()
    run = Run(args, peak, deadline=began + args.budget_min * 60)
    try:
        for model in args.models:
            model_dir = bs.ensure_model(model, args.cache, args.seed)
            arch = Arch.from_folder(model_dir)
            meta["models"][model] = {
                **asdict(arch),
                "linear_mflops_per_token": arch.linear_flops_per_token / 1e6,
            }
            run_model(run, model, data, workdir, infinity)
    finally:
        # Whatever was measured before an error or Ctrl-C is still written out.
        meta["wall_s"] = round(time.monotonic() - began, 1)
        meta["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        markdown = write_results(run, meta)
        print()
        print(markdown)
        print(f"wrote {args.out / 'results.md'}, {args.out / 'results.json'} and the plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
