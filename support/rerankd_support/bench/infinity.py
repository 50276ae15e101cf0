"""Infinity, the peer server of the performance report: its environment, its ONNX model copy, its server.

Infinity pins packages that clash with rerankd's, so it gets a virtual environment of its own in
``.cache/bench-venvs/infinity``, built once (torch pinned first, then ``infinity-requirements.txt``) and
rebuilt when either changes. Its optimum engine needs an ONNX export of the model, made by
``infinity_onnx.py`` with that environment's interpreter. :func:`infinity_server` describes the server
for the harness; :func:`settle_infinity` waits for its queue to empty between cells.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from rerankd_support.bench.servers import START_TIMEOUT_S
from rerankd_support.harness import HOST, OFFLINE_ENV, Server
from rerankd_support.paths import CACHE

__all__ = [
    "INFINITY_BATCH_SIZE",
    "InfinityEnv",
    "ensure_infinity",
    "ensure_onnx",
    "infinity_server",
    "settle_infinity",
]

INFINITY_VENV = CACHE / "bench-venvs" / "infinity"
INFINITY_REQUIREMENTS = Path(__file__).with_name("infinity-requirements.txt")
INFINITY_ONNX_SCRIPT = Path(__file__).with_name("infinity_onnx.py")  # runs with Infinity's interpreter
INFINITY_HF_HOME = CACHE / "bench-hf"  # Infinity writes its caches here, not in ~/.cache
TORCH_PIN = "torch==2.13.0"  # installed first: an unpinned torch pulls gigabytes of CUDA packages
VENV_BUILD_TIMEOUT_S = 1800.0
ONNX_EXPORT_TIMEOUT_S = 900.0
INFINITY_BATCH_SIZE = 32  # Infinity's default --batch-size, passed explicitly


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
    command = [str(env.python), str(INFINITY_ONNX_SCRIPT), str(model_dir), str(target)]
    with log_path.open("ab") as log:
        log.write(f"\n=== {' '.join(command)}\n".encode())
        log.flush()
        done = subprocess.run(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=ONNX_EXPORT_TIMEOUT_S,
            env={**os.environ, **OFFLINE_ENV, "HF_HOME": str(INFINITY_HF_HOME)},
        )
    if done.returncode != 0 or not (target / "model.onnx").is_file():
        raise RuntimeError(f"ONNX export failed (exit {done.returncode}); see {log_path}")
    return target


def infinity_server(
    env: InfinityEnv, engine: str, model: str, model_dir: Path, workdir: Path, device: str = "cpu"
) -> Server:
    assert env.python is not None
    command = [str(env.python.parent / "infinity_emb"), "v2", "--model-id", str(model_dir)]
    # fp32 on CPUs (what Infinity's engines run there), its automatic half precision on a GPU.
    dtype = "float32" if device == "cpu" else "auto"
    command += ["--served-model-name", model, "--engine", engine, "--device", device, "--dtype", dtype]
    command += ["--batch-size", str(INFINITY_BATCH_SIZE), "--no-vector-disk-cache", "--no-model-warmup"]
    # /v1 prefix: the rerank route becomes /v1/rerank like the others'; /health stays unprefixed.
    command += ["--url-prefix", "/v1", "--host", HOST, "--log-level", "warning"]
    kind = f"infinity-{engine}"
    env_vars = {"HF_HOME": str(INFINITY_HF_HOME), "DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    return Server(
        command,
        workdir / f"{kind}-{model}.log",
        kind=kind,
        model=model,
        env=env_vars,
        start_timeout=START_TIMEOUT_S,
        poll_interval=0.5,
    )


def settle_infinity(server: Server, timeout: float) -> None:
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
