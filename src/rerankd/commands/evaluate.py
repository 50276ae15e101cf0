"""``rerankd eval COLLECTION``: measure how well configured models rank a test collection's first-stage
candidates (see ``rerankd.evaluate``).

Exit status: 0 measured; 2 the run could not start (config, collection, model).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
from pathlib import Path
from typing import Any

from rerankd.config import ConfigError, Settings, load_settings
from rerankd.errors import RerankdError
from rerankd.evaluate.collection import Collection, CollectionError, bury, load_collection
from rerankd.evaluate.first_stage import Run, bm25_run, read_run
from rerankd.evaluate.measures import per_query
from rerankd.evaluate.report import SystemScores, markdown, write_csv, write_json, write_plots
from rerankd.types import LongDocuments

__all__ = ["add_eval_command", "evaluate"]

_MODES: tuple[LongDocuments, ...] = ("chunk", "truncate_end", "truncate_start")


def add_eval_command(commands: Any, config_help: str) -> None:
    parser = commands.add_parser(
        "eval",
        help="measure ranking quality on a test collection (NDCG@10, MRR@10, Recall@100, MAP)",
        description="Rerank a first stage's top-K candidates for each judged query of COLLECTION with "
        "configured models (in this process) or rerank APIs, and report NDCG@10, MRR@10, Recall@100 and "
        "MAP (ir-measures) with paired t-tests against the first stage, and each model's usage tokens per "
        "query (every stage of a cascade, every component of a hybrid): a markdown table on stdout, and "
        "results.md, per_query.csv, summary.json, measures.png and gain.png in --out.",
        epilog="COLLECTION is a folder: BEIR layout (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv), "
        "Cranfield (cran.all.1400, cran.qry, cranqrel), or TREC files (topics, qrels, corpus .jsonl/.tsv; "
        "name them with --topics/--qrels/--corpus when the folder holds several).",
    )
    parser.add_argument("collection", metavar="COLLECTION", type=Path, help="the collection's folder")
    parser.add_argument("--format", choices=["auto", "beir", "trec", "cranfield"], default="auto")
    parser.add_argument("--split", default="test", help="BEIR qrels split [default: test]")
    parser.add_argument("--topics", type=Path, metavar="FILE", help="TREC topics file")
    parser.add_argument("--qrels", type=Path, metavar="FILE", help="TREC qrels file")
    parser.add_argument("--corpus", type=Path, metavar="FILE", help="TREC corpus, .jsonl or .tsv")
    parser.add_argument(
        "--config", metavar="FILE", default=os.environ.get("RERANKD_CONFIG"), help=config_help
    )
    parser.add_argument(
        "-m",
        "--model",
        metavar="NAME",
        action="append",
        default=[],
        help="a configured model to evaluate (repeatable) [default: the config's default model]",
    )
    parser.add_argument(
        "--api",
        metavar="NAME=PROVIDER,URL[,MODEL[,KEY_ENV]]",
        action="append",
        default=[],
        help="also evaluate a rerank API: e.g. cohere=cohere,https://api.cohere.com,rerank-v3.5,CO_API_KEY "
        "(providers as for `kind: upstream`)",
    )
    parser.add_argument(
        "--run", type=Path, metavar="FILE", help="first stage from a TREC run file [default: BM25, bm25s]"
    )
    parser.add_argument("--top-k", type=int, default=100, metavar="K", help="candidates per query [100]")
    parser.add_argument("--queries", type=int, metavar="N", help="only the first N judged queries")
    parser.add_argument(
        "--long-documents",
        metavar="MODE[,MODE]",
        help="evaluate each model in each of these modes (chunk, truncate_end, truncate_start) "
        "[default: each model's configured one]",
    )
    parser.add_argument(
        "--bury",
        type=int,
        metavar="N",
        default=0,
        help="long-document test: rerankers see each document after N unjudged documents of the collection "
        "(judgements unchanged; the first stage still sees the documents alone)",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="tune each hybrid model's fusion and weights on part of the queries (--tune-fraction) and "
        "report every system on the others only",
    )
    parser.add_argument("--tune-fraction", type=float, default=0.5, metavar="F", help="[0.5]")
    parser.add_argument("--seed", type=int, default=0, help="for --tune's split and --bury [0]")
    parser.add_argument(
        "--dtype", help="compute precision of every local transformer model (e.g. fp32) [default: configured]"
    )
    parser.add_argument(
        "--cache-mb",
        type=float,
        default=512,
        metavar="MB",
        help="output cache of local transformer models that configure none: candidates recur across "
        "queries [512; 0: off]",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight [4]")
    parser.add_argument("-o", "--out", type=Path, default=Path("rerankd-eval"), help="[./rerankd-eval]")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _settings(args: argparse.Namespace) -> Settings:
    from rerankd.kinds import model_spec

    base = load_settings(args.config)
    models = [spec.with_compute(args.dtype, args.cache_mb).model_dump() for spec in base.models]
    for entry in args.api:
        name, _, rest = entry.partition("=")
        parts = rest.split(",")
        if not name or len(parts) < 2:
            raise ConfigError(f"--api {entry!r}: expected NAME=PROVIDER,URL[,MODEL[,KEY_ENV]]")
        upstream = {"name": name, "kind": "upstream", "provider": parts[0], "base_url": parts[1]}
        if len(parts) > 2 and parts[2]:
            upstream["upstream_model"] = parts[2]
        if len(parts) > 3 and parts[3]:
            upstream["api_key_env"] = parts[3]
        try:
            models.append(model_spec(upstream).model_dump())
        except ValueError as exc:
            raise ConfigError(f"--api {entry!r}: {exc}") from None
    # Evaluation is one client with patience: no queue limits, no deadline to speak of, big requests.
    return load_settings(
        args.config,
        models=models,
        database_url="none",
        max_documents=max(base.max_documents, args.top_k),
        max_queue_pairs=10**9,
        max_queue_seconds=10**9,
        request_timeout=10**9,
    )


def _split(queries: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    shuffled = list(queries)
    random.Random(seed).shuffle(shuffled)
    cut = max(1, min(len(shuffled) - 1, round(len(shuffled) * fraction)))
    tuning = set(shuffled[:cut])
    return [q for q in queries if q in tuning], [q for q in queries if q not in tuning]


def evaluate(args: argparse.Namespace) -> int:
    try:
        collection = load_collection(
            args.collection,
            args.format,
            split=args.split,
            topics=args.topics,
            qrels=args.qrels,
            corpus=args.corpus,
        )
        settings = _settings(args)
        modes = [mode.strip() for mode in args.long_documents.split(",")] if args.long_documents else [None]
        unknown = [mode for mode in modes if mode is not None and mode not in _MODES]
        if unknown:
            raise ConfigError(f"--long-documents: {', '.join(unknown)} not one of {', '.join(_MODES)}")
        names = {name for spec in settings.models for name in spec.names}
        models = args.model + [entry.partition("=")[0] for entry in args.api]
        if not models:
            models = [settings.default_model or settings.models[0].name]
        missing = [model for model in models if model not in names]
        if missing:
            raise ConfigError(
                f"model {', '.join(missing)} not configured; configured: {', '.join(sorted(names))}"
            )
        if args.top_k < 1 or (args.queries is not None and args.queries < 1):
            raise ConfigError("--top-k and --queries must be at least 1")
        if args.tune and not 0 < args.tune_fraction < 1:
            raise ConfigError("--tune-fraction must be between 0 and 1")
        return asyncio.run(_evaluate(args, collection, settings, models, modes))
    except (ConfigError, CollectionError, RerankdError) as exc:
        print(f"rerankd eval: {exc}", file=sys.stderr)
        return 2


def _label(model: str, mode: str | None, modes: list[str | None]) -> str:
    return f"{model} [{mode}]" if mode is not None and len(modes) > 1 else model


async def _evaluate(
    args: argparse.Namespace, collection: Collection, settings: Settings, models: list[str], modes: list[Any]
) -> int:
    from tqdm import tqdm

    from rerankd.backends.specs import HybridSpec
    from rerankd.evaluate.runner import fused_run, rerank_run, tune_hybrid
    from rerankd.serving.runtime import Runtime

    queries = collection.judged_queries()[: args.queries]
    if not queries:
        raise CollectionError(f"{args.collection}: no query has a relevant document")
    first: Run = (
        read_run(args.run, collection, args.top_k) if args.run else bm25_run(collection, queries, args.top_k)
    )
    first = {query: first.get(query, {}) for query in queries}
    texts = bury(collection, args.bury, args.seed) if args.bury else collection.documents
    tuning, reported = _split(queries, args.tune_fraction, args.seed) if args.tune else ([], queries)

    runtime = Runtime.build(settings, metered=False)
    pool, service = runtime.pool, runtime.service
    specs = {name: pool.entry(name).spec for name in models}
    hybrids = {name: hybrid for name, spec in specs.items() if (hybrid := HybridSpec.of(spec)) is not None}
    scored: dict[tuple[str, str | None], Run] = {}
    usage: dict[str, dict[str, int]] = {}  # system -> query -> its answer's usage tokens
    jobs = [(model, mode) for model in models for mode in modes]
    if args.tune:  # a hybrid's components, scored once each for the tuning
        jobs += [(c, mode) for spec in hybrids.values() for c in spec.requires() for mode in modes]
    jobs = list(dict.fromkeys(jobs))
    bar = tqdm(total=len(jobs) * len(queries), unit="query", disable=args.no_progress, file=sys.stderr)
    try:
        for model, mode in jobs:
            bar.set_description(_label(model, mode, modes))
            scored[model, mode], usage[_label(model, mode, modes)] = await rerank_run(
                service,
                model,
                first,
                collection.queries,
                texts,
                long_documents=mode,
                concurrency=args.concurrency,
                advance=lambda: bar.update(1),
            )
        precision = ", ".join(
            f"{view.name}: {view.precision}"
            for view in pool.views()
            if view.precision and view.name in models
        )
    finally:
        bar.close()
        await pool.close()

    label = "BM25" if not args.run else f"run {args.run.name}"
    runs: list[tuple[str, Run]] = [(f"{label} (first stage)", first)]
    runs += [(_label(model, mode, modes), scored[model, mode]) for model, mode in jobs if model in models]
    notes = []
    for name, spec in hybrids.items() if args.tune else ():
        for mode in modes:
            components = [scored[component, mode] for component in spec.requires()]
            tuned = tune_hybrid(spec, components, collection.qrels, tuning)
            runs.append(
                (
                    f"{_label(name, mode, modes)} tuned",
                    fused_run(components, tuned.weights, tuned.fusion, spec.rrf_k),
                )
            )
            notes.append(
                f"{name}: tuned on {len(tuning)} queries (NDCG@10 {tuned.ndcg:.4f} there):\n"
                + "\n".join("    " + line for line in tuned.config(spec).splitlines())
            )
    systems = [
        SystemScores(
            name, per_query(collection.qrels, {q: run.get(q, {}) for q in reported}), usage.get(name)
        )
        for name, run in runs
    ]
    what = f"{len(reported)} queries" + (f" held out ({len(tuning)} used for tuning)" if args.tune else "")
    long = f"; each document after {args.bury} unjudged ones" if args.bury else ""
    title = f"{collection.name}: {label} top {args.top_k} reranked, {what}{long}" + (
        f" ({precision})" if precision else ""
    )
    table = markdown(systems, title)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(table + "".join(f"\n{note}\n" for note in notes), encoding="utf-8")
    write_csv(args.out / "per_query.csv", systems)
    # JSON keeps the flags' types (null, false, numbers); only paths and other objects become text.
    settings_used = {
        key: value if value is None or isinstance(value, bool | int | float | str | list) else str(value)
        for key, value in vars(args).items()
    }
    write_json(args.out / "summary.json", systems, settings_used)
    written = [] if args.no_plots else write_plots(args.out, systems)
    print(table)
    for note in notes:
        print(note)
    print(
        f"wrote {', '.join(str(p) for p in [args.out / 'results.md', args.out / 'per_query.csv', *written])}"
    )
    return 0
