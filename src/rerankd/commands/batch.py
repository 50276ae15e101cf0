"""``rerankd batch INPUT --output OUTPUT``: the command line of batch reranking (see ``rerankd.batch``).

Exit status: 0 when every job is in the output; 1 when lines were bad or jobs failed (each reported on
stderr, with its line; a rerun does the jobs that are missing); 2 when the run could not start (config,
model, files).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from rerankd.config import ConfigError, env_value

__all__ = ["add_batch_command", "batch"]


def add_batch_command(commands: Any, config_help: str) -> None:
    parser = commands.add_parser(
        "batch",
        help="rerank the jobs of a JSONL file into a JSONL file (resumable; local or on Ray Data)",
        description="Rerank every job of INPUT, one JSON object a line: "
        '{"id": "q1", "query": "...", "documents": ["...", {"text": "..."}]} (optional per line: top_n, '
        "instruction). Writes one line per job to --output, in input order: "
        '{"id", "model", "results": [{"index", "relevance_score"}], "usage"}. A rerun skips the ids the '
        "output already has. Bad lines are reported with their line number and skipped.",
        epilog="Exit status: 0 every job done; 1 bad lines or failed jobs (reported; rerun to retry); "
        "2 the run could not start.",
    )
    parser.add_argument("input", metavar="INPUT", type=Path, help="the jobs, JSONL")
    parser.add_argument(
        "-o", "--output", metavar="FILE", type=Path, required=True, help="the results, JSONL (appended to)"
    )
    parser.add_argument("--config", metavar="FILE", default=env_value("RERANKD_CONFIG"), help=config_help)
    parser.add_argument(
        "--model",
        metavar="NAME",
        default=env_value("RERANKD_MODEL"),
        help="[env RERANKD_MODEL; default: the config's default_model, else its first model]",
    )
    parser.add_argument(
        "--top-n",
        metavar="N",
        type=int,
        default=int(env_value("RERANKD_TOP_N", "0") or 0),
        help="keep the N best of each job [env RERANKD_TOP_N; default 0: every document]",
    )
    parser.add_argument(
        "--return-documents",
        action="store_true",
        default=env_value("RERANKD_RETURN_DOCUMENTS", "") in ("1", "true", "yes"),
        help="echo each document's text in its result [env RERANKD_RETURN_DOCUMENTS=1]",
    )
    parser.add_argument("--instruction", metavar="TEXT", help="the task, for LLM rerankers")
    parser.add_argument("--raw-scores", action="store_true", help="skip the activation (sigmoid)")
    parser.add_argument(
        "--fail-fast", action="store_true", help="stop at the first bad line or failed job (exit 1)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (the summary stays)")
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default=env_value("RERANKD_ENGINE", "local"),
        help="local: this process; ray: Ray Data actors (pip install rerankd[ray]) [env RERANKD_ENGINE; "
        "default local]",
    )
    ray = parser.add_argument_group("Ray engine (--engine ray)")
    ray.add_argument(
        "--ray-address",
        metavar="ADDR",
        default=env_value("RAY_ADDRESS"),
        help="a running Ray cluster, e.g. ray://head:10001 or auto [env RAY_ADDRESS; default: start a "
        "local Ray for the run]",
    )
    ray.add_argument("--workers", metavar="N", type=int, default=1, help="actors, one Reranker each [1]")
    ray.add_argument("--num-cpus", metavar="C", type=float, default=1.0, help="CPUs per actor [1]")
    ray.add_argument("--num-gpus", metavar="G", type=float, default=0.0, help="GPUs per actor [0]")
    ray.add_argument(
        "--chunk-pairs", metavar="P", type=int, default=2048, help="pairs per chunk handed to an actor [2048]"
    )


def batch(args: argparse.Namespace) -> int:
    from rerankd.batch.jobs import JobOptions
    from rerankd.batch.output import OutputError
    from rerankd.batch.run import BatchRun, RayOptions, model_of, run_batch
    from rerankd.config import load_settings
    from rerankd.errors import RerankdError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # bm25s logs every index it builds at DEBUG on its own logger: one line per job here.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    if args.top_n < 0 or args.workers < 1 or args.num_cpus < 0 or args.num_gpus < 0 or args.chunk_pairs < 1:
        raise ConfigError("--top-n, --num-cpus and --num-gpus must be >= 0; --workers and --chunk-pairs >= 1")
    if not args.input.is_file():
        raise ConfigError(f"input file {args.input} does not exist (or is not a file)")
    if args.output.resolve() == args.input.resolve():
        raise ConfigError("--output must not be the input file")
    settings = load_settings(args.config)
    run = BatchRun(
        input=args.input,
        output=args.output,
        options=JobOptions(
            model=model_of(settings, args.model),
            top_n=args.top_n,
            return_documents=args.return_documents,
            instruction=args.instruction,
            raw_scores=args.raw_scores,
        ),
        engine=args.engine,
        ray=RayOptions(
            address=args.ray_address,
            workers=args.workers,
            num_cpus=args.num_cpus,
            num_gpus=args.num_gpus,
            chunk_pairs=args.chunk_pairs,
        ),
        fail_fast=args.fail_fast,
        progress=not args.no_progress,
    )
    runner = None
    if args.engine == "ray":
        try:
            from rerankd.ray.data import run_ray
        except ImportError:
            raise ConfigError("--engine ray needs Ray: pip install 'rerankd[ray]'") from None
        runner = run_ray
    try:
        tally = run_batch(settings, run, sys.stderr, runner)
    except OutputError as exc:
        raise ConfigError(str(exc)) from None
    except RerankdError as exc:  # the model cannot be loaded: nothing could be scored
        raise ConfigError(exc.message) from None
    print(f"rerankd batch: {tally.summary()}", file=sys.stderr)
    return 0 if tally.ok else 1
