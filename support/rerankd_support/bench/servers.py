"""The servers under test and their models: rerankd and the naive server, as harness servers.

:func:`ensure_model` generates a random-weight cross-encoder of a real architecture once and reuses it
from the cache; :func:`rerankd_for` and :func:`naive_for` describe (but do not start) each server for a
model, with the benchmark's options; :func:`settle` waits between cells until a server has finished the
work that cancelled clients left behind, and restarts it when it will not.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from rerankd_support.harness import Server, all_models_ready, json_or_empty, rerankd_server
from rerankd_support.models import bundled_minilm_path, make_cross_encoder

__all__ = ["ARCHS", "STARTERS", "START_TIMEOUT_S", "ensure_model", "naive_for", "rerankd_for", "settle"]

ARCHS = ("minilm-l6", "bert-base")
START_TIMEOUT_S = 300.0

Starter = Callable[[argparse.Namespace, str, Path, Path], Server]


def ensure_model(arch: str, cache: Path, seed: int) -> Path:
    """The generated cross-encoder folder for ``arch``, built once and reused from ``cache``."""
    target = cache / f"{arch}-seed{seed}"
    if (target / ".complete").is_file():
        return target
    print(f"generating {arch} cross-encoder in {target} ...", flush=True)
    # Build beside the target and rename, so an interrupted run never leaves a half-written model.
    staging = cache / f".{arch}-seed{seed}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    make_cross_encoder(staging, arch=arch, tokenizer_from=bundled_minilm_path(), seed=seed)  # type: ignore[arg-type]
    (staging / ".complete").write_text("ok\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def rerankd_for(
    args: argparse.Namespace, model: str, model_dir: Path, workdir: Path, **settings: Any
) -> Server:
    """rerankd serving ``model_dir`` as ``model`` (preloaded); ``settings`` go into its config."""
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
    config.update(settings)
    return rerankd_server(
        config,
        workdir,
        name=f"rerankd-{model}",
        prefix=args.rerankd.split(),
        log_level="warning",
        model=model,
        ready=all_models_ready,
        start_timeout=START_TIMEOUT_S,
        poll_interval=0.5,
    )


def naive_for(args: argparse.Namespace, model: str, model_dir: Path, workdir: Path) -> Server:
    """The naive FastAPI + CrossEncoder server (:mod:`rerankd_support.bench.naive_server`)."""
    command = [sys.executable, "-m", "rerankd_support.bench.naive_server", "--model-dir", str(model_dir)]
    command += ["--host", "127.0.0.1", "--max-length", str(args.max_length), "--device", args.device]
    return Server(
        command,
        workdir / f"naive-{model}.log",
        kind="naive",
        model=model,
        start_timeout=START_TIMEOUT_S,
        poll_interval=0.5,
    )


STARTERS: dict[str, Starter] = {"rerankd": rerankd_for, "naive": naive_for}


def settle(server: Server, timeout: float) -> None:
    """Wait until ``server`` has finished the work cancelled clients left behind; restart it if it won't."""
    deadline = time.monotonic() + timeout
    if server.kind == "naive":
        # Its handlers cannot be cancelled, so they run to the end; /health counts them.
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if json_or_empty(httpx.get(f"{server.url}/health", timeout=2.0)).get("in_flight") == 0:
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
